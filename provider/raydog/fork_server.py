"""The fork server: a warm copy of the provider that launches fork from (see raydog.launcher).

It loads what a launch needs (the framework, protobuf, gRPC, the provider's modules), binds
its socket, and then for each launch that connects forks a child. The child takes over the
launch's stdin, stdout and stderr, environment, directory and arguments and runs
``raydog.plugin``'s server as a fresh launch would. Right after binding, the server forks a
warmer that also loads the YellowDog SDK, and hands the socket to it when ready
(``Server``). The command's third forked launch (the apply's) waits for it, so the apply's
first request does not wait for the SDK's import, and so does the second (the plan's) where
the local state holds resources the plan refreshes. Between launches the server renders the
node scripts and removes what killed fork servers left. The children share a private
directory (``command_state``).

The server is single-threaded (a fork with other threads running could copy a held lock),
tells each launcher its child's pid and then the child's wait status, and keeps no state
of a child beyond that. It exits when its Terraform process and every child have exited,
or after ``idle`` seconds with no child and no launch.
"""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import socket
import struct
import sys
import threading
from typing import Callable, NamedTuple, Optional

from raydog import launcher

MAX_REQUEST_BYTES = 4 << 20  # an environment and arguments; larger is refused
# A fork server's files whose lock nobody has held for this long are a killed server's
# (SIGKILL, the OOM killer): removed by the next fork server of the user (remove_leftovers).
LEFTOVER_AGE_SECONDS = 60.0
# Launches forked before the warmer is ready; later ones wait for it. In `terraform apply` the
# first two forks are the validation and the plan, which a plan of new resources serves
# without the SDK; the third is the apply, whose first request needs it. A plan that
# refreshes resources reads them with the SDK: where the working directory's local state
# holds resources, the plan's fork (the second) waits too (REFRESHING_FORKS_BEFORE_WAITING).
FORKS_BEFORE_WAITING = 2
REFRESHING_FORKS_BEFORE_WAITING = 1
STATE_READ_BYTES = 1 << 20  # read in chunks of this size, looking for a managed resource
# The provider's packages a create, read or delete uses: loaded by the warmer.
WARMED_PACKAGES = ("raydog.yellowdog", "raydog.lifecycle", "raydog.resources", "raydog.config",
                   "raydog.data_sources", "raydog.node_scripts")


def serve_forever(argv: list, serve: Callable[[], None]) -> int:
    """``raydog.plugin FLAG terraform_pid socket lock``: the fork server's life; its exit code.
    Each child runs ``serve`` (raydog.plugin's server), which must end the process."""
    import fcntl

    terraform, socket_path, lock_path = int(argv[0]), argv[1], argv[2]
    lock = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return 0  # another one is starting
    try:
        watched = os.pidfd_open(terraform)
    except OSError:
        return 0  # that Terraform is already gone
    # Stopped (SIGTERM): leave through run's cleanup, which removes the socket and the lock.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    warm_provider()
    if threading.active_count() != 1:
        return 0  # never fork with a second thread running
    return Server(socket_path, lock_path, lock, watched, serve).run()


def warm_provider() -> None:
    """Import what every launch imports, as the launch itself would (handshake modules first)."""
    from raydog import go_plugin

    go_plugin.defer_imports()
    import grpc  # noqa: F401 - the server's

    from raydog import tfcompat  # noqa: F401
    from raydog.provider import RaydogProvider

    provider = RaydogProvider()
    for kind in (*provider.get_resources(), *provider.get_data_sources()):
        kind.get_schema()
    import raydog.lifecycle.planning  # noqa: F401 - every plan
    import raydog.yellowdog.rest  # noqa: F401


def between_launches() -> list:
    """What the server does after it binds, one step at a time while no launch waits: the
    built-in node scripts rendered (Jinja's import and three renders, ~45 ms), which every
    plan of a node resource needs, so the plan's launch does not render them itself."""
    from raydog.lifecycle import scripts

    return [lambda template=template: scripts.default_script(template) for template in scripts.NODE_DEFAULT_TEMPLATES]


