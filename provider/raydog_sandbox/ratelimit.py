"""``--rate-limit N/s``: a per-key request rate limit on the YellowDog routes.

Each application key (the ``ID`` of ``Authorization: yd-key ID:SECRET``; the client address
when there is none) has a token bucket of N tokens refilled at N per second. A request that
finds the bucket empty is answered 429 with ``Retry-After`` (whole seconds, at least 1)
before anything is executed, as an API gateway would; the SDK waits that long and retries
(at most three times). ``/sandbox/v1`` is never limited.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


def parse_rate(spec: str | float | None) -> float | None:
    """``"5/s"``, ``"5"`` or 5.0 -> 5.0 requests per second; None or "" -> no limit."""
    if spec is None or spec == "":
        return None
    if isinstance(spec, (int, float)):
        rate = float(spec)
    else:
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(?:/\s*s)?\s*", spec)
        if match is None:
            raise ValueError(f"--rate-limit {spec!r}: give requests per second per key, e.g. 5/s")
        rate = float(match.group(1))
    if not rate > 0:
        raise ValueError(f"--rate-limit must be positive (got {spec!r})")
    return rate


class RateLimiter:
    """Token buckets per key; ``take(key)`` returns 0 when allowed, else the seconds to wait."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.burst = max(rate, 1.0)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate


def _key(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            credentials = value.decode("latin-1").split(" ", 1)[-1]
            return "key:" + credentials.split(":", 1)[0]
    client = scope.get("client") or ("?", 0)
    return f"client:{client[0]}"


def rate_limited(app: ASGIApp, limiter: RateLimiter) -> ASGIApp:
    """``app`` behind the limiter (YellowDog routes only)."""

    async def limited(scope: Scope, receive, send) -> None:
        if scope["type"] != "http" or scope.get("path", "").startswith("/sandbox/"):
            await app(scope, receive, send)
            return
        wait = limiter.take(_key(scope))
        if wait <= 0:
            await app(scope, receive, send)
            return
        body = json.dumps({"errorType": "TooManyRequestsException",
                           "message": f"rate limit of {limiter.rate:g} requests per second per key exceeded",
                           "detail": []}).encode()
        await send({"type": "http.response.start", "status": 429,
                    "headers": [(b"content-type", b"application/json"), (b"retry-after", str(max(1, math.ceil(wait))).encode()),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    return limited
