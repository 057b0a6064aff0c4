"""``/sandbox/v1``: what tests and operators on this machine ask of the sandbox.

Reads (GET) need no API key; every route that changes something (any other method) needs
one, like the YellowDog API, so that a web page's cross-origin POST (which cannot carry an
Authorization header without the CORS preflight the sandbox never grants) changes nothing.
They are never faulted and are not counted. They read the model's state, the request
counts and the fault spec, and act out of band: kill a node, terminate a pool, abort a
task, cancel a work requirement.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .backend import SandboxBackend
from .errors import InvalidRequest, SandboxError
from .faults import FaultInjector, FaultSpecError, parse_faults
from .nodes.runtime import NodeRuntime
from .wire import error_response, json_response, path_param, read_body

MAX_FAULT_SPEC_BYTES = 64 << 10


class RequestCounter:
    """Requests received per 'METHOD /route/{template}' (YellowDog routes only), and when.

    ``timeline`` holds the first ``TIMELINE_MAX`` requests since the last reset as
    [seconds since the reset, route] (epoch seconds of the reset in ``reset_at``), so a
    benchmark can tell when the first and last of some request arrived.
    """

    TIMELINE_MAX = 20_000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._timeline: list[tuple[float, str]] = []
        self._reset_at = time.time()
        self._reset_clock = time.monotonic()

    def count(self, route: str) -> None:
        with self._lock:
            self._counts[route] += 1
            if len(self._timeline) < self.TIMELINE_MAX:
                self._timeline.append((round(time.monotonic() - self._reset_clock, 4), route))

    def snapshot(self) -> dict:
        with self._lock:
            return {"total": sum(self._counts.values()), "routes": dict(sorted(self._counts.items())),
                    "reset_at": self._reset_at, "timeline": [list(entry) for entry in self._timeline]}

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()
            self._timeline.clear()
            self._reset_at = time.time()
            self._reset_clock = time.monotonic()


def sandbox_routes(backend: SandboxBackend, runtime: NodeRuntime, faults: FaultInjector,
                   requests: RequestCounter, check_key: Callable[[str | None], None]) -> list[Route]:
    """The /sandbox/v1 routes over one sandbox's parts; ``check_key`` raises NotAuthorised for a bad header."""

    def sandbox(method: str, path: str, handler: Callable[[Request], Awaitable[Any] | Any]) -> Route:
        async def endpoint(request: Request) -> Response:
            try:
                if method != "GET":
                    check_key(request.headers.get("authorization"))
                result = handler(request)
                if asyncio.iscoroutine(result):
                    result = await result
                return json_response(result)
            except SandboxError as error:
                return error_response(error)
        return Route("/sandbox/v1" + path, endpoint, methods=[method])

    async def set_faults(request: Request) -> dict:
        text = (await read_body(request, MAX_FAULT_SPEC_BYTES, MAX_FAULT_SPEC_BYTES)).decode("utf-8", "replace").strip()
        if text.startswith("{"):
            try:
                text = str(json.loads(text).get("spec") or "")
            except (ValueError, AttributeError):
                raise InvalidRequest('the body must be a fault spec, or {"spec": "..."}') from None
        try:
            spec = parse_faults(text)
        except FaultSpecError as error:
            raise InvalidRequest(str(error)) from None
        faults.configure(spec)
        return {"faults": spec.describe()}

    def reset_requests(request: Request) -> dict:
        requests.reset()
        return requests.snapshot()

    def task_output(request: Request) -> dict:
        task = backend.work.get_task(path_param(request, "id"))
        output = runtime.task_output(task.id)
        return {"taskId": task.id, "output": output if output is not None else task.output_tail or None}

    def status_of(record: Any) -> dict:
        return {"id": record.id, "status": record.status.name}

    return [
        sandbox("GET", "/health", lambda request: {"status": "ok"}),
        sandbox("GET", "/state", lambda request: backend.snapshot()),
        sandbox("GET", "/requests", lambda request: requests.snapshot()),
        sandbox("POST", "/requests/reset", reset_requests),
        sandbox("GET", "/faults", lambda request: {"faults": faults.spec.describe()}),
        sandbox("PUT", "/faults", set_faults),
        sandbox("GET", "/templates", lambda request: {"templates": [t.to_json() for t in backend.catalogue.all()]}),
        sandbox("POST", "/nodes/{id}/kill", lambda request: status_of(backend.kill_node(path_param(request, "id")))),
        sandbox("POST", "/workerPools/{id}/terminate",
                lambda request: status_of(backend.terminate_pool(path_param(request, "id")))),
        sandbox("POST", "/tasks/{id}/abort", lambda request: status_of(backend.abort_task(path_param(request, "id")))),
        sandbox("POST", "/workRequirements/{id}/cancel",
                lambda request: status_of(backend.cancel_work_requirement(path_param(request, "id")))),
        sandbox("GET", "/tasks/{id}/output", task_output),
    ]
