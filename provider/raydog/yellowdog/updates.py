"""Work requirement update streams: what wakes a wait early, never what it decides by.

YellowDog pushes the complete JSON of a work requirement each time it changes, as
server-sent events on ``GET /work/requirements/{id}/updates``; its task groups carry
their tasks' counts by status. A wait for a peer's node (waits.py ``wait_for_group_node``)
or for tasks to start (``wait_until_executing``) subscribes with a ``key`` of that JSON (the
counts of the groups it watches): when an event changes the key, the wait's next poll runs
at once instead of after its pause. So a head placed on its node after minutes of
provisioning is noticed within milliseconds, not within 5% of the time waited, and the
polls themselves stay as they were: the answer always comes
from a poll, and a platform, proxy or network that never delivers an event costs the one
stream request and nothing else.

One stream per work requirement per client, shared by its waits, opened when the first
pauses (a wait that its first poll answers opens none) and closed when the last leaves.
Streams go through ``http.client`` (the SDK's own stream reader spins at 100% CPU when the
platform closes a stream); not through a proxy: where the proxy variables name one for the
API, waits just poll.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit


log = logging.getLogger("raydog.yellowdog")

# The platform sends a comment line well within this on a quiet stream; silence beyond it
# means the connection is gone.
READ_TIMEOUT_SECONDS = 90.0
RECONNECT_SECONDS = 3.0  # after a stream broke (5xx, connection lost), before opening another
MAX_RECONNECTS = 5  # per stream; then its waits poll only
CHECK_SLICE_SECONDS = 0.1  # how often a woken-for-nothing wait looks at its stop event


class UpdateStreams:
    """The update streams of one client (one API URL and key)."""

    def __init__(self, api_url: str, key_id: str, key_secret: str, user_agent: str = "raydog") -> None:
        self._url = urlsplit(api_url.rstrip("/"))
        self._headers = {"Authorization": f"yd-key {key_id}:{key_secret}", "Accept": "text/event-stream",
                         "Cache-Control": "no-cache", "User-Agent": user_agent}
        self._guard = threading.Lock()
        self._streams: dict[str, _Stream] = {}
        self.available = self._url.scheme in ("http", "https") and not _proxied(api_url)

    @contextmanager
    def subscribe(self, wr_id: str, key: Callable[[dict], Hashable]) -> Iterator[Subscription]:
        """A subscription to the requirement's changes of ``key``, for the ``with`` block."""
        if not self.available:
            yield Subscription(None, key)
            return
        with self._guard:
            stream = self._streams.get(wr_id)
            if stream is None or stream.ended:
                stream = self._streams[wr_id] = _Stream(self, wr_id)
            stream.users += 1
        try:
            yield Subscription(stream, key)
        finally:
            with self._guard:
                stream.users -= 1
                if stream.users == 0:
                    stream.close()
                    if self._streams.get(wr_id) is stream:
                        del self._streams[wr_id]

    def _connect(self, wr_id: str):
        import http.client

        from .rest import tls_context

        port = self._url.port
        if self._url.scheme == "https":
            connection: http.client.HTTPConnection = http.client.HTTPSConnection(
                self._url.hostname, port, timeout=READ_TIMEOUT_SECONDS, context=tls_context(self._url.geturl()))
        else:
            connection = http.client.HTTPConnection(self._url.hostname, port, timeout=READ_TIMEOUT_SECONDS)
        connection.request("GET", f"{self._url.path}/work/requirements/{wr_id}/updates", headers=self._headers)
        return connection, connection.getresponse()


class Subscription:
    """One wait's view of a stream: ``wait`` returns early when its key changed, and
    ``woken`` says whether the last ``wait`` ended that way."""

    def __init__(self, stream: _Stream | None, key: Callable[[dict], Hashable]) -> None:
        self._stream = stream
        self._key = key
        self._seen_version = stream.version if stream is not None else 0
        self._seen_key: Hashable = None
        self.woken = False

    @property
    def streaming(self) -> bool:
        """Whether the stream is open: changes from now on wake ``wait``."""
        return self._stream is not None and self._stream.connected.is_set() and not self._stream.ended

    def start(self) -> None:
        """Open the stream now (``wait`` does, if it is not open yet)."""
        if self._stream is not None:
            self._stream.start()

    def wait(self, seconds: float, stop_event: threading.Event | None = None) -> bool:
        """Pause up to ``seconds``; True as soon as an event changed the key (or the stop event
        is set), False when the time ran out."""
        self.woken = self._wait(seconds, stop_event)
        return self.woken

    def _wait(self, seconds: float, stop_event: threading.Event | None) -> bool:
        deadline = time.monotonic() + seconds
        self.start()
        stream = self._stream
        while True:
            if stop_event is not None and stop_event.is_set():
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if stream is None or stream.ended:
                sleep_unless_stopped(remaining, stop_event)
                continue
            with stream.changed:
                if stream.version == self._seen_version:
                    stream.changed.wait(min(remaining, CHECK_SLICE_SECONDS))
                if stream.version == self._seen_version:
                    continue
                self._seen_version, latest = stream.version, stream.latest
            try:
                key = self._key(latest)
            except Exception:  # noqa: BLE001 - a surprising event wakes nobody; the polls go on
                continue
            if key != self._seen_key:
                self._seen_key = key
                return True


