"""Addresses one node learns from another at apply time: the head's for the workers, the
observability node's for the head and the workers.

The nodes of a cluster are created together (see docs/guides/cluster-startup.md): a worker
pool does not wait in Terraform's graph for the head, it provisions its nodes at once and
asks the platform for the head's address just before adding its tasks. Every pool of an
apply asks for the same address, so one provider process looks it up once: the first
caller polls, the others wait for its answer.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Callable

from raydog import names

if TYPE_CHECKING:
    from raydog.yellowdog import YellowDogClient


class PeerAddresses:
    """Private IPs of the nodes of (work requirement, pool name), found once per provider process."""

    def __init__(self) -> None:
        self._known: dict[tuple[str, str], str] = {}
        self._guard = threading.Lock()
        self._locks: dict[tuple[str, str], threading.Lock] = {}

    def private_ip(self, client: "YellowDogClient", wr_id: str, pool_name: str, timeout_seconds: float,
                   stopping: threading.Event) -> str:
        """The private IP of the node running the task of ``pool_name``'s group in ``wr_id``;
        waits (at most ``timeout_seconds``) until that node is known."""
        key = (wr_id, pool_name)
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._known:
                address = client.wait_for_group_node(
                    wr_id, pool_name, timeout_seconds, stop_event=stopping,
                    tag_matches=lambda tag: names.is_generation_of(tag, pool_name))  # <name>--2 on strict platforms
                self._known[key] = address.private_ip or ""
            return self._known[key]


def observability_environment(provider, client: "YellowDogClient", config) -> Callable[[str, float], dict[str, str]]:
    """OBSERVABILITY_HOST of a node whose config names the observability node by its name_suffix."""
    pool_name = names.pool_name(config.cluster_name, names.suffixed(names.OBSERVABILITY_SUFFIX,
                                                                    config.observability_name_suffix))

    def environment(wr_id: str, seconds: float) -> dict[str, str]:
        return {"OBSERVABILITY_HOST": provider.peer_addresses.private_ip(client, wr_id, pool_name, seconds,
                                                                         provider.stopping)}
    return environment


def head_environment(provider, client: "YellowDogClient", config) -> Callable[[str, float], dict[str, str]]:
    """RAY_HEAD_IP (and the deprecated RAY_HEAD_NODE_PRIVATE_IP) of a worker pool that names its head by
    head_name_suffix, plus OBSERVABILITY_HOST when it names the observability node."""
    observability = (observability_environment(provider, client, config)
                     if config.observability_name_suffix is not None else None)

    def environment(wr_id: str, seconds: float) -> dict[str, str]:
        if observability is None:
            found: dict[str, str] = {}
            ip = head_private_ip(provider, client, config, wr_id, seconds)
        else:
            # Both waits at once: each follows the platform's updates from the start, so the
            # head's node is noticed the moment it is placed, not at the next poll after the
            # observability node's address (both nodes come up after the same delay).
            waits = ThreadPoolExecutor(max_workers=1, thread_name_prefix="raydog-peer")
            try:
                observed = waits.submit(observability, wr_id, seconds)
                ip = head_private_ip(provider, client, config, wr_id, seconds)
                found = dict(observed.result())
            finally:
                waits.shutdown(wait=False, cancel_futures=True)
        return {**found, "RAY_HEAD_IP": ip, "RAY_HEAD_NODE_PRIVATE_IP": ip}
    return environment


def head_private_ip(provider, client: "YellowDogClient", config, wr_id: str, seconds: float) -> str:
    """The private IP of the head that ``config`` names by head_name_suffix ("" when its node has none)."""
    pool_name = names.pool_name(config.cluster_name, names.suffixed(names.HEAD_SUFFIX, config.head_name_suffix))
    return provider.peer_addresses.private_ip(client, wr_id, pool_name, seconds, provider.stopping)
