"""Work requirement, task group and task operations against the sandbox over HTTP.

Each test names its objects uniquely, so it holds whether or not the sandbox is shared.
"""

from __future__ import annotations

import threading
import uuid

from harness.waits import wait_until
import pytest
from harness.platform_view import node_groups
from raydog.yellowdog import (
    NotAuthorisedError,
    OwnedElsewhereError,
    YellowDogClient,
    PlatformError,
    TaskGroupSpec,
    TaskSpec,
    check_credentials,
)
from raydog.yellowdog.core import WORK_REQUIREMENT_LOCKS
from raydog.yellowdog.ownership import OWNER_GROUP

NS = "raydog-ops"
MISSING_WR = "ydid:workreq:000000:00000000-0000-0000-0000-000000000000"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def group_spec(name: str, **changes) -> TaskGroupSpec:
    return TaskGroupSpec(name=name, worker_tag=changes.pop("worker_tag", "no-such-pool"), namespace=NS,
                         task_timeout=None, finish_if_any_task_failed=False, **changes)


def wr_state(sandbox, wr_id: str) -> dict:
    """The work requirement as the sandbox holds it, with its node groups only (no owner marker)."""
    wr = next(wr for wr in sandbox.state()["workRequirements"] if wr["id"] == wr_id)
    return {**wr, "taskGroups": node_groups(wr)}


def route_count(sandbox, route: str) -> int:
    return sandbox.requests()["routes"].get(route, 0)


# -- credentials ---------------------------------------------------------------------------


def test_check_credentials_accepts_the_sandbox_key(sandbox):
    check_credentials(sandbox.url, sandbox.key_id, sandbox.key_secret)


def test_check_credentials_refuses_a_wrong_secret(sandbox):
    with pytest.raises(NotAuthorisedError) as caught:
        check_credentials(sandbox.url, sandbox.key_id, "not-the-secret")

    assert caught.value.status in (401, 403)
    assert "not-the-secret" not in str(caught.value)


# -- work requirements ---------------------------------------------------------------------


def test_create_work_requirement_returns_a_running_requirement(platform):
    name = unique("c")

    info = platform.create_work_requirement(NS, name, tag="team-a")

    assert (info.namespace, info.name, info.tag) == (NS, name, "team-a")
    assert (info.status, info.finished) == ("RUNNING", False)
    assert info.id.startswith("ydid:workreq:")
    assert platform.get_work_requirement(info.id) == info
    assert platform.find_work_requirement(NS, name) == info


def test_create_refuses_a_live_requirement_it_did_not_make(platform, sandbox):
    name = unique("c")
    first = platform.create_work_requirement(NS, name, tag="one")

    with pytest.raises(OwnedElsewhereError) as refused:
        platform.create_work_requirement(NS, name, tag="two")

    assert refused.value.existing_id == first.id and "not created by this configuration" in str(refused.value)
    assert platform.get_work_requirement(first.id).tag == "one"  # untouched
    assert [wr["id"] for wr in sandbox.state()["workRequirements"] if wr["name"] == name] == [first.id]


def test_create_adopts_a_live_requirement_whose_owner_token_it_proves(platform, sandbox):
    name = unique("c")
    first = platform.create_work_requirement(NS, name, tag="one", owner_token="rd-0123456789abcdef")
    assert first.owner_token == "rd-0123456789abcdef"

    again = platform.create_work_requirement(NS, name, tag="two", proven_tokens={"rd-0123456789abcdef"})

    assert again.id == first.id and again.tag == "two" and again.owner_token == "rd-0123456789abcdef"
    assert [wr["id"] for wr in sandbox.state()["workRequirements"] if wr["name"] == name] == [first.id]


def test_create_whose_answer_was_dropped_adopts_the_committed_requirement(platform, sandbox):
    name = unique("c")
    sandbox.set_faults("drop=1.0,methods=POST,seed=1")
    posts_before = route_count(sandbox, "POST /work/requirements")

    info = platform.create_work_requirement(NS, name)

    assert info.name == name and info.status == "RUNNING"
    assert [wr["id"] for wr in sandbox.state()["workRequirements"] if wr["name"] == name] == [info.id]
    assert route_count(sandbox, "POST /work/requirements") - posts_before == 1


def test_create_survives_server_errors_and_throttling(platform, sandbox):
    name = unique("c")
    sandbox.set_faults("5xx=0.3,429=0.2,retry_after=0,seed=7")

    info = platform.create_work_requirement(NS, name)

    sandbox.set_faults(None)
    assert [wr["id"] for wr in sandbox.state()["workRequirements"] if wr["name"] == name] == [info.id]


