"""Ending a pool's task group in one request (GroupEndOps) against the sandbox over HTTP."""

from __future__ import annotations

import threading
import uuid

import pytest
from raydog.yellowdog import TaskGroupSpec, TaskSpec, WaitTimeoutError

NS = "raydog-ops"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def group_spec(name: str) -> TaskGroupSpec:
    return TaskGroupSpec(name=name, worker_tag="no-such-pool", namespace=NS, task_timeout=None,
                         finish_if_any_task_failed=False)


def wr_state(sandbox, wr_id: str) -> dict:
    return next(wr for wr in sandbox.state()["workRequirements"] if wr["id"] == wr_id)


def puts(sandbox) -> int:
    return sandbox.requests()["routes"].get("PUT /work/requirements", 0)


def test_groups_ended_together_share_one_update_and_their_tasks_end(platform, sandbox):
    wr = platform.create_work_requirement(NS, unique("end"))
    groups = [platform.ensure_task_group(wr.id, group_spec(f"g{i}")) for i in range(4)]
    for group in groups:
        platform.add_tasks(group.id, [TaskSpec(f"node-{n}", "sleep 1000", {}, None) for n in range(3)])
    before = puts(sandbox)
    answers: dict[str, bool] = {}
    threads = [threading.Thread(target=lambda g=g: answers.update({g.id: platform.end_task_group(wr.id, g.id)}))
               for g in groups[:3]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert answers == {g.id: True for g in groups[:3]}
    assert puts(sandbox) - before == 1, "the three drops were one update of the work requirement"
    state = wr_state(sandbox, wr.id)
    assert groups[3].id in {g["id"] for g in state["taskGroups"]}, "the other group is kept"
    removed = {g["id"]: g for g in state["removedTaskGroups"]}
    assert set(removed) == {g.id for g in groups[:3]}
    assert {t["status"] for g in removed.values() for t in g["tasks"]} == {"CANCELLED"}  # none had a node
    for group in groups[:3]:
        platform.wait_until_group_ended(group.id, 10)


def test_ending_a_group_already_dropped_is_success_without_an_update(platform, sandbox):
    wr = platform.create_work_requirement(NS, unique("end"))
    group = platform.ensure_task_group(wr.id, group_spec("g"))
    assert platform.end_task_group(wr.id, group.id) is True
    before = puts(sandbox)

    assert platform.end_task_group(wr.id, group.id) is True
    assert puts(sandbox) == before


def test_waiting_for_a_live_group_times_out(platform, sandbox):
    wr = platform.create_work_requirement(NS, unique("end"))
    group = platform.ensure_task_group(wr.id, group_spec("g"))
    platform.add_tasks(group.id, [TaskSpec("node-1", "sleep 1000", {}, None)])

    with pytest.raises(WaitTimeoutError):
        platform.wait_until_group_ended(group.id, 0.3)
