"""The whole RayDog cluster lifecycle, driven through the unmodified yellowdog-sdk over HTTP."""

from __future__ import annotations

import ipaddress
from datetime import timedelta

import pytest
import requests
from harness.waits import wait_until
from sandbox_helpers import NAMESPACE, bash_task, make_client, provision, task_group, task_status
from yellowdog_client.model import (
    ComputeRequirementStatus,
    InstanceSearch,
    NodeSearch,
    NodeStatus,
    ProvisionedWorkerPool,
    TaskStatus,
    WorkerPoolStatus,
    WorkRequirement,
    WorkRequirementStatus,
)

CLUSTER = "raycluster"


def wait_executing(client, task_ids):
    for task_id in task_ids:
        wait_until(lambda task_id=task_id: task_status(client, task_id) is TaskStatus.EXECUTING, f"task {task_id} executes")


def ips_of(client, pool, task_id):
    """RayDog's way: private IP from the worker's node, public IP from the CR's instance of that node."""
    task = client.work_client.get_task_by_id(task_id)
    node = client.worker_pool_client.get_node_by_worker_id(task.workerId)
    instances = client.compute_client.get_instances(
        InstanceSearch(computeRequirementId=pool.computeRequirementId)).list_all()
    public = [i.publicIpAddress for i in instances if i.id.instanceId == node.details.instanceId]
    assert len(public) == 1
    # The same instance, looked up alone by the node's private address (no listing of the pool).
    alone = client.compute_client.get_instances(InstanceSearch(
        computeRequirementId=pool.computeRequirementId,
        privateIpAddress=node.details.privateIpAddress)).list_all()
    assert [i.id.instanceId for i in alone] == [node.details.instanceId]
    return node.details.privateIpAddress, public[0]


