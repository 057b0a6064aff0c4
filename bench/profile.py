"""Profile the provider through real Terraform: ``python -m bench.profile --pools 100 --step apply``.

Runs the scale scenario up to the chosen step with every provider process of that step
started under ``py-spy record`` (the private mirror's launcher is rewritten to do so), and
prints the functions with the most samples, self and cumulative, over all of them. The
raw collapsed stacks are kept, one file per provider process, for ``flamegraph.pl`` or
speedscope. py-spy is in the test extras; it needs ptrace permission (root, or
kernel.yama.ptrace_scope=0). Times measured under the profiler are inflated.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench import configs
from bench.env import BenchEnv, SandboxProcess, apply, destroy, init, plan_no_change

STEPS = ("apply", "plan", "update", "destroy")


def summarise(files: list[Path], top: int = 30) -> str:
    """Self and cumulative sample counts per function over py-spy's collapsed stacks."""
    self_counts: collections.Counter[str] = collections.Counter()
    total_counts: collections.Counter[str] = collections.Counter()
    samples = 0
    for collapsed in files:
        for line in collapsed.read_text().splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            frames = stack.split(";")[1:]  # the first frame names the process (or thread)
            samples += count
            if frames:
                self_counts[frames[-1]] += count
            for frame in set(frames):
                total_counts[frame] += count
    lines = [f"{samples} samples in {len(files)} provider processes", "", "self:"]
    lines += [
        f"  {count:6d} {100 * count / max(samples, 1):5.1f}%  {frame}"
        for frame, count in self_counts.most_common(top)
    ]
    lines += ["", "cumulative:"]
    lines += [
        f"  {count:6d} {100 * count / max(samples, 1):5.1f}%  {frame}"
        for frame, count in total_counts.most_common(top)
    ]
    return "\n".join(lines)


def _profile_launcher(launcher: Path, py_spy: str, rate: int, raw_dir: Path) -> None:
    """Make the mirror's provider executable run the provider in the background with py-spy attached.

    The package's executable (a frozen binary, or a launcher script) moves aside to
    ``<name>.real``, and a shell script takes its place. py-spy must not be the provider's
    parent: it prints to stdout, and anything on stdout before the go-plugin handshake line
    breaks Terraform. The executable is part of the package Terraform locks, so this is done
    before ``terraform init``.
    """
    real = launcher.with_name(launcher.name + ".real")
    launcher.rename(real)
    launcher.write_text(
        f'#!/bin/sh\n"{real}" "$@" &\nchild=$!\n'
        f'"{py_spy}" record --pid "$child" --format raw --rate {rate} --nonblocking '
        f'--output "{raw_dir}/provider-$child.txt" >/dev/null 2>&1 &\n'
        f'wait "$child"\n'
    )
    launcher.chmod(0o755)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.splitlines()[0])
    parser.add_argument("--pools", type=int, default=100)
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--step", choices=STEPS, default="apply")
    parser.add_argument("--shape", choices=("scale", "versus"), default="scale",
                        help="scale: head, then pools that wait for it (the scale run); versus: every node "
                             "resource depends on the cluster only (the side-by-side and growth runs)")
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--out", type=Path, default=Path("bench/results/profile"))
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args(argv)
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    name = f"{args.step}-{args.pools}x{args.nodes}" + ("-versus" if args.shape == "versus" else "")
    raw_dir = (args.out / name).resolve()
    shutil.rmtree(raw_dir, ignore_errors=True)
    raw_dir.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="raydog-profile-") as tmp, SandboxProcess() as sandbox:
        env = BenchEnv.create(Path(tmp))
        _profile_launcher(env.launcher(), py_spy, args.rate, raw_dir)
        tf = env.workdir("profile", sandbox)
        shape = configs.versus_cluster(args.pools, args.nodes) if args.shape == "versus" else \
            configs.raydog_cluster(args.pools)
        tf.write(shape, provider_block=False)
        configs.set_node_count(tf.workdir, args.nodes)
        init(tf)
        actions = {"apply": apply, "plan": plan_no_change, "update": apply, "destroy": destroy}
        for step in STEPS:
            if step == "update":
                configs.set_node_count(tf.workdir, args.nodes + 1)
            run = actions[step](tf)
            time.sleep(1.0)  # py-spy writes its file after the provider has exited
            if step == args.step:
                print(f"{step}: {run.seconds:.2f} s wall, {run.cpu_seconds:.2f} s CPU (under py-spy)")
                break
            for stale in raw_dir.glob("provider-*.txt"):
                stale.unlink()
        files = sorted(raw_dir.glob("provider-*.txt"))
        if args.step != "destroy":
            destroy(tf)
            for extra in set(raw_dir.glob("provider-*.txt")) - set(files):
                extra.unlink()
    summary = summarise(files, args.top)
    (args.out / f"{name}.summary.txt").write_text(summary + "\n")
    print(summary)
    print(f"\ncollapsed stacks: {raw_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
