"""A cluster's whole life, many times over, with the API failing all along (issue 6, item 8).

Each cycle, with the sandbox's faults on (10% 5xx, 5% 429, 0-300 ms latency, 5% responses
dropped after commit, a new seed per cycle): apply a cluster with a head and two pools,
grow one pool, add a pool and remove another, then destroy. A command that fails on a
transient error is run again (no manual step) and counted. At the end nothing is live,
nothing was left behind between cycles, and the provider's peak memory per process did not
grow from the first cycles to the last.

`make test` runs RAYDOG_SOAK_CYCLES=1 cycle; the full run is 50 (see docs/guides/reliability.md).
"""

from __future__ import annotations

import statistics
import time

from harness.platform_view import view
from reliability_helpers import (
    ISSUE_FAULTS,
    FaultCounts,
    assert_state_owns_the_platform,
    cluster_config,
    count_faults,
    created_objects,
    live_pool_names,
    record,
    run_sampled,
    scale,
)

CYCLES = scale("RAYDOG_SOAK_CYCLES", 1)
RUNS_PER_STEP = 3  # a step may fail on a transient error twice before the soak fails
MEMORY_GROWTH_LIMIT = 1.10  # the last cycles' median peak RSS may exceed the first's by 10%

STEPS = [
    ("apply", {"a": 1, "b": 1}),
    ("resize", {"a": 3, "b": 1}),
    ("add/remove", {"a": 3, "c": 2}),
]


def test_soak_of_apply_resize_add_remove_and_destroy_under_faults_leaks_nothing(sandbox_factory, terraform_factory):
    sandbox = sandbox_factory()
    counts: FaultCounts = count_faults(sandbox)
    tf = terraform_factory("soak", sandbox=sandbox)
    tf.write(cluster_config("soak", {}))
    tf.init()
    reruns: dict[str, int] = {}
    peaks_by_cycle: list[list[int]] = []
    started = time.monotonic()

    def step(name: str, *args: str) -> None:
        for attempt in range(1, RUNS_PER_STEP + 1):
            run = run_sampled(tf, *args, "-auto-approve", "-input=false", "-no-color")
            peaks.extend(run.provider_peak_rss.values())
            if run.returncode == 0:
                return
            reruns[name] = reruns.get(name, 0) + 1
            print(f"cycle {cycle} {name} attempt {attempt} failed:\n{run.output[-2000:]}")
        raise AssertionError(f"cycle {cycle}: {name} failed {RUNS_PER_STEP} times")

    for cycle in range(1, CYCLES + 1):
        peaks: list[int] = []
        sandbox.set_faults(f"{ISSUE_FAULTS},seed={cycle}")
        for name, pools in STEPS:
            tf.write(cluster_config("soak", pools, wait_for_nodes=True))
            step(name, "apply")
            assert live_pool_names(sandbox) == sorted(["soak-head", *(f"soak-{p}" for p in pools)]), (cycle, name)
            assert_state_owns_the_platform(tf, sandbox)
        resources = tf.resources()
        assert resources["raydog_worker_pool.a"]["node_count"] == 3
        assert len(view(sandbox).live_nodes(resources["raydog_worker_pool.a"]["id"])) == 3
        step("destroy", "destroy")
        assert view(sandbox).nothing_live(), (cycle, view(sandbox).live)
        peaks_by_cycle.append(peaks)

    sandbox.set_faults("none")
    assert view(sandbox).nothing_live(), view(sandbox).live
    per_cycle = [statistics.median(p) / 2**20 for p in peaks_by_cycle]
    window = max(1, min(5, len(per_cycle) // 3))
    first, last = statistics.median(per_cycle[:window]), statistics.median(per_cycle[-window:])
    figures = {
        "cycles": CYCLES,
        "seconds": round(time.monotonic() - started, 1),
        "reruns": reruns,
        "faults": counts.as_dict(),
        "created": created_objects(sandbox),
        "leaked": view(sandbox).live,
        "provider_processes": sum(len(p) for p in peaks_by_cycle),
        "provider_peak_rss_mib": {"first_cycles_median": round(first, 1), "last_cycles_median": round(last, 1),
                                  "max": round(max(max(p) for p in peaks_by_cycle) / 2**20, 1)},
    }
    record("soak", figures)
    print(figures)
    assert last <= first * MEMORY_GROWTH_LIMIT, f"provider memory grew: {figures['provider_peak_rss_mib']}"
