"""SSH tunnels from this machine to a Ray cluster's head node.

``RayTunnels`` keeps the constructor, ``start_tunnels()``, ``stop_tunnels()`` and
``basic_port_forward()`` of RayDog's class of the same name (``yellowdog_ray.utils.
ray_ssh_tunnels``), so RayDog code only changes its import. It is built on paramiko and
opens ONE SSH connection to the head that carries every tunnel (RayDog opened one per
tunnel). Each tunnel listens on a local address and forwards every connection to
``remote host:port`` as seen from the head: ``localhost`` for the head's own ports (Ray
client 10001, dashboard 8265), or another node's private IP (Grafana 3000 and Prometheus
9090 on the observability node).

Local port 0 means "any free port"; ``local_addresses`` says which ports were bound.
Problems raise ``TunnelError`` with a message that says what to do.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import paramiko

from raydog.settings import (  # noqa: F401 (re-exported)
    GRAFANA_PORT,
    PROMETHEUS_PORT,
    RAY_CLIENT_PORT,
    RAY_DASHBOARD_PORT,
)

log = logging.getLogger("raydog.tunnels")

DEFAULT_SSH_USER = "yd-agent"  # the YellowDog agent's user on YellowDog images
CONNECT_TIMEOUT = 15.0
KEEPALIVE_SECONDS = 30
_BUFFER = 64 * 1024


class TunnelError(Exception):
    """A tunnel could not be opened; the message says why and what to check."""


@dataclass
class SSHTunnelSpec:
    """One tunnel: listen on ``local_bind_hostname:local_bind_ip_address`` here and forward to
    ``remote_bind_hostname:remote_bind_ip_address`` as seen from the head.

    The field names are RayDog's (its "ip_address" fields hold port numbers), so specs
    written for RayDog work unchanged. A local port of 0 binds any free port.
    """

    local_bind_hostname: str
    local_bind_ip_address: int
    remote_bind_hostname: str
    remote_bind_ip_address: int

    @property
    def local_port(self) -> int:
        return self.local_bind_ip_address

    @property
    def remote_port(self) -> int:
        return self.remote_bind_ip_address

    @property
    def remote(self) -> str:
        return f"{self.remote_bind_hostname}:{self.remote_bind_ip_address}"


class RayTunnels:
    """SSH port forwarding to a Ray head node (RayDog's ``RayTunnels``, on paramiko).

    Authenticate with ``private_key_file`` (and ``private_key_password`` if the key is
    encrypted) or ``password``; with neither, the SSH agent and the default keys in
    ``~/.ssh`` are tried. Host keys: a host whose key differs from the one recorded in
    ``known_hosts_file`` (default ``~/.ssh/known_hosts``) is always refused; an unknown host
    is accepted with a warning (as RayDog did) unless ``strict_host_key_checking``.
    """

    def __init__(
        self,
        ray_head_ip_address: str,
        ssh_user: str,
        password: str | None = None,
        private_key_file: str | None = None,
        private_key_password: str | None = None,
        ray_tunnel_specs: list[SSHTunnelSpec] | None = None,
        *,
        ssh_port: int = 22,
        known_hosts_file: str | None = None,
        strict_host_key_checking: bool = False,
        connect_timeout: float = CONNECT_TIMEOUT,
    ):
        self._ray_ip = ray_head_ip_address
        self._ssh_user = ssh_user
        self._password = password
        self._private_key_file = private_key_file
        self._private_key_password = private_key_password
        self._ray_tunnel_specs = (
            [self.basic_port_forward(RAY_CLIENT_PORT), self.basic_port_forward(RAY_DASHBOARD_PORT)]
            if ray_tunnel_specs is None
            else list(ray_tunnel_specs)
        )
        self._ssh_port = ssh_port
        self._known_hosts_file = known_hosts_file
        self._strict = strict_host_key_checking
        self._connect_timeout = connect_timeout
        self._client: paramiko.SSHClient | None = None
        self._forwarders: list[_Forwarder] = []

    @staticmethod
    def basic_port_forward(port: int) -> SSHTunnelSpec:
        """``localhost:port`` here to ``localhost:port`` on the head."""
        return SSHTunnelSpec("localhost", port, "localhost", port)

    @property
    def tunnel_specs(self) -> list[SSHTunnelSpec]:
        return list(self._ray_tunnel_specs)

    @property
    def destination(self) -> str:
        """``user@host:port`` of the SSH server the tunnels go through."""
        return f"{self._ssh_user}@{self._ray_ip}:{self._ssh_port}"

    @property
    def is_active(self) -> bool:
        """Whether the SSH connection that carries the tunnels is up."""
        transport = self._client.get_transport() if self._client else None
        return bool(transport and transport.is_active())

    @property
    def local_addresses(self) -> list[tuple[SSHTunnelSpec, str]]:
        """(spec, ``host:port`` actually listening here) of every open tunnel, in spec order."""
        return [(f.spec, f"{f.local_host}:{f.local_port}") for f in self._forwarders]

    def local_port(self, remote_port: int) -> int | None:
        """The local port of the (first) tunnel to ``remote_port``, if it is open."""
        return next((f.local_port for f in self._forwarders if f.spec.remote_port == remote_port), None)

    def start_tunnels(self) -> None:
        """Connect to the head and open every tunnel; on any failure nothing stays open."""
        if self._client is not None:
            raise TunnelError("the tunnels are already started; call stop_tunnels() first")
        self._client = self._connect()
        try:
            transport = self._client.get_transport()
            transport.set_keepalive(KEEPALIVE_SECONDS)
            for spec in self._ray_tunnel_specs:
                forwarder = _Forwarder(transport, spec)
                self._forwarders.append(forwarder)
                forwarder.start()
                log.info("tunnel %s:%d -> %s via %s", forwarder.local_host, forwarder.local_port, spec.remote,
                         self.destination)
        except BaseException:
            self.stop_tunnels()
            raise

    def stop_tunnels(self, ignore_errors: bool = True) -> None:
        """Close every local port and connection, then the SSH connection."""
        errors: list[Exception] = []
        for forwarder in self._forwarders:
            try:
                forwarder.stop()
            except OSError as exc:  # closing sockets: keep closing the rest
                errors.append(exc)
        self._forwarders = []
        if self._client is not None:
            try:
                self._client.close()
            except (OSError, paramiko.SSHException) as exc:
                errors.append(exc)
            self._client = None
        if errors and not ignore_errors:
            raise TunnelError(f"stopping the tunnels: {errors[0]}") from errors[0]

    def __enter__(self) -> Self:
        self.start_tunnels()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop_tunnels()

    # -- connecting -------------------------------------------------------------------------

    def _connect(self) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        known_hosts = Path(self._known_hosts_file).expanduser() if self._known_hosts_file else (
            Path.home() / ".ssh" / "known_hosts")
        if known_hosts.is_file():
            client.load_host_keys(str(known_hosts))
        client.set_missing_host_key_policy(paramiko.RejectPolicy() if self._strict else _WarnPolicy())
        pkey = self._load_key()
        try:
            client.connect(
                self._ray_ip,
                port=self._ssh_port,
                username=self._ssh_user,
                password=self._password,
                pkey=pkey,
                look_for_keys=pkey is None and self._password is None,
                allow_agent=pkey is None and self._password is None,
                timeout=self._connect_timeout,
                banner_timeout=self._connect_timeout,
                auth_timeout=self._connect_timeout,
            )
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise TunnelError(
                f"the host key of {self._ray_ip} does not match the one in {known_hosts}: refusing to connect. "
                "If the head node was replaced, remove its old entry (ssh-keygen -R HOST)."
            ) from exc
        except paramiko.AuthenticationException as exc:
            client.close()
            raise TunnelError(f"SSH authentication failed for {self.destination}: {self._credential_hint()}") from exc
        except paramiko.SSHException as exc:
            client.close()
            if self._strict and "not found in known_hosts" in str(exc):
                raise TunnelError(
                    f"{self._ray_ip} is not in {known_hosts} and strict host key checking is on; "
                    f"add its key first (ssh-keyscan -p {self._ssh_port} {self._ray_ip} >> {known_hosts})"
                ) from exc
            raise TunnelError(f"SSH connection to {self.destination} failed: {exc}") from exc
        except OSError as exc:  # refused, unreachable, timed out, name not resolved
            client.close()
            raise TunnelError(
                f"cannot reach the SSH server at {self._ray_ip}:{self._ssh_port}: {exc}. Check the head's public "
                "IP and that its security group allows SSH from this machine."
            ) from exc
        return client

    def _load_key(self) -> paramiko.PKey | None:
        if not self._private_key_file:
            return None
        path = Path(self._private_key_file).expanduser()
        try:
            password = self._private_key_password
            return paramiko.PKey.from_path(path, password=password.encode() if isinstance(password, str) else password)
        except (paramiko.PasswordRequiredException, TypeError) as exc:
            # paramiko raises cryptography's TypeError for OpenSSH-format keys without a password.
            if isinstance(exc, TypeError) and "password" not in str(exc).lower():
                raise
            raise TunnelError(f"the private key {path} is encrypted; give its password (private_key_password)") from exc
        except FileNotFoundError as exc:
            raise TunnelError(f"the private key file {path} does not exist") from exc
        except (paramiko.SSHException, ValueError) as exc:
            if self._private_key_password:
                raise TunnelError(f"cannot decrypt the private key {path}: is the password right? ({exc})") from exc
            raise TunnelError(f"cannot read the private key {path}: {exc}") from exc
        except OSError as exc:
            raise TunnelError(f"cannot read the private key {path}: {exc}") from exc

    def _credential_hint(self) -> str:
        if self._private_key_file:
            return (f"the server did not accept the private key {self._private_key_file}; check that its public key "
                    f"is in ~{self._ssh_user}/.ssh/authorized_keys on the head (the node's userdata usually "
                    "installs it) and that the user name is right")
        if self._password is not None:
            return "the password was not accepted"
        return "no key from the SSH agent or ~/.ssh was accepted; give a private key file"


class _WarnPolicy(paramiko.MissingHostKeyPolicy):
    """Accept a host not yet known (cluster nodes are new every time), with a log line."""

    def missing_host_key(self, client, hostname, key) -> None:
        log.warning("accepting the unknown host key of %s (%s %s)", hostname, key.get_name(), key.get_base64()[:16])


class _Forwarder:
    """One local listening socket whose connections are carried to the remote end over SSH."""

    def __init__(self, transport: paramiko.Transport, spec: SSHTunnelSpec) -> None:
        self.transport = transport
        self.spec = spec
        self.local_host = spec.local_bind_hostname
        self.local_port = spec.local_bind_ip_address
        self._listener: socket.socket | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, paramiko.Channel]] = []
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self._listener = _listen(self.spec.local_bind_hostname, self.spec.local_bind_ip_address)
        self.local_port = self._listener.getsockname()[1]
        thread = threading.Thread(target=self._accept_loop, name=f"tunnel-{self.local_port}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._listener is not None:
            # shutdown() wakes the thread blocked in accept(); close() alone may not on Linux.
            try:
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._listener.close()
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for local, channel in pairs:
            _close_quietly(local, channel)
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=5)

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                local, peer = self._listener.accept()
            except OSError:
                return  # the listener was closed by stop()
            thread = threading.Thread(target=self._serve, args=(local, peer), daemon=True,
                                      name=f"tunnel-{self.local_port}-conn")
            with self._lock:
                self._threads = [t for t in self._threads if t.is_alive()]
                self._threads.append(thread)
            thread.start()

    def _serve(self, local: socket.socket, peer: tuple) -> None:
        try:
            channel = self.transport.open_channel(
                "direct-tcpip", (self.spec.remote_bind_hostname, self.spec.remote_bind_ip_address), peer[:2],
                timeout=CONNECT_TIMEOUT,
            )
        except (paramiko.SSHException, OSError, EOFError) as exc:
            log.warning("tunnel %d: the head could not connect to %s: %s", self.local_port, self.spec.remote, exc)
            local.close()
            return
        with self._lock:
            if self._stopping.is_set():
                _close_quietly(local, channel)
                return
            self._pairs.append((local, channel))
        try:
            _pump(local, channel, self._stopping)
        finally:
            with self._lock:
                if (local, channel) in self._pairs:
                    self._pairs.remove((local, channel))
            _close_quietly(local, channel)


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (the first address ``host`` resolves to)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise TunnelError(f"cannot resolve the local bind address {host!r}: {exc}") from exc
    listener = socket.socket(family, kind, proto)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(address)
        listener.listen(64)
    except OSError as exc:
        listener.close()
        raise TunnelError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}. Is another tunnel or program using the port? "
            "Choose another local port (0 picks a free one)."
        ) from exc
    return listener


def _pump(local: socket.socket, channel: paramiko.Channel, stopping: threading.Event) -> None:
    """Copy bytes both ways until either side closes (or the tunnels stop)."""
    try:
        while not stopping.is_set():
            readable, _, _ = select.select([local, channel], [], [], 1.0)
            if local in readable:
                data = local.recv(_BUFFER)
                if not data:
                    return
                channel.sendall(data)
            if channel in readable:
                data = channel.recv(_BUFFER)
                if not data:
                    return
                local.sendall(data)
    except (OSError, ValueError, EOFError):
        return  # a side was reset or closed by stop()


def _close_quietly(local: socket.socket, channel: paramiko.Channel) -> None:
    for closable in (channel, local):
        with contextlib.suppress(OSError, EOFError):  # already closed
            closable.close()
