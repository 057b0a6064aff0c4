"""Worker pools, nodes, instances and compute requirements."""

from __future__ import annotations

import ipaddress
import threading
from datetime import timedelta

import pytest
import requests
from harness.waits import wait_until
from sandbox_helpers import NAMESPACE, bash_task, make_client, provision, task_group, task_status
from yellowdog_client.model import (
    ComputeRequirementStatus,
    InstanceSearch,
    InstanceStatus,
    NodeSearch,
    NodeStatus,
    TaskErrorType,
    TaskStatus,
    WorkerPoolSearch,
    WorkerPoolStatus,
    WorkRequirement,
)


def live_nodes(client, pool_id):
    return client.worker_pool_client.find_nodes(NodeSearch(workerPoolId=pool_id, statuses=[NodeStatus.RUNNING]))


def pool_status(client, pool_id):
    return client.worker_pool_client.get_worker_pool_by_id(pool_id).status


def run_tasks(client, pool_name, count):
    wr = client.work_client.add_work_requirement(WorkRequirement(
        namespace=NAMESPACE, name=f"wr-{pool_name}", taskGroups=[task_group(pool_name)]))
    tasks = client.work_client.add_tasks_to_task_group_by_id(
        wr.taskGroups[0].id, [bash_task(f"t{i}") for i in range(count)])
    for task in tasks:
        wait_until(lambda task=task: task_status(client, task.id) is TaskStatus.EXECUTING, f"{task.name} executes")
    return [client.work_client.get_task_by_id(t.id) for t in tasks]


@pytest.mark.sandbox(provision_delay=0.2)
def test_pool_goes_pending_then_idle_then_running_and_its_cr_provisions(sandbox):
    client = make_client(sandbox)
    pool = provision(client, "pool", 2)
    assert pool.status is WorkerPoolStatus.PENDING and pool.awaitingNodes and pool.expectedNodeCount == 2
    cr = client.compute_client.get_compute_requirement_by_id(pool.computeRequirementId)
    assert cr.status is ComputeRequirementStatus.PROVISIONING and cr.targetInstanceCount == 2
    assert (cr.namespace, cr.name) == (NAMESPACE, "pool")
    wait_until(lambda: pool_status(client, pool.id) is WorkerPoolStatus.IDLE, "the pool is idle")
    assert client.compute_client.get_compute_requirement_by_id(cr.id).status is ComputeRequirementStatus.RUNNING
    run_tasks(client, "pool", 1)
    assert pool_status(client, pool.id) is WorkerPoolStatus.RUNNING
    summary = client.worker_pool_client.get_worker_pools(WorkerPoolSearch(namespace=NAMESPACE)).list_all()[0]
    assert (summary.registeredNodeCount, summary.claimedWorkerCount) == (2, 1)


def test_nodes_have_unique_loopback_addresses_matching_their_instances(sandbox):
    client = make_client(sandbox)
    pools = [provision(client, f"pool-{i}", 3) for i in range(3)]
    nodes = wait_until(lambda: len(client.worker_pool_client.find_nodes(NodeSearch())) == 9 and
                       client.worker_pool_client.find_nodes(NodeSearch()), "nine nodes register")
    private = [n.details.privateIpAddress for n in nodes]
    public = [n.details.publicIpAddress for n in nodes]
    assert len(set(private + public)) == 18
    assert all(ipaddress.ip_address(a) in ipaddress.ip_network("127.0.0.0/8") for a in private + public)
    for pool in pools:
        for instance in client.compute_client.get_instances(
                InstanceSearch(computeRequirementId=pool.computeRequirementId)).list_all():
            node = client.worker_pool_client.find_nodes(NodeSearch(instanceId=instance.id.instanceId))[0]
            assert node.workerPoolId == pool.id
            assert (node.details.privateIpAddress, node.details.publicIpAddress) == (
                instance.privateIpAddress, instance.publicIpAddress)
            found = client.compute_client.get_instances(InstanceSearch(hostname=instance.hostname)).list_all()
            assert [i.id.instanceId for i in found] == [instance.id.instanceId]


def test_resize_up_adds_nodes_and_down_removes_idle_nodes_first(sandbox):
    client = make_client(sandbox)
    pool = provision(client, "pool", 2)
    busy = run_tasks(client, "pool", 1)[0]
    resized = client.worker_pool_client.resize_worker_pool_by_id(pool.id, 4)
    assert resized.expectedNodeCount == 4
    wait_until(lambda: len(live_nodes(client, pool.id)) == 4, "four nodes run")
    client.worker_pool_client.resize_worker_pool_by_id(pool.id, 1)
    remaining = live_nodes(client, pool.id)
    assert [n.id for n in remaining] == [busy.nodeId]
    assert task_status(client, busy.id) is TaskStatus.EXECUTING
    cr = client.compute_client.get_compute_requirement_by_id(pool.computeRequirementId)
    assert cr.targetInstanceCount == 1
    gone = client.worker_pool_client.find_nodes(NodeSearch(workerPoolId=pool.id, statuses=[NodeStatus.DEREGISTERED]))
    assert len(gone) == 3


def test_resize_respects_min_and_max_nodes(sandbox):
    client = make_client(sandbox)
    pool = provision(client, "pool", 1, minNodes=1, maxNodes=2)
    with pytest.raises(Exception, match="exceeds the worker pool's maxNodes 2"):
        client.worker_pool_client.resize_worker_pool_by_id(pool.id, 3)
    with pytest.raises(Exception, match="below the worker pool's minNodes 1"):
        client.worker_pool_client.resize_worker_pool_by_id(pool.id, 0)


