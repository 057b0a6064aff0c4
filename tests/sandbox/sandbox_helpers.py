"""Helpers for sandbox tests: an SDK client with quick retries, RayDog-shaped objects (waits: harness.waits)."""

from __future__ import annotations

from datetime import timedelta

from yellowdog_client import PlatformClient
from yellowdog_client.model import (
    ApiKey,
    AutoShutdown,
    ComputeRequirementTemplateUsage,
    ProvisionedWorkerPool,
    ProvisionedWorkerPoolProperties,
    RetryProperties,
    RunSpecification,
    ServicesSchema,
    Task,
    TaskGroup,
)

NAMESPACE = "raydog-test"


def make_client(sandbox, key_id: str | None = None, key_secret: str | None = None) -> PlatformClient:
    """The unmodified SDK client, with its own retry policy shortened so faulted tests stay quick."""
    schema = ServicesSchema(
        defaultUrl=sandbox.url,
        retry=RetryProperties(initialInterval=timedelta(milliseconds=1), maxInterval=timedelta(milliseconds=5)))
    return PlatformClient.create(schema, ApiKey(key_id or sandbox.key_id, key_secret or sandbox.key_secret))


def provision(client: PlatformClient, name: str, nodes: int, template: str = "sandbox/ray-worker",
              tag: str | None = None, namespace: str = NAMESPACE, idle_node: timedelta | None = None,
              idle_pool: timedelta | None = None, **properties) -> ProvisionedWorkerPool:
    """Provision a pool the way RayDog does: namespace/name from the usage, workerTag = name."""
    usage = ComputeRequirementTemplateUsage(
        templateId=template, requirementName=name, requirementNamespace=namespace, targetInstanceCount=nodes,
        userData="#!/bin/bash\necho userdata", instanceTags={"cluster": "test"}, maintainInstanceCount=False)
    props = ProvisionedWorkerPoolProperties(
        workerTag=tag or name,
        idleNodeShutdown=AutoShutdown(enabled=True, timeout=idle_node) if idle_node else None,
        idlePoolShutdown=AutoShutdown(enabled=True, timeout=idle_pool) if idle_pool else None,
        **properties)
    return client.worker_pool_client.provision_worker_pool(usage, props)


def task_group(name: str, tag: str | None = None, namespace: str = NAMESPACE, **kwargs) -> TaskGroup:
    """A RayDog task group: bash tasks on workers of one pool (by worker tag and namespace)."""
    spec = kwargs.pop("run_specification", None) or RunSpecification(
        taskTypes=["bash"], workerTags=[tag or name], namespaces=[namespace])
    return TaskGroup(name=name, runSpecification=spec, **kwargs)


def bash_task(name: str, **environment: str) -> Task:
    return Task(name=name, taskType="bash", taskData="#!/bin/bash\nray start --block\n",
                environment=dict(environment) or None)


def task_status(client: PlatformClient, task_id: str):
    return client.work_client.get_task_by_id(task_id).status
