"""The node agent: PID 1 of one exec-mode node, run by ``ExecRuntime`` inside ``unshare``.

It runs as a standalone script (standard library only, never imported by the sandbox)
in fresh PID, mount and UTS namespaces. At boot it builds the node's filesystem view
in its private mount namespace:

    /tmp                            <- <node dir>/tmp            (Ray's session dir and sockets)
    /dev/shm                        <- a private tmpfs            (Ray's object store)
    /opt/yellowdog/agent            <- <node dir>/home           (the agent's HOME)
    /opt/yellowdog/agent/venv       <- the Ray virtual environment
    /var/opt/yellowdog/agent/data   <- <node dir>/data           (task working directories)
    /etc/hosts                      <- <node dir>/hosts          (the host's, plus this node's name)
    /etc/passwd, /etc/group         <- <node dir>/passwd, group  (the host's, plus the task user)
    /root (say)                     <- a tmpfs showing only the Python the venv links to,
                                       when the task user could not reach it otherwise

then makes every other mount read-only (only the node's own directory, its /tmp and
/dev/shm stay writable; /proc, /sys and /dev keep their flags), and takes the node's
hostname (its own UTS namespace). A path that does not exist on the host (/opt/yellowdog) is grafted in without touching
the host: the nearest existing ancestor (/opt) is covered by a tmpfs into which each of
its original entries is bind-mounted back. Then it prints ``{"event": "ready"}`` and
serves JSON lines on stdin:

    {"op": "run", "id", "argv", "cwd", "env", "output", "as_root"?}
                                                           start a task (own session), as the
                                                           task user unless as_root
    {"op": "abort", "id", "grace"}                         SIGTERM its bash, kill its tree later

and reports ``{"event": "exited", "id", "code"}`` on stdout when a task's bash ends.
End of stdin (the sandbox closed the pipe, or died) ends the agent, and with it, as
PID 1, every process of the node.

A task's processes are found by the ``RAYDOG_SANDBOX_TASK`` variable the agent puts in
its environment (inherited by everything it starts, including Ray's daemons, which
outlive their parents) and by their parent chain.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time

TASK_MARKER = "RAYDOG_SANDBOX_TASK"

MS_NOSUID = 2
MS_NODEV = 4
MS_RDONLY = 1
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    def enc(value: str | None) -> bytes | None:
        return None if value is None else os.fsencode(value)

    if _libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source or fstype} on {target}: {os.strerror(err)}")


def bind(source: str, target: str) -> None:
    mount(source, target, None, MS_BIND | MS_REC)


def mirror(directory: str, skip: str) -> None:
    """Cover ``directory`` with a tmpfs holding its original entries (bind-mounted back) but ``skip``."""
    original = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        mount("raydog-node", directory, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755")
        for name in os.listdir(original):
            if name == skip:
                continue
            source = f"/proc/self/fd/{original}/{name}"
            target = os.path.join(directory, name)
            if os.path.islink(source):
                os.symlink(os.readlink(source), target)
                continue
            if os.path.isdir(source):
                os.mkdir(target)
            else:
                open(target, "w").close()
            bind(source, target)
    finally:
        os.close(original)


def graft(source: str, target: str) -> None:
    """Make ``source`` visible at ``target`` in this mount namespace, whether or not ``target`` exists."""
    if not os.path.isdir(target):
        ancestor = os.path.dirname(target)
        while not os.path.isdir(ancestor):
            ancestor = os.path.dirname(ancestor)
        if ancestor == "/":
            raise OSError(errno.ENOENT, f"cannot graft {target}: no parent directory below / exists")
        skip = os.path.relpath(target, ancestor).split(os.sep)[0]
        mirror(ancestor, skip)
        os.makedirs(target)
    bind(source, target)


def expose(path: str) -> None:
    """Let the task user reach ``path`` (the Python the venv links to, under a private /root).

    The topmost ancestor others cannot traverse is covered by a tmpfs (mode 755) in which
    only ``path`` is bound back: nothing else of that directory is visible in the node."""
    ancestors = [a for a in _ancestors(path) if not os.stat(a).st_mode & 0o001]
    if not ancestors:
        return
    top = ancestors[0]
    original = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        mount("raydog-node", top, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755")
        os.makedirs(path, exist_ok=True)
        bind(f"/proc/self/fd/{original}/{os.path.relpath(path, top)}", path)
    finally:
        os.close(original)


def _ancestors(path: str) -> list[str]:
    parts = path.strip("/").split("/")
    return ["/" + "/".join(parts[:i]) for i in range(1, len(parts))]


def reexpose_under_tmp(host_tmp_fd: int, paths: list[str]) -> None:
    """Host paths under /tmp (a venv built there, say) stay visible at the same path."""
    for path in paths:
        if not path.startswith("/tmp/"):
            continue
        relative = path[len("/tmp/") :]
        os.makedirs(path, exist_ok=True)
        bind(f"/proc/self/fd/{host_tmp_fd}/{relative}", path)


# Mount flags that a read-only bind remount must keep (the kernel refuses to drop locked ones).
_MOUNT_OPTION_FLAGS = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": 8, "noatime": 1024,
                       "nodiratime": 2048, "relatime": 1 << 21}
KEEP_FLAGS = ("/proc", "/sys", "/dev")


def mount_points() -> list[tuple[str, int]]:
    """Every mount point of this namespace, with its per-mount flags, from /proc/self/mountinfo."""
    points = []
    with open("/proc/self/mountinfo") as info:
        for line in info:
            fields = line.split()
            target = fields[4].encode().decode("unicode_escape")
            flags = 0
            for option in fields[5].split(","):
                flags |= _MOUNT_OPTION_FLAGS.get(option, 0)
            points.append((target, flags))
    return points


def make_read_only(writable: list[str], read_only: list[str]) -> None:
    """Remount every mount read-only but the node's own (``writable`` and below, except
    ``read_only``, the Ray venv) and /proc, /sys, /dev."""
    def under(path: str, roots) -> bool:
        return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)

    for target, flags in mount_points():
        if target not in read_only and (under(target, writable) or under(target, KEEP_FLAGS)):
            continue
        try:
            mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | flags)
        except OSError as exc:
            if target == "/":
                raise
            print(f"node agent: {target} stays as it is: {exc}", file=sys.stderr, flush=True)


def set_up_filesystem(config: dict) -> None:
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    host_tmp = os.open("/tmp", os.O_RDONLY | os.O_DIRECTORY)
    try:
        # Node-dir sources may lie under the host's /tmp: bind them before /tmp is covered.
        for source, target in config["grafts"]:
            graft(source, target)
        bind(config["hosts"], "/etc/hosts")
        for source, target in config.get("accounts", []):
            bind(source, target)
        for path in config.get("expose", []):
            expose(path)
        bind(config["tmp"], "/tmp")
        reexpose_under_tmp(host_tmp, config["keep_visible"])
    finally:
        os.close(host_tmp)
    mount("shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, f"mode=1777,size={config['shm_size']}")
    if config.get("writable"):
        make_read_only(config["writable"], config["read_only"])
    socket.sethostname(config["hostname"])
    os.chdir("/")


class Task:
    def __init__(self, task_id: str, process: subprocess.Popen) -> None:
        self.task_id = task_id
        self.process = process
        self.kill_at: float | None = None


class Agent:
    def __init__(self, task_user: list[int] | None = None) -> None:
        self.task_user = task_user
        self.tasks: dict[int, Task] = {}
        self.pending = b""
        self.wakeup_r, wakeup_w = os.pipe()
        os.set_blocking(self.wakeup_r, False)
        os.set_blocking(wakeup_w, False)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.set_wakeup_fd(wakeup_w)

    def emit(self, **event) -> None:
        data = (json.dumps(event) + "\n").encode()
        while data:
            written = os.write(1, data)
            data = data[written:]

    def serve(self) -> None:
        while True:
            ready, _, _ = select.select([0, self.wakeup_r], [], [], self.next_timeout())
            if self.wakeup_r in ready:
                try:
                    os.read(self.wakeup_r, 4096)
                except BlockingIOError:
                    pass
            if 0 in ready and not self.read_commands():
                return
            self.reap()
            self.kill_overdue()

    def next_timeout(self) -> float:
        deadlines = [t.kill_at for t in self.tasks.values() if t.kill_at is not None]
        if not deadlines:
            return 5.0
        return max(0.0, min(deadlines) - time.monotonic())

    def read_commands(self) -> bool:
        chunk = os.read(0, 65536)
        if not chunk:
            return False
        self.pending += chunk
        *lines, self.pending = self.pending.split(b"\n")
        for line in lines:
            if line.strip():
                self.handle(json.loads(line))
        return True

    def handle(self, command: dict) -> None:
        if command["op"] == "run":
            self.run(command)
        elif command["op"] == "abort":
            self.abort(command["id"], float(command["grace"]))

    def run(self, command: dict) -> None:
        env = dict(command["env"])
        env[TASK_MARKER] = command["id"]
        user = {} if command.get("as_root") or not self.task_user else {
            "user": self.task_user[0], "group": self.task_user[1], "extra_groups": []}
        try:
            with open(command["output"], "ab", buffering=0) as output:
                process = subprocess.Popen(
                    command["argv"],
                    cwd=command["cwd"],
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    **user,
                )
        except OSError as exc:
            self.append_output(command["output"], f"raydog sandbox: cannot start task: {exc}\n")
            self.emit(event="exited", id=command["id"], code=127)
            return
        self.tasks[process.pid] = Task(command["id"], process)

    @staticmethod
    def append_output(path: str, text: str) -> None:
        try:
            with open(path, "a") as output:
                output.write(text)
        except OSError:
            pass

    def abort(self, task_id: str, grace: float) -> None:
        for pid, task in self.tasks.items():
            if task.task_id == task_id and task.kill_at is None:
                task.kill_at = time.monotonic() + grace
                os.kill(pid, signal.SIGTERM)

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            task = self.tasks.pop(pid, None)
            if task is None:
                continue  # an orphan re-parented to PID 1
            task.process.returncode = os.waitstatus_to_exitcode(status)
            if task.kill_at is not None:
                kill_task_processes(task.task_id, pid)
            code = task.process.returncode
            self.emit(event="exited", id=task.task_id, code=code if code >= 0 else 128 - code)

    def kill_overdue(self) -> None:
        now = time.monotonic()
        for pid, task in list(self.tasks.items()):
            if task.kill_at is not None and task.kill_at <= now:
                task.kill_at = now + 1.0  # if something survives (it should not), try again
                kill_task_processes(task.task_id, pid)


def task_processes(task_id: str, root: int) -> set[int]:
    """Every process of a task: those carrying its marker, plus the descendants of its bash."""
    marker = f"{TASK_MARKER}={task_id}".encode()
    children: dict[int, list[int]] = {}
    found: set[int] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or entry == "1":
            continue
        pid = int(entry)
        try:
            with open(f"/proc/{pid}/stat", "rb") as stat:
                ppid = int(stat.read().rsplit(b")", 1)[1].split()[1])
            with open(f"/proc/{pid}/environ", "rb") as environ:
                if marker in environ.read().split(b"\0"):
                    found.add(pid)
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(pid)
    stack = [root]
    while stack:
        pid = stack.pop()
        found.add(pid)
        stack.extend(children.get(pid, []))
    found.discard(1)
    return found


def is_running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except (OSError, IndexError):
        return False


def kill_task_processes(task_id: str, root: int) -> None:
    for _ in range(50):
        alive = [pid for pid in task_processes(task_id, root) if is_running(pid)]
        if not alive:
            return
        for pid in alive:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.01)


def main() -> None:
    config = json.loads(sys.argv[1])
    agent = Agent(config.get("task_user"))
    try:
        set_up_filesystem(config)
    except OSError as exc:
        agent.emit(event="error", message=str(exc))
        sys.exit(1)
    agent.emit(event="ready")
    agent.serve()
    # Returning from PID 1 makes the kernel kill every other process of the namespace.


if __name__ == "__main__":
    main()
