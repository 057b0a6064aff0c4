"""``python -m bench`` (``make bench``): run every measurement, write JSON, print the table.

Results go to ``bench/results/bench-<UTC time>.json`` and ``bench/results/latest.json``
(see bench/README.md for what each field means). ``--smoke`` is a reduced run for the test
suite: tiny sizes, few samples, no exec mode; its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from bench import REPO, exec_mode, head_ready, report, scale, startup, versus
from bench.env import BenchEnv, checkout, terraform_command

SCHEMA_VERSION = 1


def _sizes(text: str) -> list[int]:
    return sorted({int(part) for part in text.split(",") if part.strip()})


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--pools", type=_sizes, default=[10, 50, 100], help="worker pool counts (default 10,50,100)"
    )
    parser.add_argument("--nodes", type=int, default=10, help="nodes per worker pool (default 10)")
    parser.add_argument(
        "--more-nodes",
        type=int,
        default=20,
        help="nodes per pool of the node-scaling run (default 20; 0 skips it)",
    )
    parser.add_argument("--parallelism", type=int, default=10, help="terraform -parallelism (default 10)")
    parser.add_argument(
        "--startup-samples", type=int, default=20, help="provider launches timed (default 20)"
    )
    parser.add_argument(
        "--head-delay", type=float, default=3.0, help="provisioning delay D, seconds (default 3)"
    )
    parser.add_argument(
        "--head-repeats", type=int, default=3, help="applies per head-ready median (default 3)"
    )
    parser.add_argument("--no-floor", action="store_true", help="skip the terraform_data floor")
    parser.add_argument("--versus-delays", type=lambda t: [float(x) for x in t.split(",")], default=[0.0, 2.0, 5.0],
                        help="provisioning delays of the RayDog side-by-side (default 0,2,5)")
    parser.add_argument("--versus-pools", type=_sizes, default=[10, 50], help="pools of the side-by-side (default 10,50)")
    parser.add_argument("--versus-repeats", type=int, default=3, help="interleaved runs per side-by-side case (default 3)")
    parser.add_argument("--growth-pools", type=_sizes, default=[25, 50, 100, 200, 400],
                        help="sizes of the growth table (default 25,50,100,200,400)")
    parser.add_argument("--only", default=None,
                        help="comma-separated parts to run: scale,nodes,head,start,exec,versus,growth (default all)")
    parser.add_argument("--no-exec", action="store_true", help="skip the exec-mode measurement")
    parser.add_argument(
        "--provider-ref",
        default=None,
        metavar="GITREF",
        help="measure the provider's code at this git ref (e.g. to get 'before' figures)",
    )
    parser.add_argument(
        "--terraform",
        default="path",
        metavar="WHICH",
        help="Terraform to run: 'path' (the terraform on PATH if there is one, else the embedded one: "
             "the rule of `raydog terraform`; the default), 'embedded', or a terraform binary",
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results", help="results directory")
    parser.add_argument("--smoke", action="store_true", help="a reduced run that only checks the bench works")
    args = parser.parse_args(argv)
    if args.smoke:
        args.pools, args.nodes, args.more_nodes = [1], 2, 3
        args.startup_samples, args.head_delay, args.head_repeats = 3, 0.5, 1
        args.no_exec = True
        args.only = args.only or "scale,nodes,head,start,exec"  # the side-by-side needs RayDog from the index
    return args


def _git(*args: str) -> str | None:
    try:
        return subprocess.run(
            ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def _terraform_version(env: BenchEnv) -> str | None:
    try:
        out = subprocess.run(
            [*terraform_command(), "version", "-json"],
            capture_output=True,
            text=True,
            env=env.env,
            check=True,
            timeout=60,
        ).stdout
        return json.loads(out).get("terraform_version")
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


def _part(results: dict, errors: list[str], name: str, action) -> None:
    """Run one measurement; a failure is recorded in the results and the bench goes on."""
    started = time.perf_counter()
    print(f"bench: {name} ...", file=sys.stderr, flush=True)
    try:
        action()
    except Exception as error:  # noqa: BLE001 - one part's failure is reported, the others still run
        errors.append(name)
        results.setdefault("errors", {})[name] = f"{type(error).__name__}: {error}"
        traceback.print_exc()
    print(f"bench: {name} done in {time.perf_counter() - started:.0f}s", file=sys.stderr, flush=True)


def run(args: argparse.Namespace, root: Path) -> tuple[dict, list[str]]:
    tree = checkout(args.provider_ref, root / "checkout") if args.provider_ref else REPO
    env = BenchEnv.create(root / "env", tree / "provider" if args.provider_ref else None)
    results: dict = {
        "schema": SCHEMA_VERSION,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "smoke": args.smoke,
        "provider": {
            "ref": args.provider_ref or "working tree",
            "commit": _git("rev-parse", "HEAD"),
            "dirty": bool(_git("status", "--porcelain", "--", "provider", "scripts")),
        },
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "terraform": _terraform_version(env),
            "terraform_command": " ".join(terraform_command()),
            "loadavg_start": [round(x, 2) for x in os.getloadavg()],
        },
        "config": {
            "pools": args.pools,
            "nodes_per_pool": args.nodes,
            "parallelism": args.parallelism,
            "more_nodes": args.more_nodes,
            "startup_samples": args.startup_samples,
            "head_delay_seconds": args.head_delay,
            "head_repeats": args.head_repeats,
        },
        "scale": [],
    }
    errors: list[str] = []

    def scale_runs() -> None:
        for pools in args.pools:
            run = scale.run_raydog(env, pools, args.nodes, args.parallelism)
            if not args.no_floor:
                run = scale.with_floor(run, scale.run_floor(env, pools, args.nodes, args.parallelism))
            results["scale"].append(run)
        results["requests_per_pool"] = scale.requests_per_pool(results["scale"])

    def node_scaling() -> None:
        pools = min(args.pools)
        base = next(run for run in results["scale"] if run["pools"] == pools)
        more = scale.run_raydog(env, pools, args.more_nodes, args.parallelism)
        results["node_scaling"] = {
            "pools": pools,
            "nodes": [args.nodes, args.more_nodes],
            "growing_routes": scale.growing_routes(base, more),
            "run": more,
        }

    def head() -> None:
        results["head_ready"] = head_ready.run(env, args.head_delay, args.head_repeats)

    def start() -> None:
        results["provider_start"] = startup.run(env, args.startup_samples)

    def exec_quickstart() -> None:
        results["exec"] = (
            {"status": "skipped", "reason": "--no-exec" + (" (--smoke)" if args.smoke else "")}
            if args.no_exec
            else exec_mode.run(env, tree)
        )

    def side_by_side() -> None:
        results["versus"] = versus.run(env, args.versus_delays, args.versus_pools, args.versus_repeats)

    def growth() -> None:
        results["growth"] = versus.growth(env, args.growth_pools, args.parallelism)

    wanted = set((args.only or "scale,nodes,head,start,exec,versus,growth").split(","))
    if "scale" in wanted:
        _part(results, errors, "scale", scale_runs)
    if "nodes" in wanted and args.more_nodes > args.nodes and results["scale"]:
        _part(results, errors, "node scaling", node_scaling)
    if "head" in wanted:
        _part(results, errors, "head ready", head)
    if "start" in wanted:
        _part(results, errors, "provider start", start)
    if "exec" in wanted:
        _part(results, errors, "exec mode", exec_quickstart)
    if "versus" in wanted:
        _part(results, errors, "RayDog side by side", side_by_side)
    if "growth" in wanted:
        _part(results, errors, "growth", growth)
    results["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    results["targets"] = report.evaluate(results)
    return results, errors


def choose_terraform(which: str) -> str:
    """Point the harness (RAYDOG_TERRAFORM) at the Terraform ``--terraform`` names; what it runs.
    ``path`` is ``raydog terraform``'s own choice (raydog.terraform.terraform_on_path)."""
    if which == "path":
        from raydog.terraform import terraform_on_path

        which = terraform_on_path() or "embedded"
    os.environ["RAYDOG_TERRAFORM"] = which
    return which


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    args.terraform = choose_terraform(args.terraform)
    with tempfile.TemporaryDirectory(prefix="raydog-bench-") as tmp:
        results, errors = run(args, Path(tmp))
    results["bench_seconds"] = round(time.perf_counter() - started, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    name = f"bench-{'smoke-' if args.smoke else ''}{stamp}.json"
    text = json.dumps(results, indent=2) + "\n"
    (args.out / name).write_text(text)
    (args.out / ("latest-smoke.json" if args.smoke else "latest.json")).write_text(text)
    print(report.table(results))
    print(f"\nresults: {args.out / name} ({results['bench_seconds']:.0f}s)")
    if errors:
        print(
            f"bench: these measurements failed: {', '.join(errors)} (see 'errors' in the JSON)",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