def local_state_has_resources(cwd: str, environ: dict) -> bool:
    """Whether Terraform's local state in ``cwd`` (of the workspace ``environ`` selects)
    holds a managed resource, which the command's plan then refreshes. False when the
    state is elsewhere (a backend is configured: ``.terraform/terraform.tfstate``), missing
    or unreadable: the fork server then does what it does for a plan of new resources."""
    terraform_dir = os.path.join(cwd, ".terraform")
    if os.path.exists(os.path.join(terraform_dir, "terraform.tfstate")):
        return False
    workspace = environ.get("TF_WORKSPACE")
    if not workspace:
        try:
            with open(os.path.join(terraform_dir, "environment")) as file:
                workspace = file.read().strip()
        except OSError:
            workspace = ""
    path = (os.path.join(cwd, "terraform.tfstate") if workspace in ("", "default")
            else os.path.join(cwd, "terraform.tfstate.d", workspace, "terraform.tfstate"))
    marker, tail = b'"mode": "managed"', b""
    try:
        with open(path, "rb") as file:
            while chunk := file.read(STATE_READ_BYTES):
                if marker in tail + chunk:
                    return True
                tail = chunk[-len(marker):]
    except OSError:
        pass
    return False


def remove_leftovers(directory: str, own_lock: str, age: float = LEFTOVER_AGE_SECONDS) -> None:
    """Remove what killed fork servers left in ``directory``: the socket, the lock and the
    command's directory of every key whose lock no process holds and was made ``age``
    seconds ago or more (a server that is starting takes its lock well within that)."""
    import fcntl
    import glob
    import time

    for lock_path in glob.glob(os.path.join(glob.escape(directory), "*.lock")):
        if lock_path == own_lock:
            continue
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            if time.time() - os.fstat(fd).st_mtime < age:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # its server is alive
            key = lock_path[:-len(".lock")]
            for path in (f"{key}.sock", *glob.glob(f"{glob.escape(key)}.sock.*")):
                try:
                    os.unlink(path)
                except OSError:
                    pass
            shutil.rmtree(f"{key}.d", ignore_errors=True)
            os.unlink(lock_path)
        except OSError:
            pass
        finally:
            os.close(fd)


def warm_platform() -> None:
    """What an apply or a refresh adds: the SDK (~0.3 s) and the provider's modules that use
    it. Not the node scripts: the warmer renders them once it serves (``between_launches``),
    as the apply's launch, already waiting for it, needs them only after its cluster's create
    (which renders them in the background meanwhile, ``scripts.warm_default_scripts``)."""
    import importlib
    import pkgutil

    import raydog
    from raydog.provider import collector_paused

    with collector_paused():  # as RaydogProvider.client imports the SDK
        for package in WARMED_PACKAGES:
            path = os.path.join(os.path.dirname(raydog.__file__), package.split(".", 1)[1])
            for module in pkgutil.iter_modules([path]):
                importlib.import_module(f"{package}.{module.name}")


