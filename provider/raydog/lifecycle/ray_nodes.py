"""A pool's nodes as Ray sees them, through the head's GCS (raydog.ray_gcs): readiness (the
nodes have joined Ray), the choice of which nodes a shrink removes (idle ones first), and
Ray's own drain of the nodes before their tasks are ended.

YellowDog tasks map to Ray nodes by the node's private IP: every node has its own, and a
plain ``ray start`` registers it. Every wait here is bounded by the caller's deadline and
every GCS call by a few seconds, so an unreachable head never hangs an apply.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Callable, Iterable, Optional, Sequence

from raydog import settings
from raydog.ray_gcs import RayGcs, RayGcsError, RayNode
from raydog.yellowdog import PlatformError, TaskInfo

if TYPE_CHECKING:
    from tf.utils import Diagnostics

    from raydog.yellowdog import YellowDogClient

log = logging.getLogger("raydog.resources")

POLL_SECONDS = 1.0
PLAN_CALL_TIMEOUT = 3.0  # a plan asks Ray which nodes are idle; it must not wait long for an absent head


class RayNotReadyError(Exception):
    """Ray did not reach the awaited state in time, or the head's GCS could not be asked."""


def task_ips(client: "YellowDogClient", tasks: Iterable[TaskInfo], cr_id: Optional[str]) -> dict[str, str]:
    """Task id -> the private IP of the node it runs on, for the tasks placed on a node."""
    found = {}
    for task in tasks:
        ref = task.worker_id or task.node_id
        if ref:
            address = client.node_address(ref, cr_id)
            if address.private_ip:
                found[task.id] = address.private_ip
    return found


