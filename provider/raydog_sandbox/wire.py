"""The SDK's wire format for the responses: JSON bodies and errors, request bodies, query
parameters and search slices.

Models are rendered with the SDK's own model classes and ``yellowdog_client.common.json.Json``,
so the JSON is exactly what the SDK reads and writes (``type`` discriminators, ISO-8601
times and durations, enums by name). Errors use the SDK's body ``{"errorType", "message", "detail"}``.
"""

from __future__ import annotations

import dataclasses
import json
import typing
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from yellowdog_client.common.json import Json
from yellowdog_client.model import CloudProvider, Slice

from .compute.templates import PROVIDER
from .errors import BodyTooLarge, InvalidRequest, SandboxError, UnsupportedEncoding

DEFAULT_SLICE_SIZE = 100
MAX_SLICE_SIZE = 1000
SDK_PROVIDER = CloudProvider[PROVIDER]

# Request bodies. The provider's largest request adds one task per node in a single POST, each
# task carrying its script (at most 1 MiB) and environment (at most 128 KiB): 64 MiB of JSON
# holds a 1 MiB script on about 50 nodes, or the default scripts on thousands. The SDK gzips
# work bodies over 2 KiB. Gzip cannot shrink data that does not compress (a script inlining
# an archive), so a gzipped body may be as large as sent as once decompressed; decompression
# stops at the limit whatever the ratio.
MAX_BODY_BYTES = 64 << 20
"""A body at most this large: a plain one as sent, a gzipped one once decompressed."""
MAX_COMPRESSED_BODY_BYTES = 64 << 20
"""A gzipped body (``Content-Encoding: gzip``) at most this large as sent."""
MAX_DRAINED_BYTES = 256 << 20
"""A refused body up to this size is read to its end and discarded, so that the client, still
sending, reads the 413 instead of a reset connection; beyond it the connection is closed."""

# A YellowDog route's handler: (request, JSON body or None) -> JSON-ready result, or None for an empty reply.
Handler = Callable[[Request, Any], Any]


def json_response(payload: Any, status_code: int = 200, headers: dict | None = None) -> Response:
    return Response(json.dumps(payload, separators=(",", ":")), status_code=status_code,
                    media_type="application/json", headers=headers)


def error_response(error: SandboxError) -> Response:
    return json_response({"errorType": error.error_type, "message": error.message, "detail": error.detail},
                         status_code=error.status_code)


# Update streams (``GET .../updates``, server-sent events): how often the models' lock count is
# looked at (the entity is read only when it moved), and the longest silence before a comment
# line keeps the connection alive (the SDK gives up on a stream after 90 s without a byte).
UPDATE_CHECK_SECONDS = 0.005
UPDATE_READ_SHARE = 4.0  # pause at least this many times as long as the last read took
UPDATE_KEEPALIVE_SECONDS = 20.0


def event_stream(read: Callable[[], Any], is_final: Callable[[Any], bool], changes: Callable[[], int]) -> Response:
    """An SSE response sending ``data: <JSON>`` each time ``read()`` (the entity, as JSON) changes,
    as YellowDog does: the complete entity per event, no event for the state at subscription,
    comments to keep a quiet stream alive, and the stream closed once the entity is finished
    (after the event that finished it) or gone. ``changes()`` is a count that moves whenever
    the entity may have changed (the models' lock count): the entity is read again only then."""
    from starlette.responses import StreamingResponse

    def look() -> tuple[Any, int]:
        """The entity, and the lock count it is as of: one more than before the read when
        only the read let the lock go; else the count before, so that the next check looks
        again (another holder let it go meanwhile and may have changed the entity)."""
        before = changes()
        current = read()
        return current, before + 1 if changes() == before + 1 else before

    async def events():
        import asyncio
        import time

        current, seen = look()
        last = json.dumps(current, separators=(",", ":"))
        quiet_since = time.monotonic()
        pause = UPDATE_CHECK_SECONDS
        while True:
            await asyncio.sleep(pause)
            if changes() == seen:
                if time.monotonic() - quiet_since >= UPDATE_KEEPALIVE_SECONDS:
                    quiet_since = time.monotonic()
                    yield ":\n\n"
                continue
            reading = time.monotonic()
            try:
                current, seen = look()
            except SandboxError:
                return  # the entity is gone
            # A large entity on a busy sandbox: at most a fifth of a CPU on reading it again.
            pause = max(UPDATE_CHECK_SECONDS, UPDATE_READ_SHARE * (time.monotonic() - reading))
            text = json.dumps(current, separators=(",", ":"))
            if text != last:
                last, quiet_since = text, time.monotonic()
                yield f"data: {text}\n\n"
                if is_final(current):
                    return

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


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


