"""Fault injection for the sandbox's YellowDog API routes.

A fault spec is a comma-separated list of ``key=value`` items (an empty spec or ``none``
means no faults)::

    5xx=0.1,429=0.05,latency=0-300ms,drop=0.05,seed=42

``5xx=RATE``
    that share of requests is answered 500, 502, 503 or 504 *before* it is executed.
    500 carries an ``InternalServerException`` body; 502-504 a plain-text body, as a
    load balancer sends.
``429=RATE``
    that share is answered 429 (with ``Retry-After``) before it is executed.
    ``5xx`` + ``429`` must not exceed 1.
``drop=RATE``
    that share is executed and committed, then the connection is closed without a
    reply: the client sees a connection error although the change happened.
``latency=MIN-MAX`` or ``latency=VALUE``
    each request is delayed by a uniform random time in the range, in ``ms`` or ``s``
    (``latency=0-300ms``, ``latency=0.5s``). The delay is asynchronous: it never holds
    up other requests.
``seed=INT``
    seeds the random draws, so one client making the same requests sees the same
    faults. Every request draws the same number of random values whatever happens to it.
``retry_after=SECONDS``
    the ``Retry-After`` value of a 429 (default 1; 0 makes the SDK use its own backoff).
``methods=M+M``
    only requests with these HTTP methods are faulted, e.g. ``methods=POST+PUT``.
``routes=T+T``
    only requests whose route template is one of these are faulted, e.g.
    ``routes=GET /workerPools/{id}+GET /work/tasks/{id}`` (templates as /sandbox/v1/requests
    names them).

Faults apply to the YellowDog API routes only, never to ``/sandbox/v1/*``.
"""

from __future__ import annotations

import random
import re
import threading
from dataclasses import dataclass, field

_RATE_KEYS = {"5xx": "error_rate", "429": "throttle_rate", "drop": "drop_rate"}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(?:-(\d+(?:\.\d+)?))?(ms|s)$")
_METHODS = {"GET", "POST", "PUT", "DELETE"}
_SERVER_ERRORS = (500, 502, 503, 504)


class FaultSpecError(ValueError):
    """A fault spec that cannot be parsed; the message says which item and why."""


@dataclass(frozen=True)
class FaultSpec:
    """Parsed fault settings. All rates are in [0, 1]."""

    error_rate: float = 0.0
    throttle_rate: float = 0.0
    drop_rate: float = 0.0
    latency_min: float = 0.0  # seconds
    latency_max: float = 0.0
    seed: int | None = None
    retry_after: int = 1
    methods: frozenset[str] = field(default_factory=lambda: frozenset(_METHODS))
    routes: frozenset[str] | None = None  # None: every route

    def applies_to(self, method: str, route: str | None) -> bool:
        return method in self.methods and (self.routes is None or route in self.routes)

    @property
    def active(self) -> bool:
        return bool(self.error_rate or self.throttle_rate or self.drop_rate or self.latency_max)

    def describe(self) -> str:
        if not self.active:
            return "none"
        items = [f"5xx={self.error_rate:g}", f"429={self.throttle_rate:g}", f"drop={self.drop_rate:g}",
                 f"latency={self.latency_min * 1000:g}-{self.latency_max * 1000:g}ms",
                 f"retry_after={self.retry_after}"]
        if self.seed is not None:
            items.append(f"seed={self.seed}")
        if self.methods != _METHODS:
            items.append("methods=" + "+".join(sorted(self.methods)))
        if self.routes is not None:
            items.append("routes=" + "+".join(sorted(self.routes)))
        return ",".join(items)


