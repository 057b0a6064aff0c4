"""The sandbox's HTTP application: one route table of the YellowDog API, plus ``/sandbox/v1``.

Each YellowDog route maps to a handler of a service's responses (``work/``, ``pools/``,
``compute/``), which parses the request, calls its model and renders the SDK's wire
format. Every YellowDog route needs ``Authorization: yd-key ID:SECRET``, is counted per
method and route template, and goes through fault injection; a bug in a handler is
answered 500, as the real API would. ``/sandbox/v1/*`` is ``introspection.py``.

Before any route, ``HostCheck`` refuses a request whose Host header names no address the
sandbox serves: a web page whose name an attacker re-points at 127.0.0.1 (DNS rebinding)
sends its own name as Host, so it can neither read nor drive the sandbox.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
from collections.abc import Iterable
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .backend import SandboxBackend
from .compute.responses import ComputeResponses
from .errors import MisdirectedRequest, NotAuthorised, SandboxError
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
        ("GET", "/work/requirements/{id}/updates", work.work_requirement_updates),
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
        ("PUT", "/compute/requirements", compute.update_requirement),
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
        expected = self.keys.get(key_id)
        # compare_digest: the time taken does not tell how much of a guessed secret was right.
        if scheme.lower() != "yd-key" or expected is None or not hmac.compare_digest(
                expected.encode("utf-8", "surrogateescape"), secret.encode("utf-8", "surrogateescape")):
            raise NotAuthorised("the application key is missing or not valid",
                                ["send the header 'Authorization: yd-key ID:SECRET' with an accepted key"])


class SandboxApi:
    """The Starlette application around one SandboxBackend."""

    def __init__(self, backend: SandboxBackend, runtime: NodeRuntime, api_keys: dict[str, str],
                 hosts: ServedHosts, faults: FaultInjector | None = None) -> None:
        self.backend = backend
        self.runtime = runtime
        self.keys = ApiKeys(api_keys)
        self.hosts = hosts
        self.faults = faults or FaultInjector()
        self.requests = RequestCounter()
        routes = [self._route(method, path, handler) for method, path, handler in yellowdog_routes(backend)]
        routes += sandbox_routes(backend, runtime, self.faults, self.requests, self.keys.check)
        self.app = DropConnections(HostCheck(Starlette(routes=routes), hosts))

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
                if isinstance(result, Response):  # a stream (``.../updates``)
                    response = result
                else:
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


LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARD_ADDRESSES = ("", "0.0.0.0", "::")


class ServedHosts:
    """The Host header values this sandbox answers: the names of the address it serves, at its port.

    A loopback bind also answers ``localhost``, ``127.0.0.1`` and ``[::1]``; a wildcard bind
    (``0.0.0.0``, ``::``) answers those and any IP address, which no DNS rebinding can forge.
    ``extra`` adds ``NAME`` (at the sandbox's port) or ``NAME:PORT`` (a proxy, a tunnel).
    """

    def __init__(self, bind_host: str, bound_address: str, port: int, extra: Iterable[str] = ()) -> None:
        self.port = port
        given = _normal_name(bind_host)
        self.any_ip = given in WILDCARD_ADDRESSES or _normal_name(bound_address) in WILDCARD_ADDRESSES
        self.names = {given, _normal_name(bound_address)} - set(WILDCARD_ADDRESSES)
        if self.any_ip or _is_loopback(bound_address):
            self.names.update(LOOPBACK_NAMES)
        self.pairs: set[tuple[str, int]] = set()
        for entry in extra:
            parsed = parse_host(entry)
            if parsed is None:
                raise ValueError(f"--allow-host {entry!r} must be NAME or NAME:PORT")
            name, entry_port = parsed
            if entry_port is None:
                self.names.add(name)
            else:
                self.pairs.add((name, entry_port))

    def allows(self, host: str | None) -> bool:
        parsed = parse_host(host) if host else None
        if parsed is None:
            return False
        name, port = parsed[0], parsed[1] if parsed[1] is not None else 80
        if (name, port) in self.pairs:
            return True
        return port == self.port and (name in self.names or (self.any_ip and _ip(name) is not None))

    def describe(self) -> str:
        served = [_with_port(name, self.port) for name in sorted(self.names)]
        served += [_with_port(name, port) for name, port in sorted(self.pairs)]
        if self.any_ip:
            served.append(f"any IP address at port {self.port}")
        return ", ".join(served)


def parse_host(value: str) -> tuple[str, int | None] | None:
    """(name, port or None) of a Host header value (``name``, ``name:port``, ``[v6]:port``); None if malformed."""
    value = value.strip()
    if value.startswith("["):
        name, sep, rest = value[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")) or _ip(name) is None:
            return None
        port_text = rest[1:] if rest else None
    else:
        name, sep, port_text = value.partition(":")
        port_text = port_text if sep else None
        if ":" in (port_text or ""):
            return None
    if not name or any(c.isspace() or c in "/@\\" for c in name):
        return None
    if port_text is not None and not (port_text.isascii() and port_text.isdigit() and 0 < int(port_text) < 65536):
        return None
    return _normal_name(name), int(port_text) if port_text is not None else None


def _normal_name(name: str) -> str:
    name = name.strip().lower().removeprefix("[").removesuffix("]")
    address = _ip(name)
    return str(address) if address is not None else name


def _ip(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


def _is_loopback(name: str) -> bool:
    address = _ip(_normal_name(name))
    return address is not None and address.is_loopback


def _with_port(name: str, port: int) -> str:
    return f"[{name}]:{port}" if ":" in name else f"{name}:{port}"


class HostCheck:
    """ASGI layer: a request whose Host header names no address this sandbox serves is answered 421."""

    def __init__(self, app: Any, hosts: ServedHosts) -> None:
        self.app = app
        self.hosts = hosts

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            hosts = Headers(scope=scope).getlist("host")
            if len(hosts) != 1 or not self.hosts.allows(hosts[0]):
                shown = repr(hosts[0][:100]) if len(hosts) == 1 else f"{len(hosts)} Host headers"
                error = MisdirectedRequest(
                    f"Host {shown} is not an address this sandbox serves ({self.hosts.describe()})",
                    ["use the sandbox's URL as printed at start; a proxy, tunnel or DNS name needs "
                     "'raydog sandbox --allow-host NAME[:PORT]' (this check stops DNS-rebinding web pages)"])
                await error_response(error)(scope, receive, send)
                return
        await self.app(scope, receive, send)


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
