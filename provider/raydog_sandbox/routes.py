"""The sandbox's HTTP application: one route table of the YellowDog API, plus ``/sandbox/v1``.

Each YellowDog route maps to a handler of a service's responses (``work/``, ``pools/``,
``compute/``), which parses the request, calls its model and renders the SDK's wire
format. Every YellowDog route needs ``Authorization: yd-key ID:SECRET``, is counted per
method and route template, and goes through fault injection; a bug in a handler is
answered 500, as the real API would. ``/sandbox/v1/*`` is ``introspection.py``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .backend import SandboxBackend
from .compute.responses import ComputeResponses
from .errors import NotAuthorised, SandboxError
from .faults import FaultDecision, FaultInjector
from .introspection import RequestCounter, sandbox_routes
from .nodes.runtime import NodeRuntime
from .pools.responses import PoolResponses
from .wire import Handler, error_response, json_response, read_json
from .work.responses import WorkResponses

log = logging.getLogger("raydog_sandbox")

DROP_KEY = "raydog_sandbox.drop"


def yellowdog_routes(backend: SandboxBackend) -> list[tuple[str, str, Handler]]:
    """(method, path template, handler) of every YellowDog route the sandbox serves."""
    work, pools, compute = WorkResponses(backend.work), PoolResponses(backend.pools), ComputeResponses(backend.compute)
    return [
        # Literal routes first: {namespace}/{name} would otherwise swallow them.
        ("POST", "/workerPools/provisioned/template", pools.provision),
        ("PUT", "/workerPools/provisioned/{id}", pools.resize_pool),
        ("GET", "/workerPools/nodes", pools.search_nodes),
        ("GET", "/workerPools/nodes/{id}", pools.node_by_id),
        ("DELETE", "/workerPools/nodes/{id}", pools.shutdown_node),
        ("GET", "/workerPools/workers/{workerId}/node", pools.node_by_worker),
        ("GET", "/workerPools/", pools.search_pools),
        ("GET", "/workerPools/{id}", pools.pool_by_id),
        ("DELETE", "/workerPools/{id}", pools.shutdown_pool),
        ("GET", "/workerPools/{namespace}/{name}", pools.pool_by_name),
        ("POST", "/work/requirements", work.add_work_requirement),
        ("PUT", "/work/requirements", work.update_work_requirement),
        ("GET", "/work/requirements", work.search_work_requirements),
        ("GET", "/work/requirements/{id}", work.work_requirement_by_id),
        ("PUT", "/work/requirements/{id}/transition/{status}", work.transition_work_requirement),
        ("GET", "/work/namespaces/{namespace}/requirements/{name}", work.work_requirement_by_name),
        ("POST", "/work/taskGroups/{id}/tasks", work.add_tasks),
        ("POST", "/work/namespaces/{namespace}/requirements/{requirement}/taskGroups/{group}/tasks",
         work.add_tasks_by_name),
        ("GET", "/work/tasks", work.search_tasks),
        ("GET", "/work/tasks/{id}", work.task_by_id),
        ("PUT", "/work/tasks/{id}/cancel", work.cancel_task),
        ("GET", "/compute/requirements", compute.search_requirements),
        ("GET", "/compute/requirements/{id}", compute.requirement_by_id),
        ("GET", "/compute/requirements/{id}/updating", compute.requirement_updating),
        ("PUT", "/compute/requirements/{id}/transition/{status}", compute.transition_requirement),
        ("GET", "/compute/namespaces/{namespace}/requirements/{name}", compute.requirement_by_name),
        ("GET", "/compute/instances", compute.search_instances),
        ("GET", "/compute/templates/requirements/{id}", compute.template_by_id),
        ("GET", "/compute/namespaces/{namespace}/templates/requirements/{name}", compute.template_by_name),
    ]


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


class SandboxApi:
    """The Starlette application around one SandboxBackend."""

    def __init__(self, backend: SandboxBackend, runtime: NodeRuntime, api_keys: dict[str, str],
                 faults: FaultInjector | None = None) -> None:
        self.backend = backend
        self.runtime = runtime
        self.keys = ApiKeys(api_keys)
        self.faults = faults or FaultInjector()
        self.requests = RequestCounter()
        routes = [self._route(method, path, handler) for method, path, handler in yellowdog_routes(backend)]
        routes += sandbox_routes(backend, runtime, self.faults, self.requests)
        self.app = DropConnections(Starlette(routes=routes))

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
                body = await read_json(request)
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
