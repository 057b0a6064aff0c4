"""The sandbox's HTTP layer: YellowDog API routes in the SDK's wire format, plus /sandbox/v1.

Each route parses its request, calls ``Platform`` and renders the result with the SDK's
own model classes and ``yellowdog_client.common.json.Json``, so the JSON is exactly what
the SDK reads and writes (``type`` discriminators, ISO-8601 times and durations, enums
by name). Errors use the SDK's body ``{"errorType", "message", "detail"}``.

YellowDog routes need ``Authorization: yd-key ID:SECRET``, are counted per method and
route template, and go through fault injection. ``/sandbox/v1/*`` routes need no key and
are never faulted or counted: they are for tests and operators on this machine.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import json
import logging
import threading
import typing
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from yellowdog_client.common.json import Json
from yellowdog_client.model import (
    CloudProvider,
    ComputeRequirement,
    ComputeRequirementSummary,
    ComputeRequirementSummarySearch,
    ComputeRequirementSupportedOperations,
    ComputeRequirementTemplateUsage,
    InstanceId,
    InstanceSearch,
    InstanceStatus,
    Node,
    NodeDetails,
    NodeSearch,
    NodeStatus,
    NodeSummary,
    ProvisionedWorkerPool,
    ProvisionedWorkerPoolProperties,
    SimulatorComputeSource,
    SimulatorInstance,
    SingleSourceProvisionStrategy,
    Slice,
    Task,
    TaskGroup,
    TaskSearch,
    TaskStatus,
    TaskSummary,
    Worker,
    WorkerPoolSearch,
    WorkerPoolSummary,
    WorkerStatus,
    WorkerSummary,
    WorkRequirement,
    WorkRequirementSearch,
    WorkRequirementSummary,
)

from .faults import FaultDecision, FaultInjector, FaultSpecError, parse_faults
from .models import (
    PROVISIONED_POOL_TYPE,
    SUPPORTED_TASK_TYPES,
    ComputeRequirementRec,
    GroupRec,
    InstanceRec,
    InvalidRequest,
    NodeRec,
    NotAuthorised,
    NotFound,
    Platform,
    PoolRec,
    SandboxError,
    TaskRec,
    WorkRequirementRec,
)
from .runtime import NodeRuntime
from .templates import PROVIDER, REGION

log = logging.getLogger("raydog.sandbox")

DEFAULT_SLICE_SIZE = 100
MAX_SLICE_SIZE = 1000
DROP_KEY = "raydog.sandbox.drop"
_PROVIDER = CloudProvider[PROVIDER]


# ── request accounting ─────────────────────────────────────────────────────────


class RequestCounter:
    """Requests received per 'METHOD /route/{template}' (YellowDog routes only)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def count(self, route: str) -> None:
        with self._lock:
            self._counts[route] += 1

    def snapshot(self) -> dict:
        with self._lock:
            return {"total": sum(self._counts.values()), "routes": dict(sorted(self._counts.items()))}

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()


class ApiKeys:
    """The application keys the sandbox accepts."""

    def __init__(self, keys: dict[str, str]) -> None:
        self.keys = dict(keys)

    def check(self, header: str | None) -> None:
        scheme, _, credential = (header or "").partition(" ")
        key_id, _, secret = credential.strip().partition(":")
        if scheme.lower() != "yd-key" or not key_id or self.keys.get(key_id) != secret:
            raise NotAuthorised("the application key is missing or not valid",
                                ["send the header 'Authorization: yd-key ID:SECRET' with an accepted key"])


# ── responses ──────────────────────────────────────────────────────────────────


def json_response(payload: Any, status_code: int = 200, headers: dict | None = None) -> Response:
    return Response(json.dumps(payload, separators=(",", ":")), status_code=status_code,
                    media_type="application/json", headers=headers)


def error_response(error: SandboxError) -> Response:
    return json_response({"errorType": error.error_type, "message": error.message, "detail": error.detail},
                         status_code=error.status_code)


