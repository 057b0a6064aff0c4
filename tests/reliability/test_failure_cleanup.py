"""A failed create says why and leaves nothing behind that state does not know (issue 6, item 3).

Each failure - a node task that exits non-zero, an unknown compute requirement template,
the platform refusing more nodes (quota) - fails the apply with the cause in the message
(task status and exit code, or the platform's own message). Whatever the provider
created for the failed resource is removed, or, if the removal itself fails, kept in
state (tainted) so the next apply removes it. The head that misses its create timeout is
covered by tests/provider/test_cluster_lifecycle.py.
"""

from __future__ import annotations

import pytest
from harness.platform_view import view
from harness.terraform import changes
from reliability_helpers import (
    assert_nothing_orphaned,
    assert_state_owns_the_platform,
    cluster_config,
    live_pool_names,
    tainted,
)


def flat(text: str) -> str:
    """Terraform wraps diagnostics at 80 columns; compare messages on one line."""
    return " ".join(text.split())


CLEANUP_ROUTES = "DELETE /workerPools/{id}+PUT /compute/requirements/{id}/transition/{status}"


def test_head_task_that_exits_non_zero_names_status_and_exit_code_and_removes_its_pool(terraform, sandbox):
    terraform.write(cluster_config("hf", {"w": 2}, head_attrs={"environment": {"SANDBOX_EXIT_CODE": "42"}}))
    terraform.init()
    result = terraform.apply(check=False)

    assert result.returncode == 1
    assert "The head node failed" in flat(result.output), flat(result.output)
    assert "task ended FAILED with exit code 42" in flat(result.output), flat(result.output)
    assert set(terraform.resources()) == {"raydog_cluster.c"}, "neither the head nor its workers are in state"
    assert live_pool_names(sandbox) == []
    assert_nothing_orphaned(terraform, sandbox)
    # The head's task group failed, but the work requirement's owner marker (a group that
    # never finishes) keeps the cluster running: the next plan creates the head and its
    # workers again, in the same cluster.
    cluster = terraform.resources()["raydog_cluster.c"]["id"]
    assert view(sandbox).work_requirement(cluster)["status"] == "RUNNING"

    terraform.write(cluster_config("hf", {"w": 2}))
    assert changes(terraform.plan_json()) == {"raydog_head.h": ["create"], "raydog_worker_pool.w": ["create"]}
    terraform.apply()
    assert live_pool_names(sandbox) == ["hf-head", "hf-w"]
    terraform.destroy()
    assert view(sandbox).nothing_live(), view(sandbox).live


def test_worker_tasks_that_fail_while_waited_for_remove_the_pool_and_keep_the_rest(terraform, sandbox):
    terraform.write(cluster_config("wf", {"good": 1, "bad": 2},
                                   per_pool={"bad": {"environment": {"SANDBOX_EXIT_CODE": "3"}}}))
    terraform.init()
    result = terraform.apply(check=False)

    assert result.returncode == 1
    assert "The bad node failed" in flat(result.output) and "exit code 3" in flat(result.output), flat(result.output)
    assert "raydog_worker_pool.bad" not in terraform.resources()
    assert live_pool_names(sandbox) == ["wf-good", "wf-head"]
    assert_state_owns_the_platform(terraform, sandbox)
    terraform.destroy()
    assert view(sandbox).nothing_live(), view(sandbox).live


def test_failed_head_whose_cleanup_also_fails_stays_in_state_tainted_and_the_next_apply_removes_it(
        terraform, sandbox):
    terraform.write(cluster_config("cf", {}, head_attrs={"environment": {"SANDBOX_EXIT_CODE": "5"}}))
    terraform.init()
    sandbox.set_faults(f"5xx=1.0,routes={CLEANUP_ROUTES}")
    result = terraform.apply(check=False)
    sandbox.set_faults("none")

    assert result.returncode == 1
    assert "The head node failed" in flat(result.output) and "exit code 5" in flat(result.output), flat(result.output)
    assert "Could not remove the pool after the failure" in flat(result.output), flat(result.output)
    head_pool = view(sandbox).live_pools()["cf-head"]
    assert terraform.resources()["raydog_head.h"]["id"] == head_pool["id"]
    assert tainted(terraform) == ["raydog_head.h"]
    assert_nothing_orphaned(terraform, sandbox)

    terraform.write(cluster_config("cf", {}))
    result = terraform.apply()
    pools = view(sandbox).live_pools()
    assert list(pools) == ["cf-head"], pools
    assert pools["cf-head"]["id"] != head_pool["id"], (flat(result.output), view(sandbox).state["workerPools"])
    assert view(sandbox).pool(head_pool["id"])["status"] in ("SHUTDOWN", "TERMINATED")
    assert_state_owns_the_platform(terraform, sandbox)
    terraform.destroy()
    assert view(sandbox).nothing_live(), view(sandbox).live


def test_unknown_compute_requirement_template_fails_at_plan_and_creates_nothing(terraform, sandbox):
    terraform.write(cluster_config("ut", {"w": 1},
                                   pool_attrs={"compute_requirement_template_id": "sandbox/no-such-template"}))
    terraform.init()
    result = terraform.apply(check=False)

    assert result.returncode == 1
    assert "Compute requirement template not found" in flat(result.output), flat(result.output)
    assert 'YellowDog has no compute requirement template "sandbox/no-such-template"' in flat(result.output)
    assert "with raydog_worker_pool.w," in flat(result.output)
    assert terraform.resources() == {}, "the plan failed, so nothing was created"
    assert view(sandbox).nothing_live(), view(sandbox).live
    assert view(sandbox).state["computeRequirements"] == []


@pytest.mark.sandbox(max_nodes=4)
def test_quota_refusal_fails_with_the_platform_message_and_leaves_only_what_state_holds(terraform, sandbox):
    # The head takes one node; three pools of two can't all fit in the remaining three.
    terraform.write(cluster_config("qt", {"a": 2, "b": 2, "c": 2}))
    terraform.init()
    result = terraform.apply(check=False)

    assert result.returncode == 1
    assert "quota exceeded" in flat(result.output), flat(result.output)
    assert_state_owns_the_platform(terraform, sandbox)
    in_state = {a for a in terraform.resources() if a.startswith("raydog_worker_pool.")}
    assert len(in_state) == 1, in_state
    # The refused creates left no instance behind: only the head's and the one pool's in state.
    nodes_in_state = 1 + sum(int(terraform.resources()[a]["node_count"]) for a in in_state)
    assert view(sandbox).live["instances"] == nodes_in_state == 3

    # Growing past the quota is refused too, and state keeps the size the pool really has.
    survivor = next(iter(in_state)).split(".")[1]
    terraform.write(cluster_config("qt", {survivor: 5}))
    result = terraform.apply(check=False)
    assert result.returncode == 1 and "quota exceeded" in flat(result.output), flat(result.output)
    assert terraform.resources()[f"raydog_worker_pool.{survivor}"]["node_count"] == 2
    assert_state_owns_the_platform(terraform, sandbox)

    # Within the quota, the next apply converges.
    terraform.write(cluster_config("qt", {survivor: 3}))
    terraform.apply()
    assert terraform.plan_exitcode().returncode == 0
    terraform.destroy()
    assert view(sandbox).nothing_live(), view(sandbox).live
