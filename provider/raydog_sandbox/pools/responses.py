"""The worker pool API (``/workerPools/...``): parse the request, call ``PoolsModel``, render the SDK's
wire format."""

from __future__ import annotations

from collections import Counter
from typing import Any

from starlette.requests import Request
from yellowdog_client.common.json import Json
from yellowdog_client.model import (
    ComputeRequirementTemplateUsage,
    InstanceStatus,
    Node,
    NodeDetails,
    NodeSearch,
    NodeStatus,
    NodeSummary,
    ProvisionedWorkerPool,
    ProvisionedWorkerPoolProperties,
    Worker,
    WorkerPoolSearch,
    WorkerPoolSummary,
    WorkerStatus,
    WorkerSummary,
)

from ..compute.templates import REGION
from ..errors import InvalidRequest
from ..records import SUPPORTED_TASK_TYPES, ComputeRequirementRec, NodeRec, PoolRec
from ..wire import SDK_PROVIDER, load, parse_search, path_param, require_object, sliced
from .models import PROVISIONED_POOL_TYPE, PoolsModel


def render_pool(pool: PoolRec, cr: ComputeRequirementRec) -> ProvisionedWorkerPool:
    workers = [n.worker for n in pool.nodes if n.worker is not None]
    node_counts = Counter(n.status for n in pool.nodes if n.status is not None)
    worker_counts = Counter(w.status for w in workers)
    return ProvisionedWorkerPool(
        id=pool.id, name=pool.name, namespace=pool.namespace, createdTime=pool.created, status=pool.status,
        statusChangedTime=pool.status_changed, expectedNodeCount=pool.target,
        awaitingNodes=not pool.status.finished and any(
            i.status is InstanceStatus.PENDING for i in cr.instances),
        workerSummary=WorkerSummary(
            statusCounts={s: worker_counts.get(s, 0) for s in WorkerStatus}, claimedWorkerCount=pool.claimed,
            lastClaimedTime=pool.last_claimed, lastReleasedTime=pool.last_released,
            lastUpdatedTime=pool.status_changed),
        nodeSummary=NodeSummary(statusCounts={s: node_counts.get(s, 0) for s in NodeStatus},
                                lastUpdatedTime=pool.status_changed),
        properties=pool.properties, computeRequirementId=pool.cr_id)


def render_pool_summary(pool: PoolRec) -> WorkerPoolSummary:
    return WorkerPoolSummary(
        id=pool.id, name=pool.name, namespace=pool.namespace, type=PROVISIONED_POOL_TYPE,
        registeredNodeCount=pool.registered, registeredWorkerCount=pool.registered,
        claimedWorkerCount=pool.claimed, workingWorkerCount=pool.claimed, status=pool.status,
        createdTime=pool.created, statusChangedTime=pool.status_changed, healthy=True)


def render_node(node: NodeRec, pool: PoolRec) -> Node:
    instance = node.instance
    worker = node.worker
    details = NodeDetails(
        instanceId=instance.id, provider=SDK_PROVIDER, region=REGION, sourceName="sandbox", sourceNumber=0,
        instanceType=pool.template.instance_type, hostname=instance.hostname,
        privateIpAddress=instance.private_ip, publicIpAddress=instance.public_ip, vcpus=pool.template.vcpus,
        ram=pool.template.ram, supportedTaskTypes=list(SUPPORTED_TASK_TYPES), workerTag=pool.worker_tag,
        spot=False)
    workers = None
    if worker is not None:
        workers = [Worker(id=worker.id, status=worker.status,
                          taskGroupId=worker.task.group_id if worker.task else None,
                          registeredTime=worker.registered)]
    return Node(id=node.id, workerPoolId=node.pool_id, details=details, status=node.status,
                statusChangedTime=node.status_changed, registeredTime=node.registered,
                deregisteredTime=node.deregistered, workers=workers, agentVersion="sandbox")


class PoolResponses:
    """Handlers of the worker pool routes; ``routes.py`` maps each to its method and path."""

    def __init__(self, pools: PoolsModel) -> None:
        self.pools = pools

    def _pool_json(self, pool: PoolRec) -> Any:
        return Json.dump(render_pool(pool, self.pools.requirement_of(pool)))

    def _node(self, node: NodeRec) -> Node:
        return render_node(node, self.pools.pools[node.pool_id])

    def _node_json(self, node: NodeRec) -> Any:
        return Json.dump(self._node(node))

    def provision(self, request: Request, body: Any) -> Any:
        body = require_object(body)
        usage = load(body.get("requirementTemplateUsage"), ComputeRequirementTemplateUsage,
                     "requirementTemplateUsage")
        properties = None
        if body.get("provisionedProperties") is not None:
            properties = load(body["provisionedProperties"], ProvisionedWorkerPoolProperties, "provisionedProperties")
        return self.pools.provision_pool(usage, properties, self._pool_json)

    def pool_by_id(self, request: Request, body: Any) -> Any:
        return self.pools.get_pool(path_param(request, "id"), self._pool_json)

    def pool_by_name(self, request: Request, body: Any) -> Any:
        return self.pools.get_pool_by_name(path_param(request, "namespace"), path_param(request, "name"),
                                           self._pool_json)

    def shutdown_pool(self, request: Request, body: Any) -> Any:
        self.pools.shutdown_pool(path_param(request, "id"))
        return None

    def resize_pool(self, request: Request, body: Any) -> Any:
        size = request.query_params.get("size")
        if size is None or not size.lstrip("-").isdigit():
            raise InvalidRequest("the query parameter size (a whole number of nodes) is required")
        return self.pools.resize_pool(path_param(request, "id"), int(size), self._pool_json)

    def search_pools(self, request: Request, body: Any) -> Any:
        query = request.query_params
        return self.pools.search_pools(parse_search(WorkerPoolSearch, query), sliced(query, render_pool_summary))

    def node_by_id(self, request: Request, body: Any) -> Any:
        return self.pools.get_node(path_param(request, "id"), self._node_json)

    def node_by_worker(self, request: Request, body: Any) -> Any:
        return self.pools.get_node_by_worker(path_param(request, "workerId"), self._node_json)

    def search_nodes(self, request: Request, body: Any) -> Any:
        query = request.query_params
        return self.pools.search_nodes(parse_search(NodeSearch, query), sliced(query, self._node))

    def shutdown_node(self, request: Request, body: Any) -> Any:
        return self.pools.shutdown_node(path_param(request, "id"), self._node_json)
