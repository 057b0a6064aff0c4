"""Work requirement, task group and task lifecycles."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import requests
from harness.waits import wait_until
from sandbox_helpers import NAMESPACE, bash_task, make_client, provision, task_group, task_status
from yellowdog_client.model import (
    RunSpecification,
    SliceReference,
    Task,
    TaskErrorType,
    TaskGroupStatus,
    TaskSearch,
    TaskStatus,
    WorkRequirement,
    WorkRequirementSearch,
    WorkRequirementStatus,
)


def submit(client, name="cluster", groups=("g",), **group_options):
    return client.work_client.add_work_requirement(WorkRequirement(
        namespace=NAMESPACE, name=name, taskGroups=[task_group(g, tag="pool", **group_options) for g in groups]))


def group_status(client, wr_id, index=0):
    return client.work_client.get_work_requirement_by_id(wr_id).taskGroups[index].status


def test_task_reaches_executing_on_a_matching_worker_with_node_and_worker_ids(sandbox):
    client = make_client(sandbox)
    pool = provision(client, "pool", 1)
    wr = submit(client)
    task = client.work_client.add_tasks_to_task_group_by_id(wr.taskGroups[0].id, [bash_task("t", KEY="value")])[0]
    assert task.status is TaskStatus.READY and task.taskGroupId == wr.taskGroups[0].id
    wait_until(lambda: task_status(client, task.id) is TaskStatus.EXECUTING, "the task executes")
    task = client.work_client.get_task_by_id(task.id)
    node = client.worker_pool_client.get_node_by_worker_id(task.workerId)
    assert node.id == task.nodeId and node.workerPoolId == pool.id
    assert node.details.workerTag == "pool" and node.details.supportedTaskTypes == ["bash"]
    assert group_status(client, wr.id) is TaskGroupStatus.RUNNING
    state_task = sandbox.state()["workRequirements"][0]["taskGroups"][0]["tasks"][0]
    assert state_task["environment"] == {"KEY": "value"} and state_task["nodeId"] == node.id


def test_tasks_wait_for_a_worker_with_their_tag_and_namespace(sandbox):
    client = make_client(sandbox)
    provision(client, "other", 1)  # wrong worker tag
    provision(client, "pool", 1, namespace="elsewhere")  # right tag, wrong namespace
    wr = submit(client)
    task = client.work_client.add_tasks_to_task_group_by_id(wr.taskGroups[0].id, [bash_task("t")])[0]
    wait_until(lambda: sandbox.state()["live"]["nodes"] == 2, "both nodes register")
    assert task_status(client, task.id) is TaskStatus.READY
    provision(client, "pool", 1)
    wait_until(lambda: task_status(client, task.id) is TaskStatus.EXECUTING, "the task executes on the new pool")


def test_one_task_per_node(sandbox):
    client = make_client(sandbox)
    provision(client, "pool", 2)
    wr = submit(client)
    tasks = client.work_client.add_tasks_to_task_group_by_id(
        wr.taskGroups[0].id, [bash_task(f"t{i}") for i in range(3)])
    wait_until(lambda: sum(task_status(client, t.id) is TaskStatus.EXECUTING for t in tasks) == 2,
               "two tasks execute")
    statuses = [task_status(client, t.id) for t in tasks]
    assert statuses.count(TaskStatus.READY) == 1
    nodes = {client.work_client.get_task_by_id(t.id).nodeId for t in tasks if task_status(client, t.id)
             is TaskStatus.EXECUTING}
    assert len(nodes) == 2


def test_sandbox_exit_code_fails_the_task_with_its_exit_code(sandbox):
    client = make_client(sandbox)
    provision(client, "pool", 1)
    wr = submit(client)
    task = client.work_client.add_tasks_to_task_group_by_id(
        wr.taskGroups[0].id, [bash_task("t", SANDBOX_EXIT_CODE="3")])[0]
    wait_until(lambda: task_status(client, task.id) is TaskStatus.FAILED, "the task fails")
    error = client.work_client.get_task_by_id(task.id).errors[-1]
    assert error.errorType == TaskErrorType.PROCESS_NON_ZERO_EXIT and error.processExitCode == 3
    assert group_status(client, wr.id) is TaskGroupStatus.FAILED
    assert client.work_client.get_work_requirement_by_id(wr.id).status is WorkRequirementStatus.FAILED


def test_exit_code_zero_completes_task_group_and_work_requirement(sandbox):
    client = make_client(sandbox)
    provision(client, "pool", 1)
    wr = submit(client)
    task = client.work_client.add_tasks_to_task_group_by_id(
        wr.taskGroups[0].id, [bash_task("t", SANDBOX_EXIT_CODE="0", SANDBOX_EXIT_AFTER="0.1")])[0]
    wait_until(lambda: task_status(client, task.id) is TaskStatus.EXECUTING, "the task executes")
    wait_until(lambda: task_status(client, task.id) is TaskStatus.COMPLETED, "the task completes")
    wr = client.work_client.get_work_requirement_by_id(wr.id)
    assert wr.taskGroups[0].status is TaskGroupStatus.COMPLETED
    assert wr.taskGroups[0].taskSummary.statusCounts[TaskStatus.COMPLETED] == 1
    assert wr.status is WorkRequirementStatus.COMPLETED


def test_an_empty_task_group_keeps_the_work_requirement_running(sandbox):
    client = make_client(sandbox)
    provision(client, "pool", 1)
    wr = submit(client, groups=("empty", "busy"))
    task = client.work_client.add_tasks_to_task_group_by_id(
        wr.taskGroups[1].id, [bash_task("t", SANDBOX_EXIT_CODE="0")])[0]
    wait_until(lambda: task_status(client, task.id) is TaskStatus.COMPLETED, "the task completes")
    wr = client.work_client.get_work_requirement_by_id(wr.id)
    assert [g.status for g in wr.taskGroups] == [TaskGroupStatus.PENDING, TaskGroupStatus.COMPLETED]
    assert wr.status is WorkRequirementStatus.RUNNING


def test_finish_if_any_task_failed_discards_the_rest_and_fails(sandbox):
    client = make_client(sandbox)
    provision(client, "pool", 1)
    wr = submit(client, finishIfAnyTaskFailed=True)
    tasks = client.work_client.add_tasks_to_task_group_by_id(wr.taskGroups[0].id, [
        bash_task("fails", SANDBOX_EXIT_CODE="1"), bash_task("waits-1"), bash_task("waits-2")])
    wait_until(lambda: group_status(client, wr.id) is TaskGroupStatus.FAILED, "the group fails")
    assert [task_status(client, t.id) for t in tasks] == [TaskStatus.FAILED, TaskStatus.DISCARDED,
                                                          TaskStatus.DISCARDED]
    assert client.work_client.get_work_requirement_by_id(wr.id).status is WorkRequirementStatus.FAILED


def test_cancel_with_abort_aborts_running_and_cancels_waiting_tasks(sandbox):
    client = make_client(sandbox)
    provision(client, "pool", 1)
    wr = submit(client)
    running, waiting = client.work_client.add_tasks_to_task_group_by_id(
        wr.taskGroups[0].id, [bash_task("running"), bash_task("waiting")])
    wait_until(lambda: task_status(client, running.id) is TaskStatus.EXECUTING, "a task executes")
    client.work_client.cancel_work_requirement_by_id(wr.id, True)
    wait_until(lambda: client.work_client.get_work_requirement_by_id(wr.id).status
               is WorkRequirementStatus.CANCELLED, "the work requirement is cancelled")
    assert task_status(client, running.id) is TaskStatus.ABORTED
    assert task_status(client, waiting.id) is TaskStatus.CANCELLED
    assert group_status(client, wr.id) is TaskGroupStatus.CANCELLED
    assert sandbox.state()["workRequirements"][0]["taskGroups"][0]["tasks"][0]["exitCode"] == 143


def test_cancel_without_abort_lets_running_tasks_finish(sandbox):
    client = make_client(sandbox)
    provision(client, "pool", 1)
    wr = submit(client)
    task = client.work_client.add_tasks_to_task_group_by_id(wr.taskGroups[0].id, [bash_task("t")])[0]
    wait_until(lambda: task_status(client, task.id) is TaskStatus.EXECUTING, "the task executes")
    assert client.work_client.cancel_work_requirement_by_id(wr.id, False).status is \
        WorkRequirementStatus.CANCELLING
    assert task_status(client, task.id) is TaskStatus.EXECUTING
    # The CLI re-cancels with abort to end the running tasks.
    client.work_client.cancel_work_requirement_by_id(wr.id, True)
    wait_until(lambda: client.work_client.get_work_requirement_by_id(wr.id).status
               is WorkRequirementStatus.CANCELLED, "the work requirement is cancelled")
    assert task_status(client, task.id) is TaskStatus.ABORTED


def test_cancel_task_without_abort_cancels_a_waiting_task_and_spares_a_running_one(sandbox):
    client = make_client(sandbox)
    provision(client, "pool", 1)
    wr = submit(client)
    running, waiting = client.work_client.add_tasks_to_task_group_by_id(
        wr.taskGroups[0].id, [bash_task("running"), bash_task("waiting")])
    wait_until(lambda: task_status(client, running.id) is TaskStatus.EXECUTING, "a task executes")
    assert client.work_client.cancel_task_by_id(waiting.id, False).status is TaskStatus.CANCELLED
    assert client.work_client.cancel_task_by_id(running.id, False).status is TaskStatus.EXECUTING
    client.work_client.cancel_task_by_id(running.id, True)
    wait_until(lambda: task_status(client, running.id) is TaskStatus.ABORTED, "the running task is aborted")


def test_task_timeout_fails_the_task_as_timed_out(sandbox):
    client = make_client(sandbox)
    provision(client, "pool", 2)
    spec = RunSpecification(taskTypes=["bash"], workerTags=["pool"], namespaces=[NAMESPACE],
                            taskTimeout=timedelta(milliseconds=150))
    wr = client.work_client.add_work_requirement(WorkRequirement(
        namespace=NAMESPACE, name="cluster", taskGroups=[task_group("g", run_specification=spec)]))
    by_group, by_task = client.work_client.add_tasks_to_task_group_by_id(wr.taskGroups[0].id, [
        bash_task("group-timeout"), Task(name="own-timeout", timeout=timedelta(milliseconds=100))])
    for task in (by_group, by_task):
        wait_until(lambda task=task: task_status(client, task.id) is TaskStatus.FAILED, f"{task.name} times out")
        assert client.work_client.get_task_by_id(task.id).errors[-1].errorType == TaskErrorType.TIMED_OUT


def test_retries_rerun_a_failed_task_up_to_maximum_task_retries(sandbox):
    client = make_client(sandbox)
    provision(client, "pool", 1)
    spec = RunSpecification(taskTypes=["bash"], workerTags=["pool"], maximumTaskRetries=2)
    wr = client.work_client.add_work_requirement(WorkRequirement(
        namespace=NAMESPACE, name="cluster", taskGroups=[task_group("g", run_specification=spec)]))
    task = client.work_client.add_tasks_to_task_group_by_id(
        wr.taskGroups[0].id, [bash_task("t", SANDBOX_EXIT_CODE="7")])[0]
    wait_until(lambda: task_status(client, task.id) is TaskStatus.FAILED, "the task fails for good")
    task = client.work_client.get_task_by_id(task.id)
    assert task.retryCount == 2 and len(task.errors) == 3


def test_concurrent_read_modify_write_updates_lose_task_groups(sandbox):
    """Eight clients read the WR, then each PUTs it back with its own group: only the last group survives."""
    wr = submit(make_client(sandbox), groups=("head",))
    clients = [make_client(sandbox) for _ in range(8)]
    read_all = threading.Barrier(len(clients))
    results: dict[int, str] = {}

    def add_group(i: int) -> None:
        current = clients[i].work_client.get_work_requirement_by_id(wr.id)
        read_all.wait(timeout=10)
        current.taskGroups.append(task_group(f"pool-{i}"))
        results[i] = clients[i].work_client.update_work_requirement(current).taskGroups[-1].id

    threads = [threading.Thread(target=add_group, args=(i,)) for i in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert len(results) == len(clients)
    final = make_client(sandbox).work_client.get_work_requirement_by_id(wr.id).taskGroups
    assert len(final) == 2 and final[0].name == "head"
    survivors = set(results.values()) & {g.id for g in final}
    assert len(survivors) == 1  # every other client's group was removed by a later PUT
    lost = next(group_id for group_id in results.values() if group_id not in survivors)
    with pytest.raises(requests.HTTPError, match="not found"):
        make_client(sandbox).work_client.add_tasks_to_task_group_by_id(lost, [bash_task("t")])


def test_update_removes_groups_absent_from_the_body_and_cancels_their_tasks(sandbox):
    client = make_client(sandbox)
    provision(client, "pool", 1)
    wr = submit(client, groups=("keep", "drop"))
    dropped_task = client.work_client.add_tasks_to_task_group_by_id(wr.taskGroups[1].id, [bash_task("t")])[0]
    wait_until(lambda: task_status(client, dropped_task.id) is TaskStatus.EXECUTING, "the task executes")
    wr.taskGroups = wr.taskGroups[:1]
    assert [g.name for g in client.work_client.update_work_requirement(wr).taskGroups] == ["keep"]
    wait_until(lambda: task_status(client, dropped_task.id) is TaskStatus.ABORTED, "its task is aborted")


def test_large_bodies_gzipped_by_the_sdk_are_accepted(sandbox):
    client = make_client(sandbox)
    wr = submit(client)
    script = "#!/bin/bash\n" + "echo 'a long node script line'\n" * 400
    tasks = client.work_client.add_tasks_to_task_group_by_id(
        wr.taskGroups[0].id, [Task(name=f"t{i}", taskData=script) for i in range(3)])
    assert [client.work_client.get_task_by_id(t.id).taskData for t in tasks] == [script] * 3


def test_task_search_filters_by_work_requirement_group_and_status(sandbox):
    client = make_client(sandbox)
    provision(client, "pool", 1)
    wr = submit(client, groups=("a", "b"))
    a = client.work_client.add_tasks_to_task_group_by_id(wr.taskGroups[0].id, [bash_task("a1"), bash_task("a2")])
    b = client.work_client.add_tasks_to_task_group_by_id(wr.taskGroups[1].id, [bash_task("b1")])
    wait_until(lambda: any(task_status(client, t.id) is TaskStatus.EXECUTING for t in a + b), "one executes")
    find = client.work_client.find_tasks
    assert {t.id for t in find(TaskSearch(workRequirementId=wr.id))} == {t.id for t in a + b}
    assert {t.id for t in find(TaskSearch(taskGroupId=wr.taskGroups[1].id))} == {b[0].id}
    assert len(find(TaskSearch(workRequirementId=wr.id, statuses=[TaskStatus.EXECUTING]))) == 1
    assert len(find(TaskSearch(workRequirementId=wr.id, statuses=[TaskStatus.READY]))) == 2
    assert [t.name for t in find(TaskSearch(workRequirementId=wr.id, name="a2"))] == ["a2"]


def test_pagination_ends_and_honours_the_slice_size(sandbox):
    client = make_client(sandbox)
    wr = submit(client)
    added = client.work_client.add_tasks_to_task_group_by_id(
        wr.taskGroups[0].id, [Task(name=f"t{i}") for i in range(250)])
    sandbox.reset_requests()
    found = client.work_client.find_tasks(TaskSearch(workRequirementId=wr.id))
    assert [t.id for t in found] == [t.id for t in added]
    assert sandbox.requests()["routes"]["GET /work/tasks"] == 3  # 100 + 100 + 50, no empty last page
    pages = client.work_client.get_tasks(TaskSearch(workRequirementId=wr.id))
    first = pages.slice(SliceReference(size=7))
    assert len(first.items) == 7 and first.nextSliceId is not None
    assert len(list(pages.iterate())) == 250
    last = pages.slice(SliceReference(sliceId="245", size=10))
    assert len(last.items) == 5 and last.nextSliceId is None
    empty = client.work_client.find_tasks(TaskSearch(workRequirementId="ydid:workreq:000000:none"))
    assert empty == []
    assert [s.name for s in client.work_client.find_all_work_requirements()] == ["cluster"]
    summaries = client.work_client.get_work_requirements(
        WorkRequirementSearch(namespaces=[NAMESPACE], statuses=[WorkRequirementStatus.RUNNING])).list_all()
    assert summaries[0].totalTaskCount == 250


def test_hold_stops_allocation_and_start_resumes_it(sandbox):
    client = make_client(sandbox)
    provision(client, "pool", 1)
    wr = submit(client)
    assert client.work_client.hold_work_requirement_by_id(wr.id).status is WorkRequirementStatus.HELD
    task = client.work_client.add_tasks_to_task_group_by_id(wr.taskGroups[0].id, [bash_task("t")])[0]
    wait_until(lambda: sandbox.state()["live"]["nodes"] == 1, "the node registers")
    assert task_status(client, task.id) is TaskStatus.READY
    client.work_client.start_work_requirement_by_id(wr.id)
    wait_until(lambda: task_status(client, task.id) is TaskStatus.EXECUTING, "the task executes")
