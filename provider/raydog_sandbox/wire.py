"""The SDK's wire format for the responses: JSON bodies and errors, request bodies, query
parameters and search slices.

Models are rendered with the SDK's own model classes and ``yellowdog_client.common.json.Json``,
so the JSON is exactly what the SDK reads and writes (``type`` discriminators, ISO-8601
times and durations, enums by name). Errors use the SDK's body ``{"errorType", "message", "detail"}``.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import typing
from collections.abc import Callable
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from yellowdog_client.common.json import Json
from yellowdog_client.model import CloudProvider, Slice

from .compute.templates import PROVIDER
from .errors import InvalidRequest, SandboxError

DEFAULT_SLICE_SIZE = 100
MAX_SLICE_SIZE = 1000
SDK_PROVIDER = CloudProvider[PROVIDER]

# A YellowDog route's handler: (request, JSON body or None) -> JSON-ready result, or None for an empty reply.
Handler = Callable[[Request, Any], Any]


def json_response(payload: Any, status_code: int = 200, headers: dict | None = None) -> Response:
    return Response(json.dumps(payload, separators=(",", ":")), status_code=status_code,
                    media_type="application/json", headers=headers)


def error_response(error: SandboxError) -> Response:
    return json_response({"errorType": error.error_type, "message": error.message, "detail": error.detail},
                         status_code=error.status_code)


def dumped(render: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A view for the models: the record rendered as an SDK model, then as its JSON."""
    return lambda record: Json.dump(render(record))


# ── requests ───────────────────────────────────────────────────────────────────


def path_param(request: Request, name: str) -> str:
    return request.path_params[name]


def bool_param(request: Request, name: str) -> bool:
    raw = request.query_params.get(name, "false").lower()
    if raw not in ("true", "false"):
        raise InvalidRequest(f"query parameter {name} must be true or false")
    return raw == "true"


async def read_json(request: Request) -> Any:
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


def require_object(body: Any) -> dict:
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    return body


def load(value: Any, cls: type, what: str) -> Any:
    """The SDK model of class cls from a JSON value; InvalidRequest saying what is wrong."""
    if value is None:
        raise InvalidRequest(f"{what} is required")
    try:
        return Json.load(value, cls)
    except Exception as error:  # noqa: BLE001 - cattrs raises many kinds; all mean a bad body
        raise InvalidRequest(f"{what} is not valid: {_describe_load_error(error)}") from None


def _describe_load_error(error: Exception) -> str:
    exceptions = getattr(error, "exceptions", None)
    if exceptions:
        return "; ".join(_describe_load_error(e) for e in exceptions)
    notes = getattr(error, "__notes__", None)
    return f"{error} ({'; '.join(notes)})" if notes else str(error)


# ── searches ───────────────────────────────────────────────────────────────────


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


def sliced(query: Any, render: Callable[[Any], Any]) -> Callable[[list], dict]:
    """A view for the models' searches: one page of the records found, each rendered."""
    return lambda found: slice_of(found, query, render)
