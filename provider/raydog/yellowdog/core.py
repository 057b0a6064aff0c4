"""What every platform operation shares: the SDK client, error mapping, locks, logging.

``ClientCore`` is the base of ``YellowDogClient`` (client.py); the operation mixins in work.py,
pools.py and waits.py build on its ``_call``, which runs one SDK call and turns whatever
it raises into a ``PlatformError`` carrying the HTTP status, message and object id.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

from yellowdog_client import PlatformClient
from yellowdog_client.model import Slice, SliceReference

from .errors import NotFoundError, from_sdk_exception

if TYPE_CHECKING:
    from .updates import UpdateStreams

T = TypeVar("T")
log = logging.getLogger("raydog.yellowdog")

PAGE_SIZE = 1000  # the platform's largest slice


class _LastResponse(threading.local):
    """The HTTP status of this thread's last response (the SDK's typed errors omit it)."""

    status: int | None = None


_last_response = _LastResponse()


def record_response_status(response, *args, **kwargs) -> None:
    """A requests response hook: remember the status for this thread's error mapping."""
    _last_response.status = response.status_code


class KeyedLocks:
    """One re-entrant lock per key (a work requirement id), created on first use."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, threading.RLock] = {}

    @contextmanager
    def hold(self, key: str) -> Iterator[None]:
        with self._guard:
            lock = self._locks.setdefault(key, threading.RLock())
        with lock:
            yield


# Shared by every YellowDogClient in the process: two clients in one process must not race
# their own read-modify-write updates of one work requirement.
WORK_REQUIREMENT_LOCKS = KeyedLocks()


class ClientCore:
    """The SDK client and the call wrapper that the operations use."""

    def __init__(self, sdk: PlatformClient, api_url: str) -> None:
        self._sdk = sdk
        self.api_url = api_url
        self._wr_locks = WORK_REQUIREMENT_LOCKS
        # task id -> task group id of the tasks this client added (a task never changes
        # group), so a wait on them searches their group without reading a task first.
        self._task_groups: dict[str, str] = {}
        self._updates: UpdateStreams | None = None  # set by YellowDogClient.connect
        # work requirement id -> task groups waiting to be appended (see WorkOps.ensure_task_group)
        self._pending_guard = threading.Lock()
        self._pending_groups: dict[str, list] = {}
        # work requirement id -> task groups waiting to be dropped (see GroupEndOps.end_task_group)
        self._pending_drops: dict[str, list] = {}
        # work requirement id -> (monotonic time read, the requirement) for reads shared by
        # the pools created together (see WorkOps.recent_work_requirement).
        self._recent_wrs: dict[str, tuple[float, object]] = {}
        self._recent_guard = KeyedLocks()

    def _call(self, operation: str, object_id: str | None, call: Callable[[], T]) -> T:
        """Run one SDK call; anything it raises comes out as a PlatformError."""
        _last_response.status = None
        try:
            return call()
        except Exception as exc:  # the SDK raises requests, cattrs and its own exception types
            raise from_sdk_exception(exc, operation, object_id, status=_last_response.status) from exc

    def _get_or_none(self, operation: str, object_id: str, call: Callable[[], T]) -> T | None:
        """A read where 404 means "not there" rather than an error."""
        try:
            return self._call(operation, object_id, call)
        except NotFoundError:
            return None

    def _all_pages(self, operation: str, object_id: str | None,
                   load: Callable[[SliceReference], Slice[T]], page_size: int = PAGE_SIZE) -> Iterator[T]:
        """Every item of a sliced search, page by page (stops early if the caller does)."""
        slice_id: str | None = None
        seen: set[str] = set()
        while True:
            page = self._call(operation, object_id,
                              lambda: load(SliceReference(sliceId=slice_id, size=page_size)))
            yield from page.items or []
            slice_id = page.nextSliceId
            if not slice_id or slice_id in seen or not page.items:
                return
            seen.add(slice_id)

    @property
    def sdk(self) -> PlatformClient:
        """The SDK client itself, for callers that hand it on (RayDog's ``RayDogCluster.yd_client``)."""
        return self._sdk

    def close(self) -> None:
        """Close the SDK's connections."""
        self._sdk.close()
