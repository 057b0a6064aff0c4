"""Thirty pools created and destroyed ten at a time, over and over (issue 6, item 5).

Every pool's create appends a task group to the one work requirement with a
read-modify-write PUT of its whole group list (the sandbox, like the platform, replaces
the list with the body's), so parallel creates that raced would lose groups. Each cycle
checks that every group is present and running its task, that the requirement holds
exactly the groups ever created (none lost, none doubled), and that no apply or destroy
hangs (each has a deadline).

Every request is delayed 0-100 ms so the updates overlap. `make test` runs
RAYDOG_CONCURRENCY_CYCLES=2 cycles; the full run is 20.
"""

from __future__ import annotations

import time

import pytest
from harness.platform_view import view
from raydog.names import base_name
from reliability_helpers import (
    assert_state_owns_the_platform,
    cluster_config,
    live_pools,
    pools_named,
    record,
    scale,
)

CYCLES = scale("RAYDOG_CONCURRENCY_CYCLES", 2)
POOLS = 30
DEADLINE = 300  # seconds for one apply or destroy of the 30 pools: past it, a deadlock


@pytest.mark.sandbox(faults="latency=0-100ms,seed=5")  # widens the windows in which updates could race
def test_thirty_pools_created_and_destroyed_at_parallelism_ten_keep_every_task_group(terraform, sandbox):
    terraform.write(cluster_config("cc", {}))
    terraform.init()
    terraform.apply()
    cluster = terraform.resources()["raydog_cluster.c"]["id"]
    head_group = terraform.resources()["raydog_head.h"]["task_group_id"]
    created_groups = {head_group}
    timings = []

    for cycle in range(1, CYCLES + 1):
        pools = pools_named("p", POOLS, node_count=1)
        terraform.write(cluster_config("cc", pools))
        started = time.monotonic()
        terraform.apply("-parallelism=10", timeout=DEADLINE)
        created = time.monotonic() - started

        resources = terraform.resources()
        groups = {resources[f"raydog_worker_pool.{name}"]["task_group_id"] for name in pools}
        assert len(groups) == POOLS, f"cycle {cycle}: {POOLS - len(groups)} pools share a task group"
        created_groups |= groups
        platform = view(sandbox)
        on_platform = {g["id"] for g in platform.node_groups(cluster)}
        # The deletes of earlier cycles dropped their pools' groups; no group may be lost otherwise.
        dropped = {g["id"] for g in platform.work_requirement(cluster)["removedTaskGroups"]}
        assert groups <= on_platform and on_platform | dropped == created_groups, (
            f"cycle {cycle}: lost {created_groups - on_platform - dropped}, unexpected {on_platform - created_groups}")
        for name in pools:
            group = resources[f"raydog_worker_pool.{name}"]["task_group_id"]
            assert [t["status"] for t in platform.tasks(group)] == ["EXECUTING"], (cycle, name)
        assert_state_owns_the_platform(terraform, sandbox)

        terraform.write(cluster_config("cc", {}))
        started = time.monotonic()
        terraform.apply("-parallelism=10", timeout=DEADLINE)
        destroyed = time.monotonic() - started
        platform = view(sandbox)
        assert [base_name(p["name"]) for p in live_pools(platform)] == ["cc-head"]
        # Only the head's group is left listed; the pools' deletes dropped theirs, and their tasks ended.
        assert {g["id"] for g in platform.node_groups(cluster)} == {head_group}
        assert {t["status"] for group in groups for t in platform.tasks(group)} == {"ABORTED"}
        assert [t["status"] for t in platform.tasks(head_group)] == ["EXECUTING"], "the head keeps running"
        timings.append((round(created, 1), round(destroyed, 1)))

    assert len(view(sandbox).state["workerPools"]) == 1 + POOLS * CYCLES, "a pool was provisioned twice"
    terraform.destroy()
    assert view(sandbox).nothing_live(), view(sandbox).live
    record("concurrency", {"cycles": CYCLES, "pools": POOLS, "task_groups": len(created_groups),
                           "create_destroy_seconds": timings})