def _poll(what: str, probe: Callable[[], Optional[str]], timeout: float, stopping: threading.Event) -> None:
    """Call ``probe`` (None when done, else what is still awaited) until done; RayNotReadyError past ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        waiting = probe()
        if waiting is None:
            return
        if stopping.is_set():
            raise RayNotReadyError(f"interrupted while waiting until {what}")
        if time.monotonic() >= deadline:
            raise RayNotReadyError(f"timed out after {timeout:.0f}s waiting until {what}; {waiting}")
        stopping.wait(min(POLL_SECONDS, max(deadline - time.monotonic(), 0.0)))


def _alive_ips(gcs: RayGcs) -> tuple[set[str], Optional[str]]:
    try:
        return {n.ip for n in gcs.nodes() if n.alive}, None
    except RayGcsError as exc:
        return set(), str(exc)


def wait_until_joined(address: str, ips: Sequence[str], timeout: float, stopping: threading.Event) -> None:
    """Wait until a live Ray node has each of ``ips``, as the GCS at ``address`` reports."""
    with RayGcs(address) as gcs:
        def missing() -> Optional[str]:
            alive, error = _alive_ips(gcs)
            absent = sorted(set(ips) - alive)
            if not absent:
                return None
            return error or f"not yet in Ray: {', '.join(absent)}"
        _poll(f"{len(ips)} node(s) joined Ray at {address}", missing, timeout, stopping)


def wait_until_answering(addresses: Sequence[str], timeout: float, stopping: threading.Event) -> str:
    """Wait until the GCS at one of ``addresses`` answers with a live node; return that address."""
    answered: list[str] = []

    def silent() -> Optional[str]:
        errors = []
        for address in addresses:
            with RayGcs(address) as gcs:
                alive, error = _alive_ips(gcs)
            if alive:
                answered.append(address)
                return None
            errors.append(error or f"{address} lists no live node yet")
        return "; ".join(errors)
    _poll(f"the Ray GCS answers at {' or '.join(addresses)}", silent, timeout, stopping)
    return answered[0]


def head_ray_ready(diags: "Diagnostics", state: dict, deadline: float, stopping: threading.Event) -> None:
    """Wait until the new head's GCS answers (at its private IP, else its public IP), by ``deadline``
    (time.monotonic); an error on `readiness` past it."""
    addresses = [settings.gcs_address(ip) for ip in dict.fromkeys([state.get("private_ip"), state.get("public_ip")])
                 if ip]
    try:
        wait_until_answering(addresses, max(deadline - time.monotonic(), 1.0), stopping)
    except RayNotReadyError as exc:
        diags.add_error(
            "The head's Ray GCS did not answer",
            f'{exc}. readiness = "ray" waits, within timeouts.create, until the head\'s GCS answers; check the head\'s '
            'task output (ray start), that the provider reaches the head\'s address, or use readiness = "executing". '
            "The head is kept in state (tainted): the next apply replaces it.",
            path=["readiness"])


def idle_first(ordered: Sequence[str], ips: dict[str, str], nodes: Iterable[RayNode]) -> list[str]:
    """``ordered`` (task ids, oldest first) sorted so the first ones are the best to remove:
    tasks whose node is not (or no longer) in Ray, then idle nodes, then the least busy; newest first
    among equals, as a shrink without Ray removes the newest."""
    by_ip = {n.ip: n for n in nodes if n.alive}

    def cost(index: int) -> tuple[int, float, int]:
        node = by_ip.get(ips.get(ordered[index], ""))
        if node is None:
            return 0, 0.0, -index
        if node.busy == 0:
            return 1, 0.0, -index
        return 2, node.busy, -index
    return [ordered[i] for i in sorted(range(len(ordered)), key=cost)]


def kept_idle_first(client: "YellowDogClient", address: str, live: Sequence[TaskInfo], ordered: Sequence[str],
                    target: int, cr_id: Optional[str]) -> tuple[list[str], Optional[str]]:
    """The ``target`` task ids a shrink keeps, in their order, having removed idle nodes first;
    with a reason when Ray could not be asked (then the newest go, as before)."""
    try:  # Ray first: an unreachable head costs no platform reads
        with RayGcs(address, call_timeout=PLAN_CALL_TIMEOUT) as gcs:
            nodes = gcs.nodes()
        ips = task_ips(client, [t for t in live if t.id in set(ordered)], cr_id)
    except (PlatformError, RayGcsError) as exc:
        return list(ordered[:target]), str(exc)
    dropped = set(idle_first(ordered, ips, nodes)[:len(ordered) - target])
    return [i for i in ordered if i not in dropped], None


def drain(client: "YellowDogClient", address: str, tasks: Sequence[TaskInfo], cr_id: Optional[str],
          drain_timeout: float, stopping: threading.Event, reason: str) -> Optional[str]:
    """Ask Ray to drain the nodes running ``tasks`` and wait, up to ``drain_timeout`` seconds,
    until each has no work left (idle, or gone from Ray).

    Returns None when they drained, else why not (the head unreachable, a refusal, the deadline):
    the caller warns and ends the tasks anyway, as a removal must not depend on Ray's health."""
    if drain_timeout <= 0 or not tasks:
        return None
    deadline = time.monotonic() + drain_timeout
    try:
        with RayGcs(address) as gcs:
            alive = [n for n in gcs.nodes() if n.alive]  # Ray first: an unreachable head costs no platform reads
            ips = set(task_ips(client, tasks, cr_id).values()) if alive else set()
            targets = [n for n in alive if n.ip in ips]
            for node in targets:
                gcs.drain(node.node_id, drain_timeout, reason)
            log.info("draining %d Ray node(s) at %s: %s", len(targets), address, [n.ip for n in targets])

            def busy() -> Optional[str]:
                now = {n.node_id: n for n in gcs.nodes()}
                left = [f"{n.ip} ({now[n.node_id].busy:g} resources in use)" for n in targets
                        if n.node_id in now and now[n.node_id].alive and now[n.node_id].busy > 0]
                return f"still busy: {', '.join(left)}" if left else None
            _poll(f"{len(targets)} drained Ray node(s) have no work left", busy,
                  max(deadline - time.monotonic(), 0.0), stopping)
    except (PlatformError, RayGcsError, RayNotReadyError) as exc:
        return str(exc)
    return None
