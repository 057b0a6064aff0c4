"""Scale and floor: one cluster + head + N worker pools of M nodes, through every lifecycle step.

For each N: ``init`` (untimed), ``apply``, a no-change ``plan`` (with refresh), a
``node_count`` change on every pool (``apply``, M -> M+1), another no-change plan (untimed:
checks the change converged), and ``destroy``. Each timed step records wall time, CPU
time (Terraform plus every provider process), the sandbox's CPU, the API requests the
sandbox counted by route, and the provider processes' count and peak RSS. The floor runs
the same steps on the same graph built from ``terraform_data`` (no provider at all).
"""

from __future__ import annotations

from bench import configs
from bench.env import BenchEnv, Run, SandboxProcess, apply, destroy, init, plan_no_change

STEPS = ("apply", "plan", "update", "destroy")


def _step(run: Run, requests: dict | None = None, sandbox_cpu: float | None = None) -> dict:
    step = {
        "seconds": round(run.seconds, 3),
        "cpu_seconds": round(run.cpu_seconds, 3),
        "provider_launches": run.provider_launches,
        "provider_peak_rss_mb": run.provider_peak_rss_mb,
    }
    if sandbox_cpu is not None:
        step["sandbox_cpu_seconds"] = round(sandbox_cpu, 3)
    if requests is not None:
        step["requests"] = requests
    return step


def run_raydog(env: BenchEnv, pools: int, nodes: int, parallelism: int = 10) -> dict:
    """The lifecycle of a RayDog cluster of ``pools`` x ``nodes`` against a fresh sandbox."""
    with SandboxProcess() as sandbox:
        tf = env.workdir(f"raydog-{pools}x{nodes}", sandbox)
        tf.write(configs.raydog_cluster(pools), provider_block=False)
        configs.set_node_count(tf.workdir, nodes)
        init(tf)
        steps: dict[str, dict] = {}

        def measured(name: str, action) -> None:
            sandbox.reset_requests()
            cpu_before = sandbox.cpu_seconds()
            run = action()
            steps[name] = _step(run, sandbox.requests(), sandbox.cpu_seconds() - cpu_before)

        measured("apply", lambda: apply(tf, parallelism))
        measured("plan", lambda: plan_no_change(tf, parallelism))
        configs.set_node_count(tf.workdir, nodes + 1)
        measured("update", lambda: apply(tf, parallelism))
        plan_no_change(tf, parallelism)
        measured("destroy", lambda: destroy(tf, parallelism))
        live = sandbox.state().get("live", {})
        left = {kind: count for kind, count in live.items() if count}
    if left:
        raise RuntimeError(f"destroy left objects live on the platform: {left}")
    return {"pools": pools, "nodes_per_pool": nodes, "steps": steps}


def run_floor(env: BenchEnv, pools: int, nodes: int, parallelism: int = 10) -> dict:
    """The same lifecycle on the terraform_data graph: Terraform's own cost for this shape."""
    tf = env.workdir(f"floor-{pools}x{nodes}")
    tf.write(configs.floor_graph(pools), provider_block=False)
    configs.set_node_count(tf.workdir, nodes)
    init(tf)
    steps = {"apply": _step(apply(tf, parallelism)), "plan": _step(plan_no_change(tf, parallelism))}
    configs.set_node_count(tf.workdir, nodes + 1)
    steps["update"] = _step(apply(tf, parallelism))
    steps["destroy"] = _step(destroy(tf, parallelism))
    return {"pools": pools, "nodes_per_pool": nodes, "steps": steps}


def with_floor(run: dict, floor: dict) -> dict:
    """``run`` with its floor and the ratio of each step's time to the floor's."""
    ratios = {
        step: round(run["steps"][step]["seconds"] / max(floor["steps"][step]["seconds"], 1e-3), 2)
        for step in STEPS
    }
    return {**run, "floor": floor, "floor_ratio": ratios}


def requests_per_pool(runs: list[dict]) -> dict:
    """API requests one more worker pool costs in each step.

    With two or more sizes this is the slope between the two largest (the cluster's and
    head's fixed share cancels out); with one size it is total / pools, an upper bound.
    """
    sized = sorted(runs, key=lambda run: run["pools"])
    if len(sized) >= 2 and sized[-1]["pools"] > sized[-2]["pools"]:
        small, big = sized[-2], sized[-1]
        basis = f"marginal, {small['pools']} -> {big['pools']} pools"
        per_pool = {
            step: round(
                (big["steps"][step]["requests"]["total"] - small["steps"][step]["requests"]["total"])
                / (big["pools"] - small["pools"]),
                2,
            )
            for step in STEPS
        }
    else:
        only = sized[-1]
        basis = f"total / {only['pools']} pools (upper bound)"
        per_pool = {
            step: round(only["steps"][step]["requests"]["total"] / max(only["pools"], 1), 2) for step in STEPS
        }
    return {"basis": basis, **per_pool}


def growing_routes(base: dict, more_nodes: dict) -> dict:
    """Routes called more often when every pool has more nodes (same number of pools).

    A call made once per node adds at least (nodes_b - nodes_a) requests per pool; a route
    counts as growing when it added at least half that, so an extra poll or two during a
    wait is not mistaken for per-node cost.
    """
    pools = base["pools"]
    extra_nodes = more_nodes["nodes_per_pool"] - base["nodes_per_pool"]
    threshold = max(1.0, pools * extra_nodes / 2)
    found: dict[str, dict[str, list[int]]] = {}
    for step in STEPS:
        before = base["steps"][step]["requests"]["routes"]
        after = more_nodes["steps"][step]["requests"]["routes"]
        found[step] = {
            route: [before.get(route, 0), count]
            for route, count in sorted(after.items())
            if count - before.get(route, 0) >= threshold
        }
    return found
