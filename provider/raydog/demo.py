"""``make demo``: a real Ray cluster from ``terraform apply`` on this machine, then gone again.

Steps: install the provider into a private filesystem mirror, start the sandbox in exec
mode (every node a local isolated node running the real scripts), apply
examples/quickstart, run a small Ray job (estimate pi on the worker nodes), destroy, stop
the sandbox. Each step prints a progress line; a failure names the step and exits 1.
"""

from __future__ import annotations

import os
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STEPS = 7


class DemoError(RuntimeError):
    pass


def say(step: int, text: str) -> None:
    print(f"[demo {step}/{STEPS}] {text}", flush=True)


def run(cmd: list[str], cwd: Path, env: dict[str, str], what: str) -> str:
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise DemoError(f"{what} failed (exit {proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    print(f"         {what}: ok in {time.monotonic() - started:.1f}s", flush=True)
    return proc.stdout


def start_sandbox(workdir: Path, key: tuple[str, str]) -> tuple[subprocess.Popen, str]:
    """The sandbox in exec mode, accepting only ``key`` (given by environment: ps would show an option)."""
    log = open(workdir / "sandbox.log", "w")
    env = dict(os.environ, RAYDOG_SANDBOX_API_KEY_ID=key[0], RAYDOG_SANDBOX_API_KEY_SECRET=key[1])
    proc = subprocess.Popen(
        [sys.executable, "-m", "raydog_sandbox", "--mode", "exec", "--port", "0",
         "--data-dir", str(workdir / "nodes")],
        stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True, env=env,
    )
    url = proc.stdout.readline().strip()
    if not url.startswith("http://"):
        proc.wait(timeout=10)
        raise DemoError(f"the sandbox did not start:\n{(workdir / 'sandbox.log').read_text()[-2000:]}")
    return proc, url


def stop_sandbox(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


def layout(workdir: Path) -> Path:
    """Copy the quickstart and the module it uses, keeping their relative paths."""
    for relative in ("examples/quickstart", "terraform/modules/raydog"):
        shutil.copytree(REPO / relative, workdir / relative,
                        ignore=shutil.ignore_patterns(".terraform*", "terraform.tfstate*", "tests"))
    return workdir / "examples" / "quickstart"


def ray_job(client_address: str, expected_nodes: int, samples_per_task: int = 200_000, tasks: int = 8,
            wait_seconds: float = 120.0) -> dict:
    """Estimate pi with tasks spread over the worker nodes; report where they ran.

    Waits (up to ``wait_seconds``) until exactly ``expected_nodes`` Ray nodes are alive.
    """
    import ray

    ray.init(address=client_address)
    try:
        deadline = time.monotonic() + wait_seconds
        while True:
            alive = [n for n in ray.nodes() if n.get("Alive")]
            if len(alive) == expected_nodes or time.monotonic() > deadline:
                break
            time.sleep(1)

        @ray.remote(num_cpus=1)
        def sample(n: int, seed: int) -> tuple[int, str]:
            rng = random.Random(seed)
            inside = sum(1 for _ in range(n) if rng.random() ** 2 + rng.random() ** 2 <= 1.0)
            return inside, ray.util.get_node_ip_address()

        results = ray.get([sample.options(scheduling_strategy="SPREAD").remote(samples_per_task, i) for i in range(tasks)])
        inside = sum(r[0] for r in results)
        return {
            "pi": 4.0 * inside / (samples_per_task * tasks),
            "alive_nodes": len(alive),
            "alive_node_ips": sorted(n["NodeManagerAddress"] for n in alive),
            "task_node_ips": sorted({r[1] for r in results}),
        }
    finally:
        ray.shutdown()


def main() -> int:
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="raydog-demo-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "YD_"))}
    terraform = [sys.executable, "-m", "raydog.cli", "terraform"]
    sandbox = None
    step, applied, failed = 0, False, None
    try:
        step = 1
        say(step, f"installing the provider into a private mirror under {workdir}")
        mirror = workdir / "mirror"
        run([sys.executable, "-m", "raydog.cli", "install", "--dir", str(mirror)], workdir, env, "raydog install")
        (workdir / "terraformrc").write_text(textwrap.dedent(f"""\
            provider_installation {{
              filesystem_mirror {{
                path    = "{mirror}"
                include = ["registry.terraform.io/yellowdog/raydog"]
              }}
              direct {{
                exclude = ["registry.terraform.io/yellowdog/raydog"]
              }}
            }}
            """))
        env.update(TF_CLI_CONFIG_FILE=str(workdir / "terraformrc"), TF_IN_AUTOMATION="1", CHECKPOINT_DISABLE="1")

        step = 2
        say(step, "starting the YellowDog sandbox in exec mode (local isolated nodes)")
        key = ("demo", secrets.token_urlsafe(24))
        sandbox, url = start_sandbox(workdir, key)
        env.update(YD_API_URL=url, YD_API_KEY_ID=key[0], YD_API_KEY_SECRET=key[1])
        print(f"         sandbox at {url}", flush=True)

        step = 3
        quickstart = layout(workdir)
        say(step, "terraform init + apply of examples/quickstart (head + 2 worker pools)")
        run([*terraform, "init", "-input=false", "-no-color"], quickstart, env, "terraform init")
        apply_started = time.monotonic()
        applied = True
        run([*terraform, "apply", "-auto-approve", "-input=false", "-no-color"], quickstart, env, "terraform apply")
        outputs = _outputs(terraform, quickstart, env)
        print(f"         ray client {outputs['client_address']}, dashboard {outputs['dashboard_url']}", flush=True)

        step = 4
        say(step, "running a Ray job: estimate pi with tasks spread over the worker nodes")
        result = ray_job(outputs["client_address"], expected_nodes=3)
        print(f"         apply start to Ray job done: {time.monotonic() - apply_started:.1f}s", flush=True)

        step = 5
        say(step, f"result: pi ~= {result['pi']:.4f}, alive Ray nodes = {result['alive_nodes']}, "
                  f"tasks ran on {', '.join(result['task_node_ips'])}")
        if result["alive_nodes"] < 3:
            raise DemoError(f"expected 3 alive Ray nodes (head + 2 workers), found {result['alive_nodes']}")

        step = 6
        say(step, "terraform destroy")
        run([*terraform, "destroy", "-auto-approve", "-input=false", "-no-color"], quickstart, env, "terraform destroy")
        applied = False
    except Exception as exc:  # noqa: BLE001 - the demo reports any failure with its step
        failed = exc
    finally:
        if applied:
            subprocess.run([*terraform, "destroy", "-auto-approve", "-input=false", "-no-color"],
                           cwd=workdir / "examples" / "quickstart", env=env, capture_output=True)
        if sandbox is not None:
            say(STEPS, "stopping the sandbox")
            stop_sandbox(sandbox)
    if failed is not None:
        print(f"[demo] FAILED at step {step}: {failed}", file=sys.stderr, flush=True)
        print(f"[demo] files kept in {workdir}", file=sys.stderr, flush=True)
        return 1
    shutil.rmtree(workdir, ignore_errors=True)
    print(f"[demo] done in {time.monotonic() - started:.1f}s", flush=True)
    return 0


def _outputs(terraform: list[str], cwd: Path, env: dict[str, str]) -> dict:
    import json

    raw = run([*terraform, "output", "-json"], cwd, env, "terraform output")
    return {k: v["value"] for k, v in json.loads(raw).items()}


def job_main(argv: list[str]) -> int:
    """``python -m raydog.demo job CLIENT_ADDRESS EXPECTED_NODES``: run the Ray job, print JSON."""
    import json

    print(json.dumps(ray_job(argv[0], int(argv[1]))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(job_main(sys.argv[2:]) if sys.argv[1:2] == ["job"] else main())
