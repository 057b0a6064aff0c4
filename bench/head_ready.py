"""Head-ready latency: how long after its node is up does ``apply`` of cluster + head finish?

The sandbox provisions nodes after a delay D (task start delay 0), so the head's task can
reach EXECUTING no sooner than D after its pool is provisioned. ``overhead = apply - D``
is everything else: Terraform, the provider's launches and calls, and how late the
provider notices the task is executing. The same apply with D = 0 is measured too, so
``detection = (apply_D - apply_0) - D`` isolates the noticing (the polling latency).
"""

from __future__ import annotations

import statistics

from bench import configs
from bench.env import BenchEnv, SandboxProcess, apply, destroy, init


def _apply_seconds(env: BenchEnv, name: str, delay: float) -> float:
    with SandboxProcess(provision_delay=delay) as sandbox:
        tf = env.workdir(name, sandbox)
        tf.write(configs.raydog_cluster(0), provider_block=False)
        init(tf)
        seconds = apply(tf).seconds
        destroy(tf)
        return seconds


def run(env: BenchEnv, delay: float = 3.0, repeats: int = 3) -> dict:
    """Median over ``repeats`` applies with delay D and with no delay."""
    with_delay = [_apply_seconds(env, f"head-ready-d{i}", delay) for i in range(repeats)]
    without = [_apply_seconds(env, f"head-ready-0-{i}", 0.0) for i in range(repeats)]
    apply_d, apply_0 = statistics.median(with_delay), statistics.median(without)
    return {
        "provision_delay_seconds": delay,
        "repeats": repeats,
        "apply_seconds": round(apply_d, 3),
        "apply_seconds_no_delay": round(apply_0, 3),
        "overhead_seconds": round(apply_d - delay, 3),
        "detection_seconds": round(apply_d - apply_0 - delay, 3),
        "runs": {"with_delay": [round(s, 3) for s in with_delay], "no_delay": [round(s, 3) for s in without]},
    }
