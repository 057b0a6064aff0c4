"""Exec-mode networking: one bridge per sandbox, one network namespace per node.

Each sandbox that can (root, ``ip`` from iproute2) creates a bridge ``rdsb<N>`` on the
host holding ``198.18.<N>.1/24`` (private side) and ``198.19.<N>.1/24`` (public side),
N being the first free index. 198.18.0.0/15 is reserved for network benchmarks
(RFC 2544): no real network uses it, so nothing of the host's collides. A node gets
its own network namespace (``unshare --net``) and one veth pair: the host end joins
the bridge, the node end is the node's ``eth0`` with the node's private address
``198.18.<N>.<k>`` and public address ``198.19.<N>.<k>``, and a default route *on the
link* (no gateway) with the private address as source. So

- a plain ``ray start`` finds the node's private IP (Ray reads the source address of a
  route towards 8.8.8.8) and every node has its own ports (6379, 8265, 52365 ... each);
- the host reaches every node's private and public address through the bridge, and
  nodes reach each other;
- nothing is routed beyond: the node's packets for other addresses are addressed to
  the link (ARP for them goes unanswered), never to the host as a router, and the
  host gets no route but the bridge's two /24s.

The bridge carries ``raydog-sandbox pid <pid>`` as its alias; a sandbox that finds a
bridge whose owner is gone (killed with -9) deletes and reuses it. Node ends of the veth
pairs vanish with their namespaces, taking the host ends with them; ``close()`` deletes
the bridge.

Where this cannot be done (not root, no ``ip``, no bridge support), ``probe_network``
says why and exec mode falls back to nodes sharing the host's network (see
``exec_runtime``).
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass

log = logging.getLogger(__name__)

PRIVATE_PREFIX = "198.18"
PUBLIC_PREFIX = "198.19"
BRIDGE_PREFIX = "rdsb"
ALIAS_PREFIX = "raydog-sandbox pid "
# Host .1 is the bridge; nodes take .2 .. .254.
NODE_ADDRESSES = 253
MINIMAL_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class NetworkError(RuntimeError):
    """The sandbox bridge or a node's link could not be set up."""


@dataclass(frozen=True)
class AddressPlan:
    """The node addresses a runtime hands out: ``addresses(i)`` for ``0 <= i < count``."""

    private_prefix: str
    public_prefix: str
    count: int
    first: int = 2

    def addresses(self, index: int) -> tuple[str, str]:
        host = self.first + index
        if self.count <= 254:
            return f"{self.private_prefix}.{host}", f"{self.public_prefix}.{host}"
        third, fourth = 1 + index // 254, 1 + index % 254
        return f"{self.private_prefix}.{third}.{fourth}", f"{self.public_prefix}.{third}.{fourth}"


# Nodes sharing the host's network: loopback addresses, as before namespaces.
LOOPBACK_PLAN = AddressPlan("127.0", "127.1", 255 * 254)


def _ip(*args: str, namespace_pid: int | None = None, stdin: str | None = None) -> subprocess.CompletedProcess:
    command = ["ip", *args]
    if namespace_pid is not None:
        command = ["nsenter", f"--net=/proc/{namespace_pid}/ns/net", *command]
    return subprocess.run(command, input=stdin, capture_output=True, text=True, check=False, timeout=30,
                          env={"PATH": MINIMAL_PATH, "LANG": "C.UTF-8"})


def probe_network() -> str | None:
    """None when per-node namespaces with a bridge can be made here, else why not."""
    if os.geteuid() != 0:
        return "exec-mode nodes get their own network only when the sandbox runs as root"
    for tool in ("ip", "nsenter"):
        if shutil.which(tool, path=MINIMAL_PATH) is None:
            return f"exec-mode nodes get their own network only with the {tool} command (iproute2/util-linux)"
    return None


