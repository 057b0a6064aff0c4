"""What the sandbox's service models share: one lock, one id mint, the scheduler, the naming rule.

The models of ``work/``, ``pools/`` and ``compute/`` are one state machine split by
service; ``backend.SandboxBackend`` composes them around one ``ModelCore``. Every entry
point of a model (an API call, a timer, a runtime callback) takes ``ModelCore.lock``
(re-entrant); the methods the models call on each other expect it held. Nothing outside
the models takes it. Runtime calls are never made under the lock: the models ask the
scheduler (``Scheduling``), which queues them, so a runtime may call back into the models
from any thread.

A model method that answers the HTTP layer takes a ``view``: a function of the record that
the model calls before it lets go of the lock, so that the reply shows exactly the state
the call left (the responses pass their renderers; other callers get the record itself).
"""

from __future__ import annotations

import itertools
import re
import secrets
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from .errors import InvalidRequest
from .nodes.runtime import NodeSpec, TaskRun
from .strictness import Strictness

T = TypeVar("T")
NAME_PATTERN = re.compile(r"[a-z](?:[a-z0-9_-]{0,58}[a-z0-9])?")  # matched in full: no trailing newline


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_is(value: T) -> T:
    """The default view: the record itself."""
    return value


def check_name(field_name: str, value: Any, required: bool = True) -> None:
    """Raise InvalidRequest unless value follows YellowDog's naming rule."""
    if value is None:
        if required:
            raise InvalidRequest(f"{field_name} is required")
        return
    if not isinstance(value, str) or not NAME_PATTERN.fullmatch(value):
        raise InvalidRequest(
            f"{field_name} {value!r} is not valid: use 1 to 60 lower-case letters, digits, '-' or '_', "
            "starting with a letter and ending with a letter or digit")


class Scheduling(Protocol):
    """What the models ask of time and machines (``scheduler.Scheduler`` does it)."""

    def later(self, delay: float, fn: Callable[..., Any], *args: Any) -> None:
        """Call fn(*args) after delay seconds, on the clock's thread."""

    def allocate_soon(self) -> None:
        """Run one allocation pass soon."""

    def boot_node(self, spec: NodeSpec) -> None:
        """Start the node on the runtime; the pools model hears back."""

    def run_task(self, run: TaskRun, attempt: int) -> None:
        """Start the task on the runtime; the work model hears back when it exits."""

    def abort_task(self, node_id: str, task_id: str) -> None:
        """Ask the runtime to end the task."""

    def stop_node(self, node_id: str) -> None:
        """Ask the runtime to end every process of the node; the pools model hears back."""


class CountingLock:
    """The models' lock (reentrant), counting how often a holder let it go (outermost releases):
    an update stream looks at its entity again only after the count moved, since nothing
    changes a model without the lock."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._held = threading.local()
        self.releases = 0

    def __enter__(self) -> "CountingLock":
        self._lock.acquire()
        self._held.depth = getattr(self._held, "depth", 0) + 1
        return self

    def __exit__(self, *exc: object) -> None:
        self._held.depth -= 1
        if self._held.depth == 0:
            self.releases += 1  # still held: one holder at a time
        self._lock.release()


class ModelCore:
    """The lock, the id mint and the scheduler that every service model of one sandbox shares."""

    def __init__(self, strictness: Strictness | None = None) -> None:
        self.lock = CountingLock()
        self.strictness = strictness or Strictness()
        self.scheduler: Scheduling | None = None
        self.id_hex = secrets.token_hex(3).upper()
        self._seq = itertools.count(1)

    def new_id(self, kind: str, suffix: str | None = None) -> str:
        """A ydid: ``ydid:<kind>:<hex>:<suffix or a new uuid>``."""
        return f"ydid:{kind}:{self.id_hex}:{suffix or uuid.uuid4()}"

    def next_seq(self) -> int:
        """The creation order of every record (the createdTime sort key)."""
        return next(self._seq)

    def sched(self) -> Scheduling:
        if self.scheduler is None:
            raise RuntimeError("the sandbox's models have no scheduler attached")
        return self.scheduler