def fault_response(decision: FaultDecision) -> Response:
    if decision.status == 429:
        return json_response(
            {"errorType": "TooManyRequestsException", "message": "sandbox fault: too many requests", "detail": []},
            status_code=429, headers={"Retry-After": str(decision.retry_after)})
    if decision.status == 500:
        return json_response(
            {"errorType": "InternalServerException", "message": "sandbox fault: internal server error",
             "detail": []}, status_code=500)
    return Response(f"sandbox fault: {decision.status}", status_code=decision.status or 500, media_type="text/plain")


# ── rendering records as SDK models ────────────────────────────────────────────


def render_work_requirement(wr: WorkRequirementRec) -> WorkRequirement:
    rendered = WorkRequirement(namespace=wr.namespace, name=wr.name,
                               taskGroups=[render_task_group(g) for g in wr.groups], tag=wr.tag,
                               priority=wr.priority)
    rendered.id = wr.id
    rendered.createdTime = wr.created
    rendered.status = wr.status
    rendered.statusChangedTime = wr.status_changed
    return rendered


def render_task_group(group: GroupRec) -> TaskGroup:
    rendered = TaskGroup(
        name=group.name, runSpecification=group.run_spec, tag=group.tag, priority=group.priority,
        dependencies=group.dependencies or None, starved=False, waitingOnDependency=False,
        finishIfAllTasksFinished=group.finish_all, finishIfAnyTaskFailed=group.finish_any_failed,
        completedTaskTtl=group.completed_ttl, taskTemplate=group.task_template)
    counts = Counter(task.status for task in group.tasks)
    rendered.id = group.id
    rendered.status = group.status
    rendered.statusChangedTime = group.status_changed
    rendered.taskSummary = TaskSummary(statusCounts={status: counts.get(status, 0) for status in TaskStatus},
                                       taskCount=len(group.tasks), lastUpdatedTime=group.status_changed)
    return rendered


def render_work_requirement_summary(wr: WorkRequirementRec) -> WorkRequirementSummary:
    tasks = [task for group in wr.groups for task in group.tasks]
    return WorkRequirementSummary(
        id=wr.id, namespace=wr.namespace, name=wr.name, tag=wr.tag, createdTime=wr.created,
        statusChangedTime=wr.status_changed, priority=wr.priority,
        completedTaskCount=sum(1 for t in tasks if t.status is TaskStatus.COMPLETED), totalTaskCount=len(tasks),
        status=wr.status, healthy=True)


def render_task(task: TaskRec) -> Task:
    rendered = Task(name=task.name, tag=task.tag, taskType=task.task_type, arguments=task.arguments,
                    taskData=task.task_data, environment=task.environment, startedTime=task.started,
                    finishedTime=task.finished, abortRequestedTime=task.abort_requested, data=task.data,
                    timeout=task.timeout)
    rendered.id = task.id
    rendered.status = task.status
    rendered.retryCount = task.retry_count
    rendered.taskGroupId = task.group_id
    rendered.nodeId = task.node_id
    rendered.workerId = task.worker_id
    rendered.errors = list(task.errors) or None
    return rendered


def render_pool(pool: PoolRec, platform: Platform) -> ProvisionedWorkerPool:
    workers = [n.worker for n in pool.nodes if n.worker is not None]
    node_counts = Counter(n.status for n in pool.nodes if n.status is not None)
    worker_counts = Counter(w.status for w in workers)
    cr = platform.compute_requirements[pool.cr_id]
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