@pytest.mark.sandbox(strict=False)
def test_a_finished_requirements_name_makes_a_new_requirement_not_an_adoption(platform):
    name = unique("c")
    old = platform.create_work_requirement(NS, name)
    platform.cancel_work_requirement(old.id)

    new = platform.create_work_requirement(NS, name)

    assert new.id != old.id and not new.finished
    assert platform.find_work_requirement(NS, name).id == new.id


def test_a_finished_requirements_name_is_refused_on_a_strict_platform(platform):
    name = unique("c")
    old = platform.create_work_requirement(NS, name)
    platform.cancel_work_requirement(old.id)

    with pytest.raises(PlatformError) as refused:
        platform.create_work_requirement(NS, name)

    assert refused.value.name_taken, "the cluster takes the name's next generation"


def test_missing_requirement_reads_as_none(platform):
    assert platform.get_work_requirement(MISSING_WR) is None
    assert platform.find_work_requirement(NS, unique("absent")) is None


def test_set_tag_changes_only_the_tag(platform):
    wr = platform.create_work_requirement(NS, unique("c"), tag="before")
    group = platform.ensure_task_group(wr.id, group_spec("head"))

    updated = platform.set_work_requirement_tag(wr.id, "after")

    assert updated.tag == "after"
    assert [g.id for g in updated.task_groups] == [group.id]


def test_cancel_is_idempotent_and_missing_is_success(platform, sandbox):
    wr = platform.create_work_requirement(NS, unique("c"))

    first = platform.cancel_work_requirement(wr.id)
    second = platform.cancel_work_requirement(wr.id)

    assert first.status in ("CANCELLING", "CANCELLED")
    assert second.finished or second.status == "CANCELLING"
    assert wr_state(sandbox, wr.id)["status"] == "CANCELLED"
    assert platform.cancel_work_requirement(MISSING_WR) is None


def test_cancel_cancels_waiting_tasks(platform, sandbox):
    wr = platform.create_work_requirement(NS, unique("c"))
    group = platform.ensure_task_group(wr.id, group_spec("workers"))
    platform.add_tasks(group.id, [TaskSpec(f"node-{i}", "sleep 1000", {}, None) for i in range(3)])

    platform.cancel_work_requirement(wr.id)

    assert {t["status"] for t in wr_state(sandbox, wr.id)["taskGroups"][0]["tasks"]} == {"CANCELLED"}


# -- task groups -----------------------------------------------------------------------------


def test_ensure_task_group_appends_in_order_and_adopts_by_name(platform):
    wr = platform.create_work_requirement(NS, unique("c"))

    head = platform.ensure_task_group(wr.id, group_spec("head"))
    workers = platform.ensure_task_group(wr.id, group_spec("workers"))
    head_again = platform.ensure_task_group(wr.id, group_spec("head"))

    assert head_again == head
    assert [g.name for g in platform.get_work_requirement(wr.id).task_groups] == ["head", "workers"]
    assert platform.get_work_requirement(wr.id).task_group("workers") == workers
    assert head.status in ("PENDING", "RUNNING") and not head.finished


def test_an_append_keeps_every_other_group_as_the_platform_holds_it(platform):
    from datetime import timedelta

    def groups(wr_id: str) -> list[dict]:  # as the API answers them
        return [g for g in platform._wr_json(wr_id)["taskGroups"] if g["name"] != OWNER_GROUP]

    wr = platform.create_work_requirement(NS, unique("c"))
    platform.ensure_task_group(wr.id, TaskGroupSpec(
        name="head", worker_tag="no-such-pool", namespace=NS, tag="c-head", task_timeout=timedelta(hours=2),
        finish_if_any_task_failed=True,
        task_template=TaskSpec(name="template", task_data="echo hi", environment={"A": "1"})))
    before = groups(wr.id)

    workers = platform.ensure_task_group(wr.id, group_spec("workers", tag="c-workers"))

    after = groups(wr.id)
    assert after[0] == before[0]  # read, kept and sent back unchanged
    assert before[0]["runSpecification"]["taskTimeout"] and before[0]["finishIfAnyTaskFailed"] is True
    assert before[0]["taskTemplate"]["taskData"] == "echo hi"
    added = after[1]
    assert (added["id"], added["name"], added["tag"]) == (workers.id, "workers", "c-workers")
    assert added["runSpecification"]["workerTags"] == ["no-such-pool"]
    assert added["runSpecification"]["namespaces"] == [NS]


