"""Build a Ray cluster on the sandbox exactly the way RayDog 2.0.0's builder does.

The calls, names and objects are copied from ``yellowdog_ray.raydog.builder.RayDogCluster``
(``__init__``, ``add_worker_pool``, ``build``, ``_save_state``) so that ``raydog
import-state`` is tested against what RayDog users really have on the platform: pools
``<cluster>-00-head``, ``<cluster>-observability`` (worker tag ``<cluster>-observability-00``)
and ``<cluster>-NN-wrkrs``; task groups ``head-node``, ``observability-node`` and
``worker-nodes-NN``; tasks ``task-NNNNN``; and the saved-state JSON.
"""

from __future__ import annotations

import json
from copy import copy
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from harness.waits import wait_until
from yellowdog_client import PlatformClient
from yellowdog_client.model import (
    ApiKey,
    AutoShutdown,
    ComputeRequirementTemplateUsage,
    InstanceSearch,
    NodeWorkerTarget,
    ProvisionedWorkerPoolProperties,
    RunSpecification,
    ServicesSchema,
    Task,
    TaskGroup,
    TaskStatus,
    WorkRequirement,
)

HEAD_TEMPLATE = "sandbox/ray-head"
WORKER_TEMPLATE = "sandbox/ray-worker"
OBSERVABILITY_TEMPLATE = "sandbox/ray-observability"
HEAD_SCRIPT = "#!/usr/bin/env bash\ntrap 'ray stop' EXIT\nray start --head --port=6379 --block\n"
WORKER_SCRIPT = "#!/usr/bin/env bash\ntrap 'ray stop' EXIT\nray start --address=$RAY_HEAD_IP:6379 --block\n"
OBSERVABILITY_SCRIPT = "#!/usr/bin/env bash\nexec sleep infinity\n"
# RayDog's builder: idle nodes and pools shut down after 3 minutes.
AUTO_SHUT_DOWN = AutoShutdown(enabled=True, timeout=timedelta(minutes=3))


@dataclass
class RayDogBuild:
    """What RayDog's builder knows after build(): the ids its saved state holds, and more."""

    cluster_name: str
    namespace: str
    tag: str | None
    work_requirement_id: str
    head_pool_id: str
    observability_pool_id: str | None
    worker_pool_ids: dict[str, str] = field(default_factory=dict)  # task group name -> pool id
    head_private_ip: str | None = None
    head_public_ip: str | None = None

    def saved_state(self) -> dict:
        """``RayDogCluster._save_state()``: worker pools first, then the head, then observability."""
        return {
            "cluster_name": self.cluster_name,
            "cluster_namespace": self.namespace,
            "cluster_tag": self.tag,
            "work_requirement_id": self.work_requirement_id,
            "worker_pool_ids": list(self.worker_pool_ids.values())
            + [self.head_pool_id]
            + ([self.observability_pool_id] if self.observability_pool_id else []),
        }

    def save_state_to_json_file(self, path: Path) -> Path:
        path.write_text(json.dumps(self.saved_state(), indent=2))
        return path


def raydog_client(url: str, key_id: str, key_secret: str) -> PlatformClient:
    return PlatformClient.create(ServicesSchema(defaultUrl=url), ApiKey(id=key_id, secret=key_secret))