def parse_faults(spec: str | None) -> FaultSpec:
    """Parse a fault spec (see the module docstring); raises FaultSpecError."""
    text = (spec or "").strip()
    if text.lower() in ("", "none", "off"):
        return FaultSpec()
    values: dict = {}
    for item in text.split(","):
        key, sep, value = item.strip().partition("=")
        key, value = key.strip().lower(), value.strip()
        if not sep or not value:
            raise FaultSpecError(f"fault item {item.strip()!r}: expected KEY=VALUE")
        if key in values or (key in _RATE_KEYS and _RATE_KEYS[key] in values):
            raise FaultSpecError(f"fault item {key!r} is given twice")
        if key in _RATE_KEYS:
            values[_RATE_KEYS[key]] = _parse_rate(key, value)
        elif key == "latency":
            values["latency_min"], values["latency_max"] = _parse_latency(value)
        elif key == "seed":
            values["seed"] = _parse_int(key, value)
        elif key == "retry_after":
            values["retry_after"] = _parse_int(key, value)
        elif key == "methods":
            methods = frozenset(m.strip().upper() for m in value.split("+"))
            if not methods <= _METHODS:
                raise FaultSpecError(f"fault item methods={value}: methods are {'+'.join(sorted(_METHODS))}")
            values["methods"] = methods
        elif key == "routes":
            routes = frozenset(" ".join(r.split()) for r in value.split("+") if r.strip())
            bad = [r for r in routes if r.split(" ")[0] not in _METHODS or not r.partition(" ")[2].startswith("/")]
            if bad:
                raise FaultSpecError(f"fault item routes={value}: each route is 'METHOD /path/{{template}}'")
            values["routes"] = routes
        else:
            raise FaultSpecError(
                f"unknown fault {key!r}; known: 5xx, 429, drop, latency, seed, retry_after, methods, routes")
    parsed = FaultSpec(**values)
    if parsed.error_rate + parsed.throttle_rate > 1.0:
        raise FaultSpecError("5xx + 429 rates must not exceed 1")
    return parsed


def _parse_rate(key: str, value: str) -> float:
    try:
        rate = float(value)
    except ValueError:
        raise FaultSpecError(f"fault {key}={value}: the rate must be a number between 0 and 1") from None
    if not 0.0 <= rate <= 1.0:
        raise FaultSpecError(f"fault {key}={value}: the rate must be between 0 and 1")
    return rate


def _parse_int(key: str, value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise FaultSpecError(f"fault {key}={value}: expected a whole number") from None
    if number < 0:
        raise FaultSpecError(f"fault {key}={value}: must not be negative")
    return number


def _parse_latency(value: str) -> tuple[float, float]:
    match = _DURATION.match(value.replace(" ", ""))
    if not match:
        raise FaultSpecError(f"fault latency={value}: expected e.g. 0-300ms, 50ms or 0.1-0.5s")
    scale = 0.001 if match.group(3) == "ms" else 1.0
    low = float(match.group(1)) * scale
    high = float(match.group(2)) * scale if match.group(2) is not None else low
    if high < low:
        raise FaultSpecError(f"fault latency={value}: the range must go from low to high")
    return low, high


@dataclass(frozen=True)
class FaultDecision:
    """What happens to one request."""

    status: int | None = None  # answer with this status before executing
    latency: float = 0.0  # seconds to wait before answering
    drop: bool = False  # execute, then close the connection without a reply
    retry_after: int = 1


NO_FAULT = FaultDecision()


class FaultInjector:
    """Draws a FaultDecision per request from a seeded RNG; thread-safe; spec changeable at runtime."""

    def __init__(self, spec: FaultSpec | None = None) -> None:
        self._lock = threading.Lock()
        self._spec = FaultSpec()
        self._rng = random.Random()
        self.configure(spec or FaultSpec())

    @property
    def spec(self) -> FaultSpec:
        return self._spec

    def configure(self, spec: FaultSpec) -> None:
        """Replace the spec; a seed in it restarts the random sequence."""
        with self._lock:
            self._spec = spec
            self._rng = random.Random(spec.seed)

    def decide(self, method: str, route: str | None = None) -> FaultDecision:
        with self._lock:
            spec = self._spec
            if not spec.active or not spec.applies_to(method, route):
                return NO_FAULT
            outcome, drop, latency, pick = (self._rng.random() for _ in range(4))
        status = None
        if outcome < spec.error_rate:
            status = _SERVER_ERRORS[int(pick * len(_SERVER_ERRORS))]
        elif outcome < spec.error_rate + spec.throttle_rate:
            status = 429
        delay = spec.latency_min + (spec.latency_max - spec.latency_min) * latency
        return FaultDecision(status=status, latency=delay, drop=status is None and drop < spec.drop_rate,
                             retry_after=spec.retry_after)