def render_node(node: NodeRec, platform: Platform) -> Node:
    pool = platform.pools[node.pool_id]
    instance = node.instance
    worker = node.worker
    details = NodeDetails(
        instanceId=instance.id, provider=_PROVIDER, region=REGION, sourceName="sandbox", sourceNumber=0,
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


def render_compute_requirement(cr: ComputeRequirementRec) -> ComputeRequirement:
    source = SimulatorComputeSource(name="sandbox", region=REGION, instanceType=cr.template.instance_type,
                                    imageId=cr.usage.imagesId or "sim-image", instanceTags=cr.usage.instanceTags)
    source.id = cr.source_id
    source.provider = _PROVIDER
    rendered = ComputeRequirement(
        namespace=cr.namespace, name=cr.name, provisionStrategy=SingleSourceProvisionStrategy(sources=[source]),
        tag=cr.tag, targetInstanceCount=cr.target,
        expectedInstanceCount=sum(1 for i in cr.instances if i.status.alive),
        maintainInstanceCount=cr.usage.maintainInstanceCount, nextStatus=cr.next_status,
        autoShutdown=cr.usage.autoShutdown)
    rendered.id = cr.id
    rendered.createdFromId = cr.template.id
    rendered.createdTime = cr.created
    rendered.statusChangedTime = cr.status_changed
    rendered.status = cr.status
    rendered.supportedOperations = ComputeRequirementSupportedOperations(
        canStopStart=False, canScaleOut=True, canReprovision=False)
    return rendered


def render_compute_requirement_summary(cr: ComputeRequirementRec) -> ComputeRequirementSummary:
    alive = sum(1 for i in cr.instances if i.status.alive)
    return ComputeRequirementSummary(
        id=cr.id, namespace=cr.namespace, name=cr.name, tag=cr.tag, targetInstanceCount=cr.target,
        expectedInstanceCount=alive, aliveInstanceCount=alive, createdTime=cr.created,
        statusChangedTime=cr.status_changed, status=cr.status, healthy=True)


def render_instance(instance: InstanceRec, platform: Platform) -> SimulatorInstance:
    cr = platform.compute_requirements[instance.cr_id]
    return SimulatorInstance(
        id=InstanceId(sourceId=cr.source_id, instanceId=instance.id), createdTime=instance.created,
        provider=_PROVIDER, instanceType=cr.template.instance_type, region=REGION,
        imageId=cr.usage.imagesId or "sim-image", hostname=instance.hostname,
        privateIpAddress=instance.private_ip, publicIpAddress=instance.public_ip, spot=False,
        status=instance.status, statusChangedTime=instance.status_changed)


# ── query parameters ───────────────────────────────────────────────────────────


def parse_search(cls: type, query: Any) -> Any:
    """Build an SDK search object from query parameters flattened the way Proxy.to_params does."""
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        kind = _unwrap_optional(hints[f.name])
        if typing.get_origin(kind) in (list, list):
            items = query.getlist(f.name)
            if items:
                (item_kind,) = typing.get_args(kind)
                values[f.name] = [_convert(f.name, item_kind, item) for item in items]
        elif dataclasses.is_dataclass(kind):
            bound_hints = typing.get_type_hints(kind)
            bounds = {b: _convert(f"{f.name}.{b}", _unwrap_optional(bound_hints[b]), query[f"{f.name}.{b}"])
                      for b in ("min", "max") if query.get(f"{f.name}.{b}") not in (None, "")}
            if bounds:
                values[f.name] = kind(**bounds)
        elif query.get(f.name) is not None:
            values[f.name] = _convert(f.name, kind, query[f.name])
    return cls(**values)


def _unwrap_optional(kind: Any) -> Any:
    if typing.get_origin(kind) is typing.Union:
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        return args[0] if len(args) == 1 else kind
    return kind


def _convert(name: str, kind: Any, raw: str) -> Any:
    try:
        if isinstance(kind, type) and issubclass(kind, Enum):
            return kind[raw]
        if kind is bool:
            if raw.lower() not in ("true", "false"):
                raise ValueError(raw)
            return raw.lower() == "true"
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
        if kind is datetime:
            parsed = datetime.fromisoformat(raw)
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        return raw
    except (KeyError, ValueError):
        raise InvalidRequest(f"query parameter {name}={raw!r} is not valid") from None


def slice_of(items: list, query: Any, render: Callable[[Any], Any]) -> dict:
    """One page of a search; nextSliceId only when more items follow."""
    try:
        offset = int(query.get("sliceId") or 0)
        size = int(query.get("size") or DEFAULT_SLICE_SIZE)
    except ValueError:
        raise InvalidRequest("sliceId and size must be whole numbers") from None
    if offset < 0 or not 1 <= size <= MAX_SLICE_SIZE:
        raise InvalidRequest(f"size must be between 1 and {MAX_SLICE_SIZE}, and sliceId a slice id this search returned")
    page = items[offset:offset + size]
    more = offset + size < len(items)
    return Json.dump(Slice(items=[render(item) for item in page], nextSliceId=str(offset + size) if more else None))


# ── the YellowDog routes ───────────────────────────────────────────────────────


Handler = Callable[[Request, Any], Any]


class SandboxApi:
    """The Starlette application around one Platform."""

    def __init__(self, platform: Platform, runtime: NodeRuntime, api_keys: dict[str, str],
                 faults: FaultInjector | None = None) -> None:
        self.platform = platform
        self.runtime = runtime
        self.keys = ApiKeys(api_keys)
        self.faults = faults or FaultInjector()
        self.requests = RequestCounter()
        self.app = DropConnections(Starlette(routes=self._yellowdog_routes() + self._sandbox_routes()))

    def _route(self, method: str, path: str, handler: Handler, status_code: int = 200) -> Route:
        template = f"{method} {path}"

        async def endpoint(request: Request) -> Response:
            self.requests.count(template)
            decision = self.faults.decide(method, template)
            if decision.latency:
                await asyncio.sleep(decision.latency)
            if decision.status is not None:
                return fault_response(decision)
            try:
                self.keys.check(request.headers.get("authorization"))
                body = await _read_json(request)
                result = handler(request, body)
                response = json_response(result, status_code) if result is not None else Response(
                    status_code=status_code)
            except SandboxError as error:
                response = error_response(error)
            except Exception as error:  # any bug becomes a 500, as on the real API
                log.exception("%s failed", template)
                response = json_response({"errorType": "InternalServerException",
                                          "message": f"sandbox error: {error}", "detail": []}, 500)
            if decision.drop:
                request.scope[DROP_KEY] = True
            return response

        return Route(path, endpoint, methods=[method])

    def _yellowdog_routes(self) -> list[Route]:
        p = self.platform
        r = self._route
        q = _query

        def provision(request: Request, body: Any) -> Any:
            body = _require_object(body)
            usage = _load(body.get("requirementTemplateUsage"), ComputeRequirementTemplateUsage,
                          "requirementTemplateUsage")
            properties = None
            if body.get("provisionedProperties") is not None:
                properties = _load(body["provisionedProperties"], ProvisionedWorkerPoolProperties,
                                   "provisionedProperties")
            with p.lock:
                return Json.dump(render_pool(p.provision_pool(usage, properties), p))

        def pool_by_id(request: Request, body: Any) -> Any:
            with p.lock:
                return Json.dump(render_pool(p.get_pool(_path(request, "id")), p))

        def pool_by_name(request: Request, body: Any) -> Any:
            with p.lock:
                return Json.dump(render_pool(p.get_pool_by_name(_path(request, "namespace"),
                                                                _path(request, "name")), p))

        def shutdown_pool(request: Request, body: Any) -> Any:
            p.shutdown_pool(_path(request, "id"))
            return None

        def resize_pool(request: Request, body: Any) -> Any:
            size = q(request).get("size")
            if size is None or not size.lstrip("-").isdigit():
                raise InvalidRequest("the query parameter size (a whole number of nodes) is required")
            with p.lock:
                return Json.dump(render_pool(p.resize_pool(_path(request, "id"), int(size)), p))

        def search_pools(request: Request, body: Any) -> Any:
            found = p.search_pools(parse_search(WorkerPoolSearch, q(request)))
            with p.lock:
                return slice_of(found, q(request), render_pool_summary)

        def node_by_id(request: Request, body: Any) -> Any:
            with p.lock:
                return Json.dump(render_node(p.get_node(_path(request, "id")), p))

        def node_by_worker(request: Request, body: Any) -> Any:
            with p.lock:
                return Json.dump(render_node(p.get_node_by_worker(_path(request, "workerId")), p))

        def search_nodes(request: Request, body: Any) -> Any:
            found = p.search_nodes(parse_search(NodeSearch, q(request)))
            with p.lock:
                return slice_of(found, q(request), lambda n: render_node(n, p))

        def shutdown_node(request: Request, body: Any) -> Any:
            with p.lock:
                return Json.dump(render_node(p.shutdown_node(_path(request, "id")), p))

        def add_wr(request: Request, body: Any) -> Any:
            requirement = _load(_require_object(body), WorkRequirement, "work requirement")
            with p.lock:
                return Json.dump(render_work_requirement(p.add_work_requirement(requirement)))

        def update_wr(request: Request, body: Any) -> Any:
            requirement = _load(_require_object(body), WorkRequirement, "work requirement")
            with p.lock:
                return Json.dump(render_work_requirement(p.update_work_requirement(requirement)))

        def wr_by_id(request: Request, body: Any) -> Any:
            with p.lock:
                return Json.dump(render_work_requirement(p.get_work_requirement(_path(request, "id"))))

        def wr_by_name(request: Request, body: Any) -> Any:
            with p.lock:
                return Json.dump(render_work_requirement(
                    p.get_work_requirement_by_name(_path(request, "namespace"), _path(request, "name"))))

        def transition_wr(request: Request, body: Any) -> Any:
            abort = _bool_param(request, "abort")
            with p.lock:
                return Json.dump(render_work_requirement(p.transition_work_requirement(
                    _path(request, "id"), _path(request, "status"), abort)))

        def search_wrs(request: Request, body: Any) -> Any:
            found = p.search_work_requirements(parse_search(WorkRequirementSearch, q(request)))
            with p.lock:
                if q(request).get("sliced", "").lower() != "true":
                    return Json.dump([render_work_requirement_summary(wr) for wr in found])
                return slice_of(found, q(request), render_work_requirement_summary)

        def add_tasks(request: Request, body: Any) -> Any:
            tasks = _load_tasks(body)
            with p.lock:
                return Json.dump([render_task(t) for t in p.add_tasks(_path(request, "id"), tasks)])

        def add_tasks_by_name(request: Request, body: Any) -> Any:
            tasks = _load_tasks(body)
            with p.lock:
                added = p.add_tasks_by_name(_path(request, "namespace"), _path(request, "requirement"),
                                            _path(request, "group"), tasks)
                return Json.dump([render_task(t) for t in added])

        def task_by_id(request: Request, body: Any) -> Any:
            with p.lock:
                return Json.dump(render_task(p.get_task(_path(request, "id"))))

        def cancel_task(request: Request, body: Any) -> Any:
            abort = _bool_param(request, "abort")
            with p.lock:
                return Json.dump(render_task(p.cancel_task(_path(request, "id"), abort)))

        def search_tasks(request: Request, body: Any) -> Any:
            query = q(request)
            found = p.search_tasks(parse_search(TaskSearch, query), query.getlist("taskGroupIds"))
            with p.lock:
                return slice_of(found, query, render_task)

        def cr_by_id(request: Request, body: Any) -> Any:
            with p.lock:
                return Json.dump(render_compute_requirement(p.get_compute_requirement(_path(request, "id"))))

        def cr_by_name(request: Request, body: Any) -> Any:
            with p.lock:
                return Json.dump(render_compute_requirement(
                    p.get_compute_requirement_by_name(_path(request, "namespace"), _path(request, "name"))))

        def cr_updating(request: Request, body: Any) -> Any:
            return p.compute_requirement_updating(_path(request, "id"))

        def transition_cr(request: Request, body: Any) -> Any:
            with p.lock:
                return Json.dump(render_compute_requirement(
                    p.transition_compute_requirement(_path(request, "id"), _path(request, "status"))))

        def search_crs(request: Request, body: Any) -> Any:
            query = q(request)
            found = p.search_compute_requirements(parse_search(ComputeRequirementSummarySearch, query))
            summaries = query.get("summaries", "").lower() == "true"
            with p.lock:
                return slice_of(found, query, render_compute_requirement_summary if summaries
                                else render_compute_requirement)

        def template_json(key: str) -> Any:
            template = p.catalogue.find(key)
            if template is None:
                raise NotFound(f"compute requirement template {key} not found")
            namespace, name = template.name.split("/", 1)
            return {"type": "co.yellowdog.platform.model.ComputeRequirementStaticTemplate", "id": template.id,
                    "namespace": namespace, "name": name, "sources": [],
                    "strategyType": "co.yellowdog.platform.model.SingleSourceProvisionStrategy"}

        def search_instances(request: Request, body: Any) -> Any:
            found = p.search_instances(parse_search(InstanceSearch, q(request)))
            with p.lock:
                return slice_of(found, q(request), lambda i: render_instance(i, p))

        return [
            # Literal routes first: {namespace}/{name} would otherwise swallow them.
            r("POST", "/workerPools/provisioned/template", provision),
            r("PUT", "/workerPools/provisioned/{id}", resize_pool),
            r("GET", "/workerPools/nodes", search_nodes),
            r("GET", "/workerPools/nodes/{id}", node_by_id),
            r("DELETE", "/workerPools/nodes/{id}", shutdown_node),
            r("GET", "/workerPools/workers/{workerId}/node", node_by_worker),
            r("GET", "/workerPools/", search_pools),
            r("GET", "/workerPools/{id}", pool_by_id),
            r("DELETE", "/workerPools/{id}", shutdown_pool),
            r("GET", "/workerPools/{namespace}/{name}", pool_by_name),
            r("POST", "/work/requirements", add_wr),
            r("PUT", "/work/requirements", update_wr),
            r("GET", "/work/requirements", search_wrs),
            r("GET", "/work/requirements/{id}", wr_by_id),
            r("PUT", "/work/requirements/{id}/transition/{status}", transition_wr),
            r("GET", "/work/namespaces/{namespace}/requirements/{name}", wr_by_name),
            r("POST", "/work/taskGroups/{id}/tasks", add_tasks),
            r("POST", "/work/namespaces/{namespace}/requirements/{requirement}/taskGroups/{group}/tasks",
              add_tasks_by_name),
            r("GET", "/work/tasks", search_tasks),
            r("GET", "/work/tasks/{id}", task_by_id),
            r("PUT", "/work/tasks/{id}/cancel", cancel_task),
            r("GET", "/compute/requirements", search_crs),
            r("GET", "/compute/requirements/{id}", cr_by_id),
            r("GET", "/compute/requirements/{id}/updating", cr_updating),
            r("PUT", "/compute/requirements/{id}/transition/{status}", transition_cr),
            r("GET", "/compute/namespaces/{namespace}/requirements/{name}", cr_by_name),
            r("GET", "/compute/instances", search_instances),
            r("GET", "/compute/templates/requirements/{id}", lambda request, body: template_json(_path(request, "id"))),
            r("GET", "/compute/namespaces/{namespace}/templates/requirements/{name}", lambda request, body: (
                template_json(f"{_path(request, 'namespace')}/{_path(request, 'name')}"))),
        ]

    # ── /sandbox/v1 ──

    def _sandbox_routes(self) -> list[Route]:
        p = self.platform

        def sandbox(method: str, path: str, handler: Callable[[Request], Awaitable[Any] | Any]) -> Route:
            async def endpoint(request: Request) -> Response:
                try:
                    result = handler(request)
                    if asyncio.iscoroutine(result):
                        result = await result
                    return json_response(result)
                except SandboxError as error:
                    return error_response(error)
            return Route("/sandbox/v1" + path, endpoint, methods=[method])

        async def set_faults(request: Request) -> dict:
            text = (await request.body()).decode("utf-8", "replace").strip()
            if text.startswith("{"):
                text = str(json.loads(text).get("spec") or "")
            try:
                spec = parse_faults(text)
            except FaultSpecError as error:
                raise InvalidRequest(str(error)) from None
            self.faults.configure(spec)
            return {"faults": spec.describe()}

        def reset_requests(request: Request) -> dict:
            self.requests.reset()
            return self.requests.snapshot()

        def task_output(request: Request) -> dict:
            task = p.get_task(_path(request, "id"))
            output = self.runtime.task_output(task.id)
            return {"taskId": task.id, "output": output if output is not None else task.output_tail or None}

        def kill_node(request: Request) -> dict:
            node = p.kill_node(_path(request, "id"))
            return {"id": node.id, "status": node.status.name}

        def terminate_pool(request: Request) -> dict:
            pool = p.terminate_pool(_path(request, "id"))
            return {"id": pool.id, "status": pool.status.name}

        def abort_task(request: Request) -> dict:
            task = p.abort_task(_path(request, "id"))
            return {"id": task.id, "status": task.status.name}

        def cancel_wr(request: Request) -> dict:
            wr = p.cancel_work_requirement(_path(request, "id"))
            return {"id": wr.id, "status": wr.status.name}

        return [
            sandbox("GET", "/health", lambda request: {"status": "ok"}),
            sandbox("GET", "/state", lambda request: p.snapshot()),
            sandbox("GET", "/requests", lambda request: self.requests.snapshot()),
            sandbox("POST", "/requests/reset", reset_requests),
            sandbox("GET", "/faults", lambda request: {"faults": self.faults.spec.describe()}),
            sandbox("PUT", "/faults", set_faults),
            sandbox("GET", "/templates", lambda request: {
                "templates": [t.to_json() for t in p.catalogue.all()]}),
            sandbox("POST", "/nodes/{id}/kill", kill_node),
            sandbox("POST", "/workerPools/{id}/terminate", terminate_pool),
            sandbox("POST", "/tasks/{id}/abort", abort_task),
            sandbox("POST", "/workRequirements/{id}/cancel", cancel_wr),
            sandbox("GET", "/tasks/{id}/output", task_output),
        ]


# ── request helpers ────────────────────────────────────────────────────────────


def _query(request: Request) -> Any:
    return request.query_params


def _path(request: Request, name: str) -> str:
    return request.path_params[name]


def _bool_param(request: Request, name: str) -> bool:
    raw = request.query_params.get(name, "false").lower()
    if raw not in ("true", "false"):
        raise InvalidRequest(f"query parameter {name} must be true or false")
    return raw == "true"


async def _read_json(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        return None
    if request.headers.get("content-encoding", "").lower() == "gzip":
        try:
            raw = gzip.decompress(raw)
        except OSError:
            raise InvalidRequest("the request body is not valid gzip") from None
    try:
        return json.loads(raw)
    except ValueError:
        raise InvalidRequest("the request body is not valid JSON") from None


def _require_object(body: Any) -> dict:
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    return body


def _load(value: Any, cls: type, what: str) -> Any:
    if value is None:
        raise InvalidRequest(f"{what} is required")
    try:
        return Json.load(value, cls)
    except Exception as error:  # noqa: BLE001 - cattrs raises many kinds; all mean a bad body
        raise InvalidRequest(f"{what} is not valid: {_describe_load_error(error)}") from None


def _load_tasks(body: Any) -> list[Task]:
    if body is None:
        return []
    if not isinstance(body, list):
        raise InvalidRequest("the request body must be a JSON array of tasks")
    return [_load(item, Task, f"tasks[{i}]") for i, item in enumerate(body)]


def _describe_load_error(error: Exception) -> str:
    exceptions = getattr(error, "exceptions", None)
    if exceptions:
        return "; ".join(_describe_load_error(e) for e in exceptions)
    notes = getattr(error, "__notes__", None)
    return f"{error} ({'; '.join(notes)})" if notes else str(error)


# ── dropping connections ───────────────────────────────────────────────────────


class DropConnections:
    """Outermost ASGI layer: when a route marked the request, close the connection instead of replying.

    The route has already executed and committed the change; the client sees the
    connection close with no response. Needs uvicorn, whose ``send`` is a method of the
    request cycle that holds the transport.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        dropped = False

        async def guarded_send(message: dict) -> None:
            nonlocal dropped
            if dropped:
                return
            if message["type"] == "http.response.start" and scope.get(DROP_KEY):
                transport = getattr(getattr(send, "__self__", None), "transport", None)
                if transport is not None:
                    dropped = True
                    transport.abort()
                    return
                log.warning("cannot drop the connection under this server; replying instead")
            await send(message)

        await self.app(scope, receive, guarded_send)
        if dropped:
            # Let the server see the disconnect, so it does not answer on the closed connection.
            try:
                await asyncio.wait_for(_until_disconnected(receive), timeout=2.0)
            except TimeoutError:
                pass


async def _until_disconnected(receive: Any) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