class Server:
    """The accept-fork-reap loop.

    Right after it binds its socket the server forks a *warmer*: a copy that loads the SDK
    and the rest of the provider (``warm_platform``, ~0.35 s) while this one already serves
    launches (validation and plans need none of it). When the warmer is ready it says so on
    a pipe, this server stops accepting and only waits for its children, and the warmer
    serves from the same socket from then on.
    """

    def __init__(self, socket_path: str, lock_path: str, lock: int, terraform: int, serve: Callable[[], None],
                 idle: float = launcher.IDLE_SECONDS) -> None:
        self.socket_path = socket_path
        self.command_dir = f"{socket_path[:-len('.sock')]}.d"  # command_state's directory
        self.lock_path = lock_path
        self.lock = lock
        self.terraform = terraform
        self.serve = serve
        self.idle = idle
        self.selector: Optional[selectors.BaseSelector] = None  # made by _watch
        self.children: dict[int, tuple[int, socket.socket]] = {}  # pidfd -> (pid, launcher's connection)
        self.accepting = True
        self.listener: Optional[socket.socket] = None
        self.socket_inode = 0
        self.warmer: Optional[int] = None  # the pipe the warmer says "ready" on
        self.warmer_pid = 0
        self.forks = 0
        self.forks_before_waiting = FORKS_BEFORE_WAITING

    def run(self) -> int:
        self.listener = self._bind()
        self._watch()
        self._start_warmer()
        steps = [*between_launches(),
                 lambda: remove_leftovers(os.path.dirname(self.socket_path), self.lock_path)]
        try:
            while self.accepting or self.children:
                events = self.selector.select(0 if steps else self.idle)
                if not events and steps:
                    steps.pop(0)()
                    continue
                if not events and not self.children:
                    break  # idle
                for key, _ in events:
                    if key.data == "accept":
                        self._accept()
                    elif key.data == "terraform":
                        self.accepting = False  # Terraform has exited: no launch will come
                        self.selector.unregister(self.terraform)
                        self._stop_warmer()
                    elif key.data == "warmer":
                        self._warmer_answered()
                    else:
                        self._reap(key.fd)
                if not self.accepting and self.listener is not None:
                    self._stop_listening()
        finally:
            self._stop_listening()
        return 0

    def _watch(self) -> None:
        """A selector of its own (an epoll set is shared with a fork that keeps using it)."""
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ, "accept")
        self.selector.register(self.terraform, selectors.EVENT_READ, "terraform")

    def _start_warmer(self) -> None:
        ready, say_ready = os.pipe()
        pid = os.fork()
        if pid == 0:  # the warmer
            os.close(ready)
            try:
                self.selector.close()
                warm_platform()
                self._watch()
                os.write(say_ready, b"R")
                os.close(say_ready)
            except BaseException:  # noqa: BLE001 - the unwarmed server goes on serving
                os._exit(1)
            return  # run's loop goes on in the warmer, now the server
        os.close(say_ready)
        self.warmer, self.warmer_pid = ready, pid
        self.selector.register(ready, selectors.EVENT_READ, "warmer")

    def _accept_launches(self, accept: bool) -> None:
        """Watch the socket for launches, or leave them waiting in its backlog."""
        if self.listener is None or accept == (self.selector.get_map().get(self.listener.fileno()) is not None):
            return
        if accept:
            self.selector.register(self.listener, selectors.EVENT_READ, "accept")
        else:
            self.selector.unregister(self.listener)

    def _stop_warmer(self) -> None:
        """Terraform has exited before the warmer was ready: its work would be for nothing, and
        it would take CPU from whatever runs next (often the next Terraform command)."""
        if self.warmer is None:
            return
        self.selector.unregister(self.warmer)
        os.close(self.warmer)
        self.warmer = None
        try:
            os.kill(self.warmer_pid, signal.SIGKILL)
            os.waitpid(self.warmer_pid, 0)
        except OSError:
            pass

    def _warmer_answered(self) -> None:
        said = os.read(self.warmer, 1)
        self.selector.unregister(self.warmer)
        os.close(self.warmer)
        self.warmer = None
        if said != b"R":
            try:
                os.waitpid(self.warmer_pid, 0)  # it failed and exited
            except OSError:
                pass
            self._accept_launches(self.accepting)  # this copy serves them all after all
        else:  # the warmer serves from now on; the socket's path is its to remove
            self.accepting = False
            self._accept_launches(False)
            self.listener.close()
            self.listener = None

    def _bind(self) -> socket.socket:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        staging = f"{self.socket_path}.{os.getpid() % 10**7}"
        try:
            os.unlink(staging)
        except FileNotFoundError:
            pass
        listener.bind(staging)
        os.chmod(staging, 0o600)
        self.socket_inode = os.stat(staging).st_ino
        listener.listen(64)
        os.makedirs(self.command_dir, mode=0o700, exist_ok=True)
        os.replace(staging, self.socket_path)  # appears ready: launches connect only now
        return listener

    def _stop_listening(self) -> None:
        """Close the socket and remove its path, unless a newer server's socket is there now."""
        if self.listener is None:
            return
        try:
            if os.stat(self.socket_path).st_ino == self.socket_inode:
                os.unlink(self.socket_path)
                shutil.rmtree(self.command_dir, ignore_errors=True)
                os.unlink(self.lock_path)  # still held: a launcher that opened it just now starts a new server
        except OSError:
            pass
        self._accept_launches(False)
        self.listener.close()
        self.listener = None

    def _accept(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        fds: list[int] = []
        try:
            conn.settimeout(launcher.REQUEST_TIMEOUT)
            uid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))[1]
            if uid != os.getuid():
                conn.close()
                return
            request, fds = _receive(conn)
        except (OSError, ValueError):
            for fd in fds:
                os.close(fd)
            conn.close()
            return
        if not _still_connected(conn):  # gave up waiting: a child now would serve a launch that is gone
            for fd in fds:
                os.close(fd)
            conn.close()
            return
        pid = os.fork()
        if pid == 0:
            self._become_provider(conn, fds, request)  # never returns
        for fd in fds:
            os.close(fd)
        try:
            pidfd = os.pidfd_open(pid)
            conn.sendall(b"P" + pid.to_bytes(4, "big"))
        except OSError:
            conn.close()
            return
        self.children[pidfd] = (pid, conn)
        self.selector.register(pidfd, selectors.EVENT_READ, "child")
        self.forks += 1
        if self.forks == 1 and local_state_has_resources(request.cwd, request.environ):
            self.forks_before_waiting = REFRESHING_FORKS_BEFORE_WAITING  # the plan refreshes: it waits for the SDK
        if self.warmer is not None and self.forks >= self.forks_before_waiting:
            self._accept_launches(False)  # the next launches wait in the backlog for the warmer

    def _reap(self, pidfd: int) -> None:
        pid, conn = self.children.pop(pidfd)
        self.selector.unregister(pidfd)
        os.close(pidfd)
        _, status = os.waitpid(pid, 0)
        try:
            conn.sendall(b"X" + status.to_bytes(4, "big", signed=True))
        except OSError:
            pass  # the launcher is gone
        conn.close()

    def _become_provider(self, conn: socket.socket, fds: list, request: "Request") -> None:
        """In the child: take over the launch and serve it as raydog.plugin does; never return."""
        code = 1
        try:
            self.selector.close()
            if self.listener is not None:
                self.listener.close()
            for pidfd, (_, other) in self.children.items():
                os.close(pidfd)
                other.close()
            os.close(self.terraform)
            os.close(self.lock)
            if self.warmer is not None:
                os.close(self.warmer)
            for target, fd in enumerate(fds):
                os.dup2(fd, target)
                os.close(fd)
            os.chdir(request.cwd)
            os.environ.clear()
            os.environ.update(request.environ)
            sys.argv = request.argv
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            _watch_launcher(conn)
            launcher.forked_from = os.getppid()
            from raydog import command_state

            command_state.directory = self.command_dir
            self.serve()
            code = 0
        finally:
            os._exit(code)