def _owner_alive(alias: str) -> bool:
    if not alias.startswith(ALIAS_PREFIX):
        return True  # not ours to judge
    try:
        os.kill(int(alias[len(ALIAS_PREFIX):]), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


class SandboxNetwork:
    """The sandbox's bridge, and the veth pair of each node."""

    def __init__(self) -> None:
        self.index = self._create_bridge()
        self.bridge = f"{BRIDGE_PREFIX}{self.index}"
        self.plan = AddressPlan(f"{PRIVATE_PREFIX}.{self.index}", f"{PUBLIC_PREFIX}.{self.index}", NODE_ADDRESSES)
        # Host ends are numbered, never named for an address: a node stopping late must not
        # take the link of a new node that got its address.
        self._links = itertools.count(1)

    def _create_bridge(self) -> int:
        last = ""
        for index in range(256):
            name = f"{BRIDGE_PREFIX}{index}"
            created = _ip("link", "add", name, "type", "bridge")
            if created.returncode != 0:
                last = created.stderr.strip()
                if "exists" in last and self._reclaim(name):
                    created = _ip("link", "add", name, "type", "bridge")
                if created.returncode != 0:
                    continue
            try:
                self._configure_bridge(name, index)
            except NetworkError:
                _ip("link", "del", name)
                raise
            return index
        raise NetworkError(f"no free sandbox bridge {BRIDGE_PREFIX}0..255 ({last})")

    @staticmethod
    def _reclaim(name: str) -> bool:
        """Delete a bridge a dead sandbox left behind."""
        shown = _ip("-o", "link", "show", name)
        alias = shown.stdout.split(" alias ", 1)[1].strip() if " alias " in shown.stdout else ""
        if not alias or _owner_alive(alias):
            return False
        log.warning("deleting bridge %s left by a sandbox that is gone (%s)", name, alias)
        return _ip("link", "del", name).returncode == 0

    @staticmethod
    def _configure_bridge(name: str, index: int) -> None:
        commands = (
            f"link set {name} alias '{ALIAS_PREFIX}{os.getpid()}'\n"
            f"addr add {PRIVATE_PREFIX}.{index}.1/24 dev {name}\n"
            f"addr add {PUBLIC_PREFIX}.{index}.1/24 dev {name}\n"
            f"link set {name} up\n"
        )
        result = _ip("-batch", "-", stdin=commands)
        if result.returncode != 0:
            raise NetworkError(f"cannot configure bridge {name}: {result.stderr.strip()}")

    def attach(self, namespace_pid: int, private_ip: str, public_ip: str) -> str:
        """Give the node whose network namespace ``namespace_pid`` holds its link and addresses.

        Returns the name of the link's host end (for ``detach``)."""
        host_end = f"{self.bridge}v{next(self._links) % 10**6}"
        created = _ip("link", "add", host_end, "type", "veth", "peer", "name", "eth0", "netns", str(namespace_pid))
        if created.returncode != 0:
            raise NetworkError(f"cannot create the node's link {host_end}: {created.stderr.strip()}")
        joined = _ip("-batch", "-", stdin=f"link set {host_end} master {self.bridge}\nlink set {host_end} up\n")
        if joined.returncode != 0:
            raise NetworkError(f"cannot put {host_end} on {self.bridge}: {joined.stderr.strip()}")
        addresses = dict.fromkeys((private_ip, public_ip))  # one when a test gives both the same
        inside = "link set lo up\n" + "".join(f"addr add {ip}/24 dev eth0\n" for ip in addresses) + (
            f"link set eth0 up\nroute add default dev eth0 src {private_ip}\n")
        configured = _ip("-batch", "-", namespace_pid=namespace_pid, stdin=inside)
        if configured.returncode != 0:
            raise NetworkError(f"cannot configure the node's eth0 ({private_ip}): {configured.stderr.strip()}")
        return host_end

    def detach(self, host_end: str) -> None:
        """Remove a node's link if its namespace has not taken it away already."""
        _ip("link", "del", host_end)

    def close(self) -> None:
        result = _ip("link", "del", self.bridge)
        if result.returncode != 0 and "Cannot find" not in result.stderr:
            log.warning("cannot delete bridge %s: %s", self.bridge, result.stderr.strip())