def test_concurrent_ensure_task_group_from_ten_threads_loses_no_group(platform, sandbox):
    wr = platform.create_work_requirement(NS, unique("c"))
    names = [f"pool-{i}" for i in range(10)]
    results: dict[str, object] = {}
    barrier = threading.Barrier(len(names))

    def add(name: str) -> None:
        barrier.wait()
        try:
            results[name] = platform.ensure_task_group(wr.id, group_spec(name))
        except Exception as exc:  # reported below, with the name
            results[name] = exc

    threads = [threading.Thread(target=add, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    outcomes = {name: type(result).__name__ for name, result in results.items()}
    assert outcomes == dict.fromkeys(names, "TaskGroupInfo")
    live = [g for g in wr_state(sandbox, wr.id)["taskGroups"] if g["status"] != "CANCELLED"]
    assert sorted(g["name"] for g in live) == sorted(names)
    assert {g["id"] for g in live} == {results[name].id for name in names}


def test_two_clients_racing_on_one_requirement_keep_every_group(sandbox):
    """Two YellowDogClient objects in one process share the per-requirement locks."""
    first = YellowDogClient.connect(sandbox.url, sandbox.key_id, sandbox.key_secret)
    second = YellowDogClient.connect(sandbox.url, sandbox.key_id, sandbox.key_secret)
    wr = first.create_work_requirement(NS, unique("c"))
    threads = [threading.Thread(target=client.ensure_task_group, args=(wr.id, group_spec(f"g-{n}-{i}")))
               for i in range(5) for n, client in enumerate((first, second))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(first.get_work_requirement(wr.id).task_groups) == 10


def appends_queued_behind_the_lock(platform, wr_id: str, specs: list[TaskGroupSpec]) -> dict[str, object]:
    """Ask for every group while the requirement's lock is held elsewhere, so they make one batch."""
    results: dict[str, object] = {}

    def add(spec: TaskGroupSpec) -> None:
        try:
            results[spec.name] = platform.ensure_task_group(wr_id, spec)
        except PlatformError as exc:
            results[spec.name] = exc

    threads = [threading.Thread(target=add, args=(spec,)) for spec in specs]
    with WORK_REQUIREMENT_LOCKS.hold(wr_id):
        for thread in threads:
            thread.start()
        wait_until(lambda: len(platform._pending_groups.get(wr_id, [])), "every append queues behind the lock",
                   until=lambda queued: queued == len(specs))
    for thread in threads:
        thread.join()
    return results


def test_appends_waiting_for_the_lock_share_one_update(platform, sandbox):
    wr = platform.create_work_requirement(NS, unique("c"))
    sandbox.reset_requests()

    results = appends_queued_behind_the_lock(platform, wr.id, [group_spec(f"pool-{i}") for i in range(6)])

    assert route_count(sandbox, "PUT /work/requirements") == 1
    assert sorted(g["name"] for g in wr_state(sandbox, wr.id)["taskGroups"]) == sorted(results)
    assert {g["id"] for g in wr_state(sandbox, wr.id)["taskGroups"]} == {r.id for r in results.values()}


def test_a_refused_group_in_a_batch_fails_alone(platform, sandbox):
    wr = platform.create_work_requirement(NS, unique("c"))

    results = appends_queued_behind_the_lock(platform, wr.id, [group_spec("good-1"), group_spec("Not A Name"),
                                                               group_spec("good-2")])

    assert isinstance(results.pop("Not A Name"), PlatformError)
    assert sorted(g["name"] for g in wr_state(sandbox, wr.id)["taskGroups"]) == ["good-1", "good-2"]
    assert {g["id"] for g in wr_state(sandbox, wr.id)["taskGroups"]} == {r.id for r in results.values()}


def test_task_group_append_whose_answer_was_dropped_is_kept_once(platform, sandbox):
    wr = platform.create_work_requirement(NS, unique("c"))
    platform.ensure_task_group(wr.id, group_spec("head"))
    sandbox.set_faults("drop=1.0,methods=PUT,seed=3")

    group = platform.ensure_task_group(wr.id, group_spec("workers"))

    sandbox.set_faults(None)
    live = [g for g in wr_state(sandbox, wr.id)["taskGroups"] if g["status"] != "CANCELLED"]
    assert [g["name"] for g in live] == ["head", "workers"]
    assert live[1]["id"] == group.id


def test_a_finished_group_name_is_refused(platform, sandbox):
    wr = platform.create_work_requirement(NS, unique("c"))
    platform.ensure_task_group(wr.id, group_spec("workers"))  # keeps the requirement RUNNING
    group = platform.ensure_task_group(wr.id, group_spec("head", finish_if_all_tasks_finished=True))
    [task] = platform.add_tasks(group.id, [TaskSpec("node-0", "true", {}, None)])
    platform.cancel_task(task.id)
    assert platform.get_work_requirement(wr.id).task_group("head").finished

    with pytest.raises(PlatformError, match="use a new group name"):
        platform.ensure_task_group(wr.id, group_spec("head"))


def test_a_group_for_another_worker_tag_is_not_adopted(platform):
    wr = platform.create_work_requirement(NS, unique("c"))
    platform.ensure_task_group(wr.id, group_spec("head", worker_tag="pool-a"))

    with pytest.raises(PlatformError, match="already exists for worker tag"):
        platform.ensure_task_group(wr.id, group_spec("head", worker_tag="pool-b"))


def test_no_group_is_added_to_a_cancelled_requirement(platform):
    wr = platform.create_work_requirement(NS, unique("c"))
    platform.cancel_work_requirement(wr.id)

    with pytest.raises(PlatformError, match="no task group can be added"):
        platform.ensure_task_group(wr.id, group_spec("head"))


# -- tasks -----------------------------------------------------------------------------------


def test_add_tasks_returns_them_in_order_with_their_data(platform):
    wr = platform.create_work_requirement(NS, unique("c"))
    group = platform.ensure_task_group(wr.id, group_spec("workers"))
    specs = [TaskSpec(f"node-{i}", f"echo {i}", {"RAY_HEAD_IP": "10.0.0.1"}, None) for i in range(3)]

    tasks = platform.add_tasks(group.id, specs)

    assert [t.name for t in tasks] == ["node-0", "node-1", "node-2"]
    assert all(t.task_group_id == group.id and not t.finished for t in tasks)
    assert platform.get_task(tasks[1].id).task_data == "echo 1"
    assert platform.get_task(tasks[1].id).environment == {"RAY_HEAD_IP": "10.0.0.1"}


def test_add_tasks_whose_answer_was_dropped_adds_each_name_once(platform, sandbox):
    wr = platform.create_work_requirement(NS, unique("c"))
    group = platform.ensure_task_group(wr.id, group_spec("workers"))
    sandbox.set_faults("drop=1.0,methods=POST,seed=5")

    tasks = platform.add_tasks(group.id, [TaskSpec(f"node-{i}", "sleep 1000", {}, None) for i in range(4)])

    sandbox.set_faults(None)
    state_names = [t["name"] for t in wr_state(sandbox, wr.id)["taskGroups"][0]["tasks"]]
    assert sorted(state_names) == ["node-0", "node-1", "node-2", "node-3"]
    assert [t.name for t in tasks] == ["node-0", "node-1", "node-2", "node-3"]


def test_add_tasks_adds_only_the_missing_names(platform, sandbox):
    wr = platform.create_work_requirement(NS, unique("c"))
    group = platform.ensure_task_group(wr.id, group_spec("workers"))
    [first] = platform.add_tasks(group.id, [TaskSpec("node-0", "sleep 1000", {}, None)])

    tasks = platform.add_tasks(group.id, [TaskSpec(f"node-{i}", "sleep 1000", {}, None) for i in range(3)])

    assert tasks[0].id == first.id
    assert len(wr_state(sandbox, wr.id)["taskGroups"][0]["tasks"]) == 3


def test_list_tasks_reads_every_page_and_hides_finished_ones(platform):
    wr = platform.create_work_requirement(NS, unique("c"))
    group = platform.ensure_task_group(wr.id, group_spec("workers"))
    tasks = platform.add_tasks(group.id, [TaskSpec(f"node-{i}", "sleep 1", {}, None) for i in range(1105)])
    platform.cancel_task(tasks[0].id)

    unfinished = platform.list_tasks(group.id)
    everything = platform.list_tasks(group.id, include_finished=True)

    assert len(everything) == 1105 and len({t.id for t in everything}) == 1105
    assert len(unfinished) == 1104 and tasks[0].id not in {t.id for t in unfinished}


def test_cancel_task_twice_or_missing_is_success(platform):
    wr = platform.create_work_requirement(NS, unique("c"))
    group = platform.ensure_task_group(wr.id, group_spec("workers"))
    [task] = platform.add_tasks(group.id, [TaskSpec("node-0", "sleep 1000", {}, None)])

    assert platform.cancel_task(task.id).status == "CANCELLED"
    assert platform.cancel_task(task.id).status == "CANCELLED"
    assert platform.cancel_task("ydid:task:000000:00000000-0000-0000-0000-000000000000:1:1") is None
    assert platform.get_task("ydid:task:000000:00000000-0000-0000-0000-000000000000:1:1") is None