class Request(NamedTuple):
    """What a launcher sends: its directory, arguments and environment."""

    cwd: str
    argv: list
    environ: dict


def _receive(conn: socket.socket) -> tuple[Request, list]:
    """Read a launcher's request and the three descriptors that come with it."""
    header, ancillary, _, _ = conn.recvmsg(8, socket.CMSG_SPACE(3 * 4))
    fds: list[int] = []
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds += [int.from_bytes(data[i:i + 4], sys.byteorder) for i in range(0, len(data) - len(data) % 4, 4)]
    if len(header) != 8 or len(fds) != 3:
        raise ValueError("a malformed request")
    size = int.from_bytes(header, "big")
    if size > MAX_REQUEST_BYTES:
        raise ValueError("a request too large")
    body = launcher.read_exactly(conn, size)
    if body is None:
        raise ValueError("a request cut short")
    fields = body.split(b"\0")
    if fields[0] != launcher.PROTOCOL:
        raise ValueError("another protocol")
    count = int(fields[2])
    argv = [os.fsdecode(a) for a in fields[3:3 + count]]
    environ = {}
    for item in fields[3 + count:]:
        name, _, value = item.partition(b"=")
        environ[os.fsdecode(name)] = os.fsdecode(value)
    return Request(os.fsdecode(fields[1]), argv, environ), fds


def _still_connected(conn: socket.socket) -> bool:
    """Whether the launcher still waits (it has sent all it sends before its answer)."""
    timeout = conn.gettimeout()
    conn.settimeout(0.0)  # with a timeout, recv would wait for data first
    try:
        return conn.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True  # nothing to read: the launcher is waiting for its answer
    except OSError:
        return False
    finally:
        conn.settimeout(timeout)


def _watch_launcher(conn: socket.socket) -> None:
    """In the child: its launcher is Terraform's process. If the launcher says Terraform is
    gone, stop as a provider whose Terraform died; if the launcher dies (killed), die too."""
    from raydog import go_plugin

    conn.settimeout(None)

    def watch() -> None:
        try:
            said = conn.recv(1)
        except OSError:
            said = b""
        if said == b"G":
            go_plugin.TERRAFORM_GONE.set()
            return
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="launcher-watch", daemon=True).start()