def build_raydog_cluster(
    client: PlatformClient,
    cluster_name: str,
    namespace: str,
    worker_pool_node_counts: list[int],
    tag: str | None = None,
    enable_observability: bool = True,
    lifetime: timedelta | None = timedelta(hours=2),
    timeout: float = 60.0,
) -> RayDogBuild:
    """RayDogCluster(...), add_worker_pool(...) per count, build(): the same requests in the same order."""
    task_number = 0

    def next_task_name() -> str:
        nonlocal task_number
        task_number += 1
        return f"task-{str(task_number).zfill(5)}"

    head_naming = f"{cluster_name}-00-head"
    head_usage = ComputeRequirementTemplateUsage(
        templateId=HEAD_TEMPLATE, requirementName=head_naming, requirementNamespace=namespace,
        requirementTag=tag, targetInstanceCount=1, userData="#!/bin/bash\necho head userdata\n",
        instanceTags={"raydog": cluster_name})
    head_properties = ProvisionedWorkerPoolProperties(
        createNodeWorkers=NodeWorkerTarget.per_node(1), minNodes=0, maxNodes=1, workerTag=head_naming,
        idleNodeShutdown=AUTO_SHUT_DOWN, idlePoolShutdown=AUTO_SHUT_DOWN)
    head_task = Task(name=next_task_name(), taskType="bash", taskData=HEAD_SCRIPT, arguments=["taskdata.txt"],
                     environment={})
    work_requirement = WorkRequirement(
        name=cluster_name, namespace=namespace, tag=tag,
        taskGroups=[TaskGroup(name="head-node", finishIfAnyTaskFailed=True, runSpecification=RunSpecification(
            taskTypes=["bash"], workerTags=[head_naming], namespaces=[namespace], taskTimeout=lifetime))])

    if enable_observability:
        observability_naming = f"{cluster_name}-observability-00"
        observability_usage = ComputeRequirementTemplateUsage(
            templateId=OBSERVABILITY_TEMPLATE, requirementName=f"{cluster_name}-observability",
            requirementNamespace=namespace, requirementTag=tag, targetInstanceCount=1)
        observability_properties = ProvisionedWorkerPoolProperties(
            createNodeWorkers=NodeWorkerTarget.per_node(1), minNodes=0, maxNodes=1, workerTag=observability_naming,
            idleNodeShutdown=AUTO_SHUT_DOWN, idlePoolShutdown=AUTO_SHUT_DOWN)
        work_requirement.taskGroups.append(TaskGroup(
            name="observability-node", finishIfAnyTaskFailed=False, runSpecification=RunSpecification(
                taskTypes=["bash"], workerTags=[observability_naming], namespaces=[namespace],
                taskTimeout=lifetime)))
        observability_task = Task(name=next_task_name(), taskType="bash", taskData=OBSERVABILITY_SCRIPT,
                                  arguments=["taskdata.txt"])

    # add_worker_pool(): one pool, group and task prototype per call, numbered from 01.
    workers = []
    for index, count in enumerate(worker_pool_node_counts, start=1):
        index_str = str(index).zfill(2)
        group_name = f"worker-nodes-{index_str}"
        pool_name = f"{cluster_name}-{index_str}-wrkrs"
        workers.append((group_name, count, ComputeRequirementTemplateUsage(
            templateId=WORKER_TEMPLATE, requirementName=pool_name, requirementNamespace=namespace,
            requirementTag=tag, targetInstanceCount=count), ProvisionedWorkerPoolProperties(
            createNodeWorkers=NodeWorkerTarget.per_node(1), minNodes=0, maxNodes=count, workerTag=pool_name,
            idleNodeShutdown=AUTO_SHUT_DOWN, idlePoolShutdown=AUTO_SHUT_DOWN), TaskGroup(
            name=group_name, finishIfAnyTaskFailed=False, runSpecification=RunSpecification(
                taskTypes=["bash"], workerTags=[pool_name], namespaces=[namespace], taskTimeout=lifetime)),
            Task(taskType="bash", taskData=WORKER_SCRIPT, arguments=["taskdata.txt"], environment={})))

    # build()
    pools = client.worker_pool_client
    work = client.work_client
    head_pool_id = pools.provision_worker_pool(head_usage, head_properties).id
    worker_pool_ids = {name: pools.provision_worker_pool(usage, props).id for name, _, usage, props, _, _ in workers}
    work_requirement.taskGroups += [group for *_, group, _ in workers]
    work_requirement = work.add_work_requirement(work_requirement)

    observability_pool_id = None
    if enable_observability:
        observability_pool_id = pools.provision_worker_pool(observability_usage, observability_properties).id
        obs_task_id = work.add_tasks_to_task_group_by_id(work_requirement.taskGroups[1].id, [observability_task])[0].id
        obs = _wait_executing(client, obs_task_id, timeout)
        obs_node = pools.get_node_by_id(pools.get_node_by_worker_id(obs.workerId).id)
        observability_ip = obs_node.details.privateIpAddress
        head_task.environment.update({"OBSERVABILITY_HOST": observability_ip})

    head_task_id = work.add_tasks_to_task_group_by_id(work_requirement.taskGroups[0].id, [head_task])[0].id
    task = _wait_executing(client, head_task_id, timeout)
    node = pools.get_node_by_id(pools.get_node_by_worker_id(task.workerId).id)
    head_private_ip = node.details.privateIpAddress
    head_public_ip = _public_ip(client, node)

    first_worker_group = 2 if enable_observability else 1
    for offset, (_, count, _, _, _, prototype) in enumerate(workers):
        prototype.environment.update({"RAY_HEAD_NODE_PRIVATE_IP": head_private_ip, "RAY_HEAD_IP": head_private_ip})
        if enable_observability:
            prototype.environment.update({"OBSERVABILITY_HOST": observability_ip})
        tasks = []
        for _ in range(count):
            worker_task = copy(prototype)
            worker_task.name = next_task_name()
            tasks.append(worker_task)
        work.add_tasks_to_task_group_by_id(work_requirement.taskGroups[first_worker_group + offset].id, tasks)

    return RayDogBuild(cluster_name, namespace, tag, work_requirement.id, head_pool_id, observability_pool_id,
                       worker_pool_ids, head_private_ip, head_public_ip)


def shut_down_pool(client: PlatformClient, pool_id: str) -> None:
    """RayDog's ``_terminate_compute_requirement_and_shutdown_worker_pool``."""
    pool = client.worker_pool_client.get_worker_pool_by_id(pool_id)
    client.compute_client.terminate_compute_requirement_by_id(pool.computeRequirementId)
    client.worker_pool_client.shutdown_worker_pool_by_id(pool_id)


def _wait_executing(client: PlatformClient, task_id: str, timeout: float):
    def task():
        found = client.work_client.get_task_by_id(task_id)
        if found.status in (TaskStatus.FAILED, TaskStatus.CANCELLED, TaskStatus.ABORTED, TaskStatus.DISCARDED):
            raise AssertionError(f"task {task_id} is {found.status}")
        return found

    return wait_until(task, f"task {task_id} executes", timeout=timeout,
                      until=lambda found: found.status == TaskStatus.EXECUTING)


def _public_ip(client: PlatformClient, node) -> str | None:
    """``yellowdog_ray.utils.utils.get_public_ip_from_node``."""
    pool = client.worker_pool_client.get_worker_pool_by_id(node.workerPoolId)
    for instance in client.compute_client.get_instances(
            InstanceSearch(computeRequirementId=pool.computeRequirementId)).list_all():
        if instance.id.instanceId == node.details.instanceId:
            return instance.publicIpAddress
    return None
