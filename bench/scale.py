"""Scale and floor: one cluster + head + N worker pools of M nodes, through every lifecycle step.

For each N: ``init`` (untimed), ``apply``, a no-change ``plan`` (with refresh), a
``node_count`` change on every pool (``apply``), another no-change plan (untimed, checks the
change converged), and ``destroy``. Each timed step records wall time, the API requests
the sandbox counted (by route), and the provider processes' count and peak RSS.
The floor runs the same steps on the same graph built from ``terraform_data``.
"""

from __future__ import annotations

from bench import configs
from bench.env import BenchEnv, Run, SandboxProcess, apply, destroy, init, plan_no_change

OPERATIONS = ("apply", "plan", "update", "destroy")


def _step(run: Run, requests: dict | None) -> dict:
    step = {
        "seconds": round(run.seconds, 3),
        "cpu_seconds": round(run.cpu_seconds, 3),
        "provider_launches": run.provider_launches,
        "provider_peak_rss_mb": run.provider_peak_rss_mb,
    }
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
            run = action()
            steps[name] = _step(run, sandbox.requests())

        measured("apply", lambda: apply(tf, parallelism))
        measured("plan", lambda: plan_no_change(tf, parallelism))
        configs.set_node_count(tf.workdir, nodes + 1)
        measured("update", lambda: apply(tf, parallelism))
        plan_no_change(tf, parallelism)
        measured("destroy", lambda: destroy(tf, parallelism))
        live = sandbox.state().get("live", {})
        left = {kind: count for kind, count in live.items() if count}
        return {"pools": pools, "nodes_per_pool": nodes, "steps": steps, "left_on_platform": left}


def run_floor(env: BenchEnv, pools: int, nodes: int, parallelism: int = 10) -> dict:
    """The same lifecycle on the terraform_data graph: Terraform's own cost for this shape."""
    tf = env.workdir(f"floor-{pools}x{nodes}")
    tf.write(configs.floor_graph(pools), provider_block=False)
    configs.set_node_count(tf.workdir, nodes)
    init(tf)
    steps = {"apply": _step(apply(tf, parallelism), None), "plan": _step(plan_no_change(tf, parallelism), None)}
    configs.set_node_count(tf.workdir, nodes + 1)
    steps["update"] = _step(apply(tf, parallelism), None)
    steps["destroy"] = _step(destroy(tf, parallelism), None)
    return {"pools": pools, "nodes_per_pool": nodes, "steps": steps}


def per_pool(requests: dict, pools: int) -> float:
    """Requests per worker pool, counting the cluster's and head's share in (an upper bound)."""
    return round(requests.get("total", 0) / max(pools, 1), 2)
