"""Changes made outside Terraform are planned with the right action and repaired (issue 6, item 4).

| drift (out of band) | next plan | 
|---|---|
| a worker node killed | that pool's `node_count` updated in place, restoring the node |
| a worker pool terminated | that pool created again |
| the head's task aborted, or its node killed | the head created again, and every pool that uses its IP replaced |
| the work requirement cancelled | the cluster created again, and everything in it |

After the repairing apply the sandbox holds exactly what state holds and the next plan is
empty; a destroy instead of the repair leaves nothing live either.
"""

from __future__ import annotations

import pytest
from harness.platform_view import view
from harness.terraform import changes
from harness.waits import wait_until
from raydog.names import base_name
from reliability_helpers import assert_state_owns_the_platform, cluster_config, live_pools

POOLS = {"a": 2, "b": 2, "c": 1}
ALL_POOLS = {f"raydog_worker_pool.{name}" for name in POOLS}
REPLACE = (["delete", "create"], ["create", "delete"])


def build(tf, name: str) -> dict:
    tf.write(cluster_config(name, POOLS))
    tf.init()
    tf.apply()
    return tf.resources()


def repair_and_check(tf, sandbox, cluster: str) -> dict:
    tf.apply()
    assert_state_owns_the_platform(tf, sandbox)
    assert sorted(base_name(p["name"]) for p in live_pools(view(sandbox))) == sorted(
        [f"{cluster}-head", *(f"{cluster}-{name}" for name in POOLS)])
    resources = tf.resources()
    platform = view(sandbox)
    for name, count in POOLS.items():
        pool = resources[f"raydog_worker_pool.{name}"]
        assert len(platform.tasks(pool["task_group_id"], "EXECUTING")) == count, name
        assert len(platform.live_nodes(pool["id"])) == count, name
    assert [t["status"] for t in platform.live_tasks(resources["raydog_head.h"]["task_group_id"])] == ["EXECUTING"]
    result = tf.plan_exitcode()
    assert result.returncode == 0, f"the plan after the repair is not empty:\n{result.output}"
    return resources


def destroy_and_check(tf, sandbox) -> None:
    """Destroy, then nothing may stay live. A pool's delete returns once its compute requirement is
    TERMINATING (final); with the cluster gone from state no cluster delete waits for TERMINATED,
    so a strict platform's terminate delay is waited for here."""
    tf.destroy()
    wait_until(lambda: view(sandbox), "nothing live after destroy", until=lambda found: found.nothing_live(),
               timeout=15)


def test_lost_worker_nodes_are_restored_in_place_and_a_terminated_pool_is_recreated(terraform, sandbox):
    before = build(terraform, "dn")
    pool_a, pool_b, pool_c = (before[f"raydog_worker_pool.{name}"] for name in "abc")
    sandbox.kill_node(view(sandbox).live_nodes(pool_a["id"])[-1]["id"])
    sandbox.terminate_pool(pool_b["id"])
    for task in view(sandbox).live_tasks(pool_c["task_group_id"]):
        sandbox.abort_task(task["id"])

    plan = terraform.plan_json()
    assert changes(plan) == {
        "raydog_worker_pool.a": ["update"], "raydog_worker_pool.b": ["create"], "raydog_worker_pool.c": ["update"]}
    counts = {rc["address"]: (rc["change"]["before"]["node_count"], rc["change"]["after"]["node_count"])
              for rc in plan["resource_changes"] if rc["change"]["actions"] == ["update"]}
    assert counts == {"raydog_worker_pool.a": (1, 2), "raydog_worker_pool.c": (0, 1)}

    after = repair_and_check(terraform, sandbox, "dn")
    for name in "ac":
        assert after[f"raydog_worker_pool.{name}"]["id"] == before[f"raydog_worker_pool.{name}"]["id"], (
            "the nodes are restored in the same pool")
    assert after["raydog_worker_pool.b"]["id"] != pool_b["id"]
    for address in ("raydog_cluster.c", "raydog_head.h"):
        assert after[address]["id"] == before[address]["id"], address
    destroy_and_check(terraform, sandbox)


@pytest.mark.parametrize("how", ["task aborted", "node killed"])
def test_lost_head_is_recreated_with_every_pool_that_uses_its_address(how, terraform, sandbox):
    before = build(terraform, "dh")
    head = before["raydog_head.h"]
    if how == "task aborted":
        sandbox.abort_task(head["task_id"])
    else:
        sandbox.kill_node(head["node_id"])

    planned = changes(terraform.plan_json())
    assert planned["raydog_head.h"] in (["create"], *REPLACE), planned
    assert {a for a in planned if a.startswith("raydog_worker_pool.")} == ALL_POOLS
    assert all(planned[a] in REPLACE for a in ALL_POOLS), planned
    assert "raydog_cluster.c" not in planned

    after = repair_and_check(terraform, sandbox, "dh")
    assert after["raydog_head.h"]["task_id"] != head["task_id"]
    head_ip = after["raydog_head.h"]["private_ip"]
    platform = view(sandbox)
    for address in ALL_POOLS:
        for task in platform.live_tasks(after[address]["task_group_id"]):
            assert task["environment"]["RAY_HEAD_IP"] == head_ip
    destroy_and_check(terraform, sandbox)


def test_cancelled_work_requirement_recreates_the_cluster_and_everything_in_it(terraform, sandbox):
    before = build(terraform, "dw")
    sandbox.cancel_work_requirement(before["raydog_cluster.c"]["id"])

    planned = changes(terraform.plan_json())
    assert planned["raydog_cluster.c"] == ["create"]
    assert planned["raydog_head.h"] in (["create"], *REPLACE)
    assert all(planned[a] in (["create"], *REPLACE) for a in ALL_POOLS), planned

    after = repair_and_check(terraform, sandbox, "dw")
    assert after["raydog_cluster.c"]["id"] != before["raydog_cluster.c"]["id"]
    assert [base_name(w["name"]) for w in view(sandbox).live_work_requirements()] == ["dw"]
    destroy_and_check(terraform, sandbox)


@pytest.mark.parametrize("how", ["head task aborted", "work requirement cancelled"])
def test_destroy_after_drift_leaves_nothing_live(how, terraform, sandbox):
    before = build(terraform, "dd")
    if how == "head task aborted":
        sandbox.abort_task(before["raydog_head.h"]["task_id"])
    else:
        sandbox.cancel_work_requirement(before["raydog_cluster.c"]["id"])
    destroy_and_check(terraform, sandbox)