@pytest.mark.sandbox(provision_delay=0.05, task_start_delay=0.02)
def test_raydog_cluster_lifecycle_leaves_nothing_running(sandbox):
    client = make_client(sandbox)
    wp = client.worker_pool_client
    work = client.work_client
    lifetime = timedelta(hours=2)

    # Build: head, observability and two worker pools from templates, one WR holding their groups.
    head_pool = provision(client, f"{CLUSTER}-head", 1, "sandbox/ray-head",
                          idle_node=timedelta(minutes=3), idle_pool=timedelta(minutes=3))
    obs_pool = provision(client, f"{CLUSTER}-obs", 1, "sandbox/ray-observability")
    workers_a = provision(client, f"{CLUSTER}-workers-a", 2)
    workers_b = provision(client, f"{CLUSTER}-workers-b", 2)
    assert isinstance(head_pool, ProvisionedWorkerPool) and head_pool.computeRequirementId
    wr = work.add_work_requirement(WorkRequirement(
        namespace=NAMESPACE, name=CLUSTER, tag="raydog", taskGroups=[
            task_group(f"{CLUSTER}-head", finishIfAnyTaskFailed=True),
            task_group(f"{CLUSTER}-obs"),
            task_group(f"{CLUSTER}-workers-a"),
            task_group(f"{CLUSTER}-workers-b"),
        ]))
    assert wr.status is WorkRequirementStatus.RUNNING
    head_group, obs_group, group_a, group_b = wr.taskGroups
    for group in wr.taskGroups:
        group.runSpecification.taskTimeout = lifetime

    obs_task = work.add_tasks_to_task_group_by_id(obs_group.id, [bash_task("obs")])[0]
    head_task = work.add_tasks_to_task_group_by_id(
        head_group.id, [bash_task("head", OBSERVABILITY_HOST="127.0.0.1")])[0]
    wait_executing(client, [obs_task.id, head_task.id])
    head_private, head_public = ips_of(client, head_pool, head_task.id)
    obs_private, _ = ips_of(client, obs_pool, obs_task.id)

    tasks_a = work.add_tasks_to_task_group_by_id(group_a.id, [
        bash_task(f"worker-{i}", RAY_HEAD_IP=head_private, RAY_HEAD_NODE_PRIVATE_IP=head_private)
        for i in range(2)])
    tasks_b = work.add_tasks_to_task_group_by_id(group_b.id, [
        bash_task(f"worker-{i}", RAY_HEAD_IP=head_private) for i in range(2)])
    wait_executing(client, [t.id for t in tasks_a + tasks_b])
    assert work.get_task_by_id(tasks_a[0].id).environment["RAY_HEAD_IP"] == head_private

    addresses = {head_private, head_public, obs_private}
    for pool, tasks in ((workers_a, tasks_a), (workers_b, tasks_b)):
        for task in tasks:
            addresses.update(ips_of(client, pool, task.id))
    assert len(addresses) == 3 + 2 * 4  # every node's private and public address is its own
    assert all(ipaddress.ip_address(a) in ipaddress.ip_network("127.0.0.0/8") for a in addresses)

    # After the build: a third pool and task group, added by updating the work requirement.
    workers_c = provision(client, f"{CLUSTER}-workers-c", 1)
    current = work.get_work_requirement_by_id(wr.id)
    current.taskGroups.append(task_group(f"{CLUSTER}-workers-c"))
    updated = work.update_work_requirement(current)
    group_c = updated.taskGroups[-1]
    assert group_c.name == f"{CLUSTER}-workers-c" and group_c.id.startswith(wr.id.replace("workreq", "taskgrp"))
    tasks_c = work.add_tasks_to_task_group_by_id(group_c.id, [bash_task("worker-0", RAY_HEAD_IP=head_private)])
    wait_executing(client, [tasks_c[0].id])

    # Resize pool a up to three nodes and give the new node a task; then back down to two.
    resized = wp.resize_worker_pool_by_id(workers_a.id, 3)
    assert resized.expectedNodeCount == 3
    extra = work.add_tasks_to_task_group_by_id(group_a.id, [bash_task("worker-2", RAY_HEAD_IP=head_private)])[0]
    wait_executing(client, [extra.id])
    work.cancel_task_by_id(extra.id, True)
    wait_until(lambda: task_status(client, extra.id) is TaskStatus.ABORTED, "the extra task is aborted")
    wp.resize_worker_pool_by_id(workers_a.id, 2)
    nodes_a = wp.find_nodes(NodeSearch(workerPoolId=workers_a.id, statuses=[NodeStatus.RUNNING]))
    assert len(nodes_a) == 2  # the idle node went, the two busy ones stayed
    assert all(task_status(client, t.id) is TaskStatus.EXECUTING for t in tasks_a)

    # Remove pool b: abort its tasks, shut the pool down, terminate its compute requirement.
    for task in tasks_b:
        work.cancel_task_by_id(task.id, True)
    wp.shutdown_worker_pool_by_id(workers_b.id)
    client.compute_client.terminate_compute_requirement_by_id(workers_b.computeRequirementId)
    wait_until(lambda: wp.get_worker_pool_by_id(workers_b.id).status is WorkerPoolStatus.TERMINATED,
               "pool b is terminated")
    assert all(task_status(client, t.id) is TaskStatus.ABORTED for t in tasks_b)
    assert task_status(client, head_task.id) is TaskStatus.EXECUTING

    # Shut the cluster down: cancel the WR with abort; terminate the CRs, then shut the pools down.
    work.cancel_work_requirement_by_id(wr.id, True)
    wait_until(lambda: work.get_work_requirement_by_id(wr.id).status is WorkRequirementStatus.CANCELLED,
               "the work requirement is cancelled")
    for pool in (head_pool, obs_pool, workers_a, workers_c):
        client.compute_client.terminate_compute_requirement_by_id(pool.computeRequirementId)
        wp.shutdown_worker_pool_by_id(pool.id)  # after the CR is terminated: must not fail
    for pool in (head_pool, obs_pool, workers_a, workers_b, workers_c):
        wait_until(lambda pool=pool: wp.get_worker_pool_by_id(pool.id).status is WorkerPoolStatus.TERMINATED,
                   f"pool {pool.name} is terminated")
        assert (client.compute_client.get_compute_requirement_by_id(pool.computeRequirementId).status
                is ComputeRequirementStatus.TERMINATED)

    state = requests.get(f"{sandbox.url}/sandbox/v1/state", timeout=5).json()
    assert state["live"] == {"workRequirements": 0, "workerPools": 0, "computeRequirements": 0,
                             "instances": 0, "nodes": 0, "tasks": 0}
    running = [t for w in state["workRequirements"] for g in w["taskGroups"] for t in g["tasks"]
               if t["status"] in ("ALLOCATED", "EXECUTING")]
    assert running == []
    client.close()