async def read_body(request: Request, limit: int = MAX_BODY_BYTES,
                    compressed_limit: int = MAX_COMPRESSED_BODY_BYTES) -> bytes:
    """The request body, decompressed; BodyTooLarge (413) before holding more than the limit.

    A Content-Length over the limit is refused before a byte of the body is read; a body
    without one is counted as it streams in. Decompression stops one byte past ``limit``
    (no zip bombs).
    """
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip"):
        raise UnsupportedEncoding(f"Content-Encoding {encoding[:40]!r} is not supported; send gzip or no encoding")
    gzipped = encoding == "gzip"
    wire_limit = compressed_limit if gzipped else limit
    what = "a gzipped request body" if gzipped else "a request body"
    declared = _content_length(request)
    if declared is not None and declared > wire_limit:
        await _drain(request, declared)
        raise _too_large(what, wire_limit, f"{declared} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > wire_limit:
                chunks.clear()
                await _drain(request, declared)
                raise _too_large(what, wire_limit, f"over {wire_limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        raise InvalidRequest("the client closed the connection before sending the whole body") from None
    raw = b"".join(chunks)
    return gunzip(raw, limit) if gzipped and raw else raw


def gunzip(data: bytes, limit: int) -> bytes:
    """Decompress gzip data (every member), holding at most ``limit`` + 1 bytes of output."""
    out = bytearray()
    try:
        while data:
            member = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
            out += member.decompress(data, limit + 1 - len(out))
            while member.unconsumed_tail and len(out) <= limit:
                out += member.decompress(member.unconsumed_tail, limit + 1 - len(out))
            if len(out) > limit:
                raise _too_large("a gzipped request body", limit, "more than that once decompressed")
            if not member.eof:
                raise InvalidRequest("the request body is not valid gzip: it ends early")
            data = member.unused_data
    except zlib.error:
        raise InvalidRequest("the request body is not valid gzip") from None
    return bytes(out)


def _content_length(request: Request) -> int | None:
    raw = request.headers.get("content-length")
    if raw is None:
        return None
    if not raw.strip().isdigit():
        raise InvalidRequest("Content-Length must be a whole number")
    return int(raw)


async def _drain(request: Request, declared: int | None) -> None:
    """Read and discard the rest of a refused body, up to MAX_DRAINED_BYTES (see there).

    A client that asked to be told first (``Expect: 100-continue``) has sent nothing yet.
    """
    if declared is not None and declared > MAX_DRAINED_BYTES:
        return
    if request.headers.get("expect", "").lower() == "100-continue":
        return
    drained = 0
    try:
        async for chunk in request.stream():
            drained += len(chunk)
            if drained > MAX_DRAINED_BYTES:
                return
    except ClientDisconnect:
        return


def _too_large(what: str, limit: int, got: str) -> BodyTooLarge:
    return BodyTooLarge(f"{what} may be at most {limit} bytes ({size_text(limit)}); this one is {got}",
                        ["send fewer or smaller items per request"])


def size_text(size: int) -> str:
    return f"{size >> 20} MiB" if size >= 1 << 20 else f"{size >> 10} KiB"


async def read_json(request: Request) -> Any:
    raw = await read_body(request)
    if not raw:
        return None
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