def test_shutting_down_a_node_deregisters_it_fails_its_task_and_lowers_the_target(sandbox):
    client = make_client(sandbox)
    pool = provision(client, "pool", 2)
    task = run_tasks(client, "pool", 1)[0]
    node = client.worker_pool_client.shutdown_node_by_id(task.nodeId)
    assert node.status is NodeStatus.DEREGISTERED
    wait_until(lambda: task_status(client, task.id) is TaskStatus.FAILED, "the task fails")
    assert client.work_client.get_task_by_id(task.id).errors[-1].errorType == TaskErrorType.ALLOCATION_LOST
    assert client.worker_pool_client.get_worker_pool_by_id(pool.id).expectedNodeCount == 1
    instance_id = node.details.instanceId
    wait_until(lambda: [i.status for i in client.compute_client.get_instances(
        InstanceSearch(computeRequirementId=pool.computeRequirementId)).list_all()
        if i.id.instanceId == instance_id] == [InstanceStatus.TERMINATED], "its instance is terminated")


def test_a_killed_nodes_task_fails_and_is_not_rerun_elsewhere(sandbox):
    client = make_client(sandbox)
    pool = provision(client, "pool", 2)
    task = run_tasks(client, "pool", 1)[0]
    response = requests.post(f"{sandbox.url}/sandbox/v1/nodes/{task.nodeId}/kill", headers=sandbox.auth_headers,
                             timeout=5)
    assert response.json()["status"] == "LOST"
    wait_until(lambda: task_status(client, task.id) is TaskStatus.FAILED, "the task fails")
    task = client.work_client.get_task_by_id(task.id)
    assert task.errors[-1].errorType == TaskErrorType.ALLOCATION_LOST and task.retryCount == 0
    assert len(live_nodes(client, pool.id)) == 1  # a free node was there, yet the task stayed FAILED
    assert client.worker_pool_client.get_node_by_id(task.nodeId).status is NodeStatus.LOST


def test_shutdown_pool_terminates_nodes_instances_and_compute_requirement(sandbox):
    client = make_client(sandbox)
    pool = provision(client, "pool", 2)
    task = run_tasks(client, "pool", 1)[0]
    client.worker_pool_client.shutdown_worker_pool_by_id(pool.id)
    wait_until(lambda: pool_status(client, pool.id) is WorkerPoolStatus.TERMINATED, "the pool is terminated")
    assert client.compute_client.get_compute_requirement_by_id(
        pool.computeRequirementId).status is ComputeRequirementStatus.TERMINATED
    assert task_status(client, task.id) is TaskStatus.FAILED
    assert live_nodes(client, pool.id) == []
    client.worker_pool_client.shutdown_worker_pool_by_id(pool.id)  # again: not an error
    assert sandbox.state()["live"]["instances"] == 0


def test_terminating_the_compute_requirement_ends_the_pool_and_a_later_shutdown_succeeds(sandbox):
    client = make_client(sandbox)
    pool = provision(client, "pool", 1)
    wait_until(lambda: live_nodes(client, pool.id), "the node registers")
    client.compute_client.terminate_compute_requirement_by_id(pool.computeRequirementId)
    wait_until(lambda: pool_status(client, pool.id) is WorkerPoolStatus.TERMINATED, "the pool is terminated")
    client.worker_pool_client.shutdown_worker_pool_by_id(pool.id)
    assert pool_status(client, pool.id) is WorkerPoolStatus.TERMINATED


def test_out_of_band_pool_termination(sandbox):
    client = make_client(sandbox)
    pool = provision(client, "pool", 1)
    requests.post(f"{sandbox.url}/sandbox/v1/workerPools/{pool.id}/terminate", headers=sandbox.auth_headers,
                  timeout=5).raise_for_status()
    wait_until(lambda: pool_status(client, pool.id) is WorkerPoolStatus.TERMINATED, "the pool is terminated")


def test_idle_nodes_shut_down_after_their_timeout_but_busy_ones_stay(sandbox):
    client = make_client(sandbox)
    pool = provision(client, "pool", 2, idle_node=timedelta(milliseconds=200))
    task = run_tasks(client, "pool", 1)[0]
    wait_until(lambda: len(live_nodes(client, pool.id)) == 1, "the idle node shuts down")
    assert [n.id for n in live_nodes(client, pool.id)] == [task.nodeId]
    assert client.worker_pool_client.get_worker_pool_by_id(pool.id).expectedNodeCount == 1


def test_an_idle_pool_shuts_down_after_its_timeout(sandbox):
    client = make_client(sandbox)
    pool = provision(client, "pool", 1, idle_pool=timedelta(milliseconds=200))
    wait_until(lambda: pool_status(client, pool.id) is WorkerPoolStatus.TERMINATED, "the idle pool ends")
    assert client.compute_client.get_compute_requirement_by_id(
        pool.computeRequirementId).status is ComputeRequirementStatus.TERMINATED


def test_tens_of_clients_provision_in_parallel(sandbox):
    errors: list[BaseException] = []

    def provision_one(i: int) -> None:
        try:
            client = make_client(sandbox)
            provision(client, f"pool-{i}", 2)
            client.close()
        except Exception as error:  # noqa: BLE001 - collected for the assertion below
            errors.append(error)

    threads = [threading.Thread(target=provision_one, args=(i,)) for i in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    wait_until(lambda: sandbox.state()["live"]["nodes"] == 80, "eighty nodes register")
    assert len(make_client(sandbox).worker_pool_client.find_all_worker_pools()) == 40