class _Stream:
    """One open ``.../updates`` stream, read on its own thread."""

    def __init__(self, owner: UpdateStreams, wr_id: str) -> None:
        self.owner, self.wr_id = owner, wr_id
        self.users = 0
        self.version = 0
        self.latest: dict = {}
        self.changed = threading.Condition()
        self.ended = False
        self.connected = threading.Event()  # the platform answered 200 (events from now on reach the waits)
        self._closing = threading.Event()
        self._connection = None
        self._started = False
        self._start_guard = threading.Lock()

    def start(self) -> None:
        """Open the stream (on its own thread), once."""
        with self._start_guard:
            if self._started or self._closing.is_set():
                return
            self._started = True
        threading.Thread(target=self._run, name=f"updates {self.wr_id}", daemon=True).start()

    def close(self) -> None:
        with self._start_guard:
            self._closing.set()
            if not self._started:
                self.ended = True
                return
        connection = self._connection
        if connection is not None and connection.sock is not None:
            try:
                import socket

                connection.sock.shutdown(socket.SHUT_RDWR)  # ends the blocked read at once
            except OSError:
                pass

    def _run(self) -> None:
        attempts = 0
        try:
            while not self._closing.is_set() and attempts <= MAX_RECONNECTS:
                try:
                    connection, response = self.owner._connect(self.wr_id)
                except OSError as error:
                    log.info("update stream of %s: %s", self.wr_id, error)
                else:
                    self._connection = connection
                    try:
                        if response.status != 200:
                            log.info("update stream of %s: HTTP %s; waits poll only", self.wr_id, response.status)
                            if response.status < 500 and response.status != 429:
                                return  # not offered here (or refused): no point asking again
                        else:
                            self.connected.set()
                            if self._read(response):
                                return  # the platform ended the stream: the requirement is finished
                    except OSError as error:
                        if not self._closing.is_set():
                            log.info("update stream of %s broke: %s", self.wr_id, error)
                    finally:
                        connection.close()
                attempts += 1
                self._closing.wait(RECONNECT_SECONDS)
        finally:
            self.ended = True
            with self.changed:
                self.changed.notify_all()

    def _read(self, response) -> bool:
        """Read events until the stream ends (True) or closing (False)."""
        data: list[str] = []
        while not self._closing.is_set():
            raw = response.readline()
            if not raw:
                return True
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
            elif not line and data:
                self._publish("\n".join(data))
                data = []
        return False

    def _publish(self, text: str) -> None:
        try:
            payload: Any = json.loads(text)
        except ValueError:
            return
        if isinstance(payload, dict):
            with self.changed:
                self.latest = payload
                self.version += 1
                self.changed.notify_all()


def group_counts(payload: dict, wanted: Callable[[dict], bool]) -> tuple:
    """The id, status and task counts of the task groups of a work requirement's JSON that
    ``wanted`` accepts: what a wait on those groups' tasks watches."""
    return tuple(
        (group.get("id"), group.get("status"),
         tuple(sorted(((group.get("taskSummary") or {}).get("statusCounts") or {}).items())))
        for group in payload.get("taskGroups") or [] if wanted(group))


def _proxied(api_url: str) -> bool:
    import urllib.request

    host = urlsplit(api_url).hostname or ""
    proxies = urllib.request.getproxies()
    scheme = urlsplit(api_url).scheme
    return bool(proxies.get(scheme)) and not urllib.request.proxy_bypass(host)


def sleep_unless_stopped(seconds: float, stop_event: threading.Event | None) -> None:
    """Sleep ``seconds``, or less if ``stop_event`` is set meanwhile (waits.py pauses with it too)."""
    if stop_event is None:
        time.sleep(seconds)
    else:
        stop_event.wait(seconds)
