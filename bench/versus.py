"""RayDog's builder against the provider, side by side on the same sandbox and topology.

Topology: head + observability node + N worker pools of M nodes (M = 2). For each provisioning
delay D and each N, RayDog (yellowdog-ray 2.0.0 from the package index, unmodified, in its own
venv under bench/.raydog-venv, driven by bench/raydog_builder_run.py) and the provider (the
module-style graph: every node depends on the cluster only; ``-parallelism`` = node resources,
as the cluster-startup guide advises) each build the cluster on a fresh sandbox, interleaved,
``repeats`` times. Per run:

- ``returns_seconds``: launch until ``build()`` / ``terraform apply`` returns;
- ``all_executing_seconds``: launch until every node's task is EXECUTING (the sandbox's state,
  polled every 50 ms out of band: introspection is not counted as requests);
- ``requests``: API requests the sandbox counted until then (init excluded for Terraform);
- ``cpu_seconds``: CPU of the builder process, or of Terraform and every provider process;
- ``first_provision_seconds`` / ``last_provision_seconds``: launch until the sandbox received
  the first / last worker pool provision request (its request timeline), which splits the
  time before provisioning (start-up, planning) from the provisioning delay and what follows.

Medians of the repeats are reported. Targets (issue 16): with D >= 2 s, the provider's apply
returns within D + 1.0 s and every node executes within D + 1.5 s.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench import REPO, configs
from bench.env import BenchEnv, SandboxProcess, apply, destroy, init

RAYDOG_VERSION = "2.0.0"
RAYDOG_VENV = REPO / "bench" / ".raydog-venv"
RAYDOG_SCRIPT = REPO / "bench" / "raydog_builder_run.py"
NODES = 2


def raydog_python() -> Path:
    """The RayDog venv's interpreter, with yellowdog-ray==2.0.0 installed from the package index."""
    python = RAYDOG_VENV / "bin" / "python"
    check = [str(python), "-c", "import importlib.metadata as m; print(m.version('yellowdog-ray'))"]
    if python.exists() and subprocess.run(check, capture_output=True, text=True).stdout.strip() == RAYDOG_VERSION:
        return python
    subprocess.run([sys.executable, "-m", "venv", str(RAYDOG_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", f"yellowdog-ray=={RAYDOG_VERSION}"], check=True)
    return python


class ExecutingWatch:
    """Polls the sandbox's state until ``expected`` tasks are EXECUTING; records when."""

    def __init__(self, sandbox: SandboxProcess, expected: int, started: float) -> None:
        self.sandbox, self.expected, self.started = sandbox, expected, started
        self.seconds: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            state = self.sandbox.state()
            executing = sum(1 for wr in state["workRequirements"] for group in wr["taskGroups"]
                            for task in group["tasks"] if task["status"] == "EXECUTING")
            if executing >= self.expected:
                self.seconds = time.perf_counter() - self.started
                return
            self._stop.wait(0.05)

    def wait(self, timeout: float) -> float | None:
        self._thread.join(timeout)
        self._stop.set()
        return self.seconds


def run_builder(python: Path, delay: float, pools: int) -> dict:
    with SandboxProcess(provision_delay=delay) as sandbox:
        env = dict(os.environ, YD_API_URL=sandbox.url, YD_API_KEY_ID=sandbox.key_id,
                   YD_API_KEY_SECRET=sandbox.key_secret)
        sandbox.reset_requests()
        started, wall_started = time.perf_counter(), time.time()
        watch = ExecutingWatch(sandbox, pools * NODES + 2, started)
        proc = subprocess.Popen([str(python), str(RAYDOG_SCRIPT), str(pools), str(NODES)], env=env,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = proc.stdout.readline()
        returned = time.perf_counter() - started
        built = json.loads(line)
        executing = watch.wait(120)
        counted = sandbox.requests()
        proc.communicate("shutdown\n", timeout=120)
        return {"returns_seconds": round(returned, 3), "all_executing_seconds": _round(executing),
                "requests": counted["total"], "cpu_seconds": round(built["cpu_seconds"], 3),
                **provision_offsets(counted, wall_started)}


def run_provider(env: BenchEnv, delay: float, pools: int, name: str) -> dict:
    with SandboxProcess(provision_delay=delay) as sandbox:
        tf = env.workdir(name, sandbox)
        tf.write(configs.versus_cluster(pools, NODES), provider_block=False)
        init(tf)
        sandbox.reset_requests()
        started, wall_started = time.perf_counter(), time.time()
        watch = ExecutingWatch(sandbox, pools * NODES + 2, started)
        run = apply(tf, parallelism=pools + 3)  # every node resource at once (see the cluster-startup guide)
        executing = watch.wait(120)
        counted = sandbox.requests()
        destroy(tf, parallelism=pools + 3)
        return {"returns_seconds": round(run.seconds, 3), "all_executing_seconds": _round(executing),
                "requests": counted["total"], "cpu_seconds": round(run.cpu_seconds, 3),
                **provision_offsets(counted, wall_started)}


PROVISION = "POST /workerPools/provisioned/template"


def provision_offsets(counted: dict, wall_started: float) -> dict:
    """Seconds from launch to the first and last provision request, from the sandbox's timeline
    (its offsets count from the reset, made just before launch; both clocks are this machine's)."""
    times = [offset for offset, route in counted.get("timeline", []) if route == PROVISION]
    shift = counted.get("reset_at", wall_started) - wall_started
    return {"first_provision_seconds": _round(min(times) + shift) if times else None,
            "last_provision_seconds": _round(max(times) + shift) if times else None}


def _span(run: dict) -> str:
    return f"{run.get('first_provision_seconds')}-{run.get('last_provision_seconds')}"


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _median(runs: list[dict]) -> dict:
    keys = runs[0].keys()
    return {key: (None if any(r[key] is None for r in runs) else round(statistics.median(r[key] for r in runs), 3))
            for key in keys}


def run(env: BenchEnv, delays=(0.0, 2.0, 5.0), sizes=(10, 50), repeats: int = 3) -> dict:
    """Every (D, N) for both, interleaved (builder, provider, builder, ...), medians of ``repeats``."""
    python = raydog_python()
    cases = []
    for delay in delays:
        for pools in sizes:
            builder, provider = [], []
            for index in range(repeats):
                builder.append(run_builder(python, delay, pools))
                provider.append(run_provider(env, delay, pools, f"versus-{pools}-{delay:g}-{index}"))
            cases.append({"delay_seconds": delay, "pools": pools, "nodes_per_pool": NODES,
                          "raydog": _median(builder), "provider": _median(provider),
                          "runs": {"raydog": builder, "provider": provider}})
    return {"raydog_version": RAYDOG_VERSION, "repeats": repeats, "cases": cases}


def table(versus: dict) -> str:
    """The side-by-side table (medians)."""
    lines = ["D (s) | pools | returns: RayDog / provider (s) | all executing: RayDog / provider (s) | "
             "first-last provision: RayDog / provider (s) | requests: RayDog / provider | CPU: RayDog / provider (s)",
             "---|---|---|---|---|---|---"]
    for case in versus["cases"]:
        r, p = case["raydog"], case["provider"]
        lines.append(f"{case['delay_seconds']:g} | {case['pools']} | {r['returns_seconds']} / {p['returns_seconds']} | "
                     f"{r['all_executing_seconds']} / {p['all_executing_seconds']} | "
                     f"{_span(r)} / {_span(p)} | {r['requests']} / "
                     f"{p['requests']} | {r['cpu_seconds']} / {p['cpu_seconds']}")
    return "\n".join(lines)




def growth(env: BenchEnv, sizes=(25, 50, 100, 200, 400), parallelism: int = 10) -> dict:
    """Apply and destroy of the versus topology at each size against the terraform_data floor:
    wall and CPU time per pool, so a cost that grows with the number of pools shows as a
    per-pool figure that rises with N."""
    rows = []
    for pools in sizes:
        with SandboxProcess() as sandbox:
            tf = env.workdir(f"growth-{pools}", sandbox)
            tf.write(configs.versus_cluster(pools, NODES), provider_block=False)
            init(tf)
            sandbox.reset_requests()
            applied = apply(tf, parallelism)
            requests = sandbox.requests()["total"]
            sandbox_cpu = sandbox.cpu_seconds()
            removed = destroy(tf, parallelism)
        floor = env.workdir(f"growth-floor-{pools}")
        floor.write(configs.growth_floor(pools), provider_block=False)
        init(floor)
        floor_apply = apply(floor, parallelism)
        destroy(floor, parallelism)
        rows.append({
            "pools": pools,
            "apply_seconds": round(applied.seconds, 3),
            "apply_cpu_seconds": round(applied.cpu_seconds, 3),
            "apply_requests": requests,
            "sandbox_cpu_seconds": round(sandbox_cpu, 3),
            "destroy_seconds": round(removed.seconds, 3),
            "floor_apply_seconds": round(floor_apply.seconds, 3),
            "floor_apply_cpu_seconds": round(floor_apply.cpu_seconds, 3),
            "floor_ratio": round(applied.seconds / max(floor_apply.seconds, 1e-3), 2),
            "provider_cpu_ms_per_pool": round(1000 * (applied.cpu_seconds - floor_apply.cpu_seconds) / pools, 2),
        })
    return {"nodes_per_pool": NODES, "parallelism": parallelism, "rows": rows}


def growth_table(result: dict) -> str:
    lines = ["pools | apply (s) | floor (s) | ratio | CPU - floor CPU per pool (ms) | requests",
             "---|---|---|---|---|---"]
    for row in result["rows"]:
        lines.append(f"{row['pools']} | {row['apply_seconds']} | {row['floor_apply_seconds']} | {row['floor_ratio']} | "
                     f"{row['provider_cpu_ms_per_pool']} | {row['apply_requests']}")
    return "\n".join(lines)
