"""`--strict`: the stricter reading wherever YellowDog's rule is unknown, through the real SDK."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
import requests
from raydog_sandbox.nodes.runtime import SimulatedRuntime
from harness.waits import wait_until
from sandbox_helpers import NAMESPACE, bash_task, make_client, provision, task_group, task_status
from yellowdog_client.model import (
    ComputeRequirementStatus,
    InstanceSearch,
    InstanceStatus,
    NodeSearch,
    NodeStatus,
    Task,
    TaskData,
    TaskDataInput,
    TaskDataOutput,
    TaskStatus,
    WorkerPoolStatus,
    WorkRequirement,
    WorkRequirementStatus,
)
from yellowdog_client.model.exceptions import InvalidRequestException

strict = pytest.mark.sandbox(strict=True, node_shutdown_delay=0.5, terminate_delay=0.3)


def running_nodes(client, pool_id):
    return client.worker_pool_client.find_nodes(NodeSearch(workerPoolId=pool_id, statuses=[NodeStatus.RUNNING]))


def terminated(client, pool_id):
    pool = client.worker_pool_client.get_worker_pool_by_id(pool_id)
    return pool.status is WorkerPoolStatus.TERMINATED


@strict
def test_finished_names_stay_reserved(sandbox):
    client = make_client(sandbox)
    pool = provision(client, "reused", 1)
    wait_until(lambda: running_nodes(client, pool.id), "the node runs")
    client.worker_pool_client.shutdown_worker_pool_by_id(pool.id)
    wait_until(lambda: terminated(client, pool.id), "the pool terminates")
    with pytest.raises(InvalidRequestException, match="already exists"):
        provision(client, "reused", 1)

    wr = client.work_client.add_work_requirement(WorkRequirement(namespace=NAMESPACE, name="cluster",
                                                                 taskGroups=[task_group("g")]))
    client.work_client.cancel_work_requirement_by_id(wr.id, abort=True)
    wait_until(lambda: client.work_client.get_work_requirement_by_id(wr.id).status is WorkRequirementStatus.CANCELLED,
               "the work requirement is cancelled")
    with pytest.raises(InvalidRequestException, match="already exists"):
        client.work_client.add_work_requirement(WorkRequirement(namespace=NAMESPACE, name="cluster"))


@pytest.mark.sandbox
def test_lenient_mode_reuses_finished_names(sandbox):
    client = make_client(sandbox)
    pool = provision(client, "reused", 1)
    client.worker_pool_client.shutdown_worker_pool_by_id(pool.id)
    wait_until(lambda: terminated(client, pool.id), "the pool terminates")
    assert provision(client, "reused", 1).id != pool.id


@strict
def test_node_shutdown_takes_time_leaves_the_target_and_takes_no_new_task(sandbox):
    client = make_client(sandbox)
    pool = provision(client, "shrink", 2)
    nodes = wait_until(lambda: len(running_nodes(client, pool.id)) == 2 and running_nodes(client, pool.id),
                       "both nodes run")
    client.worker_pool_client.shutdown_node_by_id(nodes[0].id)
    assert client.worker_pool_client.get_node_by_id(nodes[0].id).status is NodeStatus.RUNNING, "not at once"
    wr = client.work_client.add_work_requirement(WorkRequirement(namespace=NAMESPACE, name="wr",
                                                                 taskGroups=[task_group("shrink")]))
    [task] = client.work_client.add_tasks_to_task_group_by_id(wr.taskGroups[0].id, [bash_task("t")])
    wait_until(lambda: task_status(client, task.id) is TaskStatus.EXECUTING, "the task executes")
    assert client.work_client.get_task_by_id(task.id).nodeId == nodes[1].id, "the node going takes no task"
    wait_until(lambda: client.worker_pool_client.get_node_by_id(nodes[0].id).status is NodeStatus.DEREGISTERED,
               "the node goes after the delay")
    assert client.worker_pool_client.get_worker_pool_by_id(pool.id).expectedNodeCount == 2, "the target stays"
    with pytest.raises(InvalidRequestException, match="cannot be shut down"):
        client.worker_pool_client.shutdown_node_by_id(nodes[0].id)


@strict
def test_termination_takes_time_and_finished_objects_refuse_to_end_again(sandbox):
    client = make_client(sandbox)
    pool = provision(client, "ending", 1)
    wait_until(lambda: running_nodes(client, pool.id), "the node runs")
    started = time.monotonic()
    client.worker_pool_client.shutdown_worker_pool_by_id(pool.id)
    instances = client.compute_client.get_instances(
        InstanceSearch(computeRequirementId=pool.computeRequirementId)).list_all()
    assert {i.status for i in instances} == {InstanceStatus.TERMINATING}
    wait_until(lambda: terminated(client, pool.id), "the pool terminates")
    assert time.monotonic() - started >= 0.3
    with pytest.raises(InvalidRequestException, match="cannot be shut down"):
        client.worker_pool_client.shutdown_worker_pool_by_id(pool.id)
    cr = client.compute_client.get_compute_requirement_by_id(pool.computeRequirementId)
    assert cr.status is ComputeRequirementStatus.TERMINATED
    with pytest.raises(InvalidRequestException, match="cannot be terminated again"):
        client.compute_client.terminate_compute_requirement_by_id(cr.id)

    wr = client.work_client.add_work_requirement(WorkRequirement(namespace=NAMESPACE, name="wr",
                                                                 taskGroups=[task_group("g")]))
    [task] = client.work_client.add_tasks_to_task_group_by_id(wr.taskGroups[0].id, [bash_task("t")])
    client.work_client.cancel_task_by_id(task.id, abort=True)
    assert task_status(client, task.id) is TaskStatus.CANCELLED
    with pytest.raises(requests.HTTPError, match="403"):
        client.work_client.cancel_task_by_id(task.id, abort=True)


@strict
def test_removed_task_groups_count_towards_the_cap(sandbox):
    client = make_client(sandbox)
    backend = sandbox.backend
    wr = client.work_client.add_work_requirement(WorkRequirement(namespace=NAMESPACE, name="capped",
                                                                 taskGroups=[task_group("g0")]))
    with backend.core.lock:  # 998 groups created and removed before: the platform keeps counting them
        backend.work.work_requirements[wr.id].next_group_n += 998
    wr = client.work_client.get_work_requirement_by_id(wr.id)
    wr.taskGroups.append(task_group("g999"))
    wr = client.work_client.update_work_requirement(wr)
    wr.taskGroups = [task_group("g1000")]
    with pytest.raises(InvalidRequestException, match="at most 1000 task groups"):
        client.work_client.update_work_requirement(wr)


@pytest.mark.sandbox(rate_limit="2/s")
def test_rate_limit_answers_429_with_retry_after_per_key(sandbox):
    url = f"{sandbox.url}/workerPools/?namespace={NAMESPACE}"
    headers = {"Authorization": f"yd-key {sandbox.key_id}:{sandbox.key_secret}"}
    answers = [requests.get(url, headers=headers, timeout=10) for _ in range(4)]
    limited = [a for a in answers if a.status_code == 429]
    assert limited and int(limited[0].headers["Retry-After"]) >= 1
    assert limited[0].json()["errorType"] == "TooManyRequestsException"
    other = requests.get(url, headers={"Authorization": "yd-key other:secret"}, timeout=10)
    assert other.status_code != 429, "each key has its own budget"
    assert requests.get(f"{sandbox.url}/sandbox/v1/health", timeout=10).status_code == 200
    client = make_client(sandbox)
    pool = provision(client, "limited", 0)
    started = time.monotonic()
    for _ in range(4):  # the SDK waits Retry-After and retries: every call succeeds, later
        assert client.worker_pool_client.get_worker_pool_by_id(pool.id).id == pool.id
    assert time.monotonic() - started >= 0.5


@pytest.mark.sandbox(task_start_delay=0.2)
def test_a_task_with_inputs_and_outputs_downloads_then_uploads(sandbox):
    client = make_client(sandbox)
    provision(client, "data", 1)
    wr = client.work_client.add_work_requirement(WorkRequirement(namespace=NAMESPACE, name="wr",
                                                                 taskGroups=[task_group("data")]))
    task = Task(name="t", taskType="bash", taskData="true", environment={"SANDBOX_EXIT_CODE": "0", "SANDBOX_EXIT_AFTER": "0.2"},
                data=TaskData(inputs=[TaskDataInput(source="ns::in.txt", destination="in.txt")],
                              outputs=[TaskDataOutput(source="out.txt", destination="ns::out.txt")]))
    [task] = client.work_client.add_tasks_to_task_group_by_id(wr.taskGroups[0].id, [task])
    seen = []

    def finished():
        status = task_status(client, task.id)
        if not seen or seen[-1] is not status:
            seen.append(status)
        return status.finished

    wait_until(finished, "the task completes")
    phases = (TaskStatus.DOWNLOADING, TaskStatus.EXECUTING, TaskStatus.UPLOADING)
    assert [status for status in seen if status in phases] == list(phases), seen
    assert seen[-1] is TaskStatus.COMPLETED


class SlowBootRuntime(SimulatedRuntime):
    def start_node(self, node):
        time.sleep(1.0)


def test_a_node_that_does_not_register_within_node_boot_timeout_is_terminated(sandbox_factory):
    sandbox = sandbox_factory(runtime=SlowBootRuntime())
    client = make_client(sandbox)
    pool = provision(client, "slow", 1, nodeBootTimeout=timedelta(milliseconds=300))
    wait_until(lambda: client.worker_pool_client.find_nodes(NodeSearch(workerPoolId=pool.id)), "the node appears")
    node = wait_until(lambda: [n for n in client.worker_pool_client.find_nodes(NodeSearch(workerPoolId=pool.id))
                               if n.status is NodeStatus.TERMINATED], "the node is terminated")[0]
    time.sleep(1.0)
    assert client.worker_pool_client.get_node_by_id(node.id).status is NodeStatus.TERMINATED, "it never registers"
