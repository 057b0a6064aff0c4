"""The launcher: every launch of the provider asks a warm copy of it to fork its server.

Terraform starts the provider four times in ``terraform apply`` (schema, validation, plan,
apply), and every launch used to load the framework, protobuf and the provider again
(~0.1 s each) and the apply's launch also the YellowDog SDK (~0.25 s). Now the first
launch of a command also starts a *fork server* in the background: a process that loads
all of that once and then waits. Each later launch is a small process (the *launcher*) that
hands the fork server its stdin, stdout and stderr (SCM_RIGHTS), its environment, working
directory and arguments; the fork server forks a child that takes them over and serves
Terraform exactly as a fresh launch would (handshake line, calls, Shutdown), with nothing
of the parent's state but what importing the code made. The launcher stays Terraform's
process: it exits with the child's exit status, passes SIGTERM/SIGHUP/SIGQUIT on, and when
it is killed the child dies with it (SIGKILL, as the provider would).

Scope and safety:
- One fork server per Terraform process, per user, per provider executable and per
  environment and working directory (all in the socket's name): a launch never forks from
  a copy made with another environment, another build or for another command. It exits
  when that Terraform process has exited and its children have, or after IDLE_SECONDS
  with nothing to do.
- Its socket is in a directory only the user can open (checked, or no fork server), and
  it serves only peers of the same uid (SO_PEERCRED).
- Only for the Terraform commands that start the provider three times or more (plan, apply,
  destroy, refresh, import, test): ``show``, ``output``, ``validate`` and the like
  (BRIEF_COMMANDS) start none.
- Linux only (pidfd, SCM_RIGHTS). ``RAYDOG_PROVIDER_FORK_SERVER=0`` turns it off. Whatever
  fails before a child exists (no server yet, a server still loading, a refused fork) the
  launch serves Terraform itself, as before.

Only the launcher's side runs in every launch, so this module imports nothing at load
beyond built-in modules; the fork server's side imports what it needs.
"""

from __future__ import annotations

import os
import stat  # os has loaded it already
import sys

SWITCH = "RAYDOG_PROVIDER_FORK_SERVER"
FLAG = "--raydog-fork-server"
IDLE_SECONDS = 120.0
PROTOCOL = b"RDFS1"
# go-plugin's variables differ between the launches of one command; nothing else may.
PER_LAUNCH_PREFIX = "PLUGIN_"
REQUEST_TIMEOUT = 5.0  # to send a request
# To be told the child's pid. A launch may wait for the warmer (fork_server.Server), which loads
# the SDK in ~0.3 s; past this the machine is badly stuck, and Terraform is told so.
FORK_ANSWER_TIMEOUT = 60.0
SOCKET_PATH_MAX = 107  # sun_path is 108 bytes with its NUL
STAGING_SUFFIX_BYTES = 8  # the fork server binds "<socket>.<pid>" first
FORWARDED_SIGNALS = ("SIGTERM", "SIGHUP", "SIGQUIT")
# Terraform commands that start the provider once or twice (its schema, a validation) and
# never configure it: a fork server would load the provider and the SDK for nothing.
BRIEF_COMMANDS = frozenset({"show", "output", "state", "providers", "validate", "console", "graph", "fmt",
                            "version", "init", "get", "workspace", "taint", "untaint", "force-unlock",
                            "login", "logout", "metadata", "modules"})

# In a child of the fork server: the fork server's pid (the provider logs where it came from).
forked_from = None


# -- the launcher (every launch) ---------------------------------------------------------------

def launch(argv: list) -> "int | None":
    """Serve this launch from the fork server. None: this process must serve it itself
    (no fork server, or not ready; one is started for the next launches). Otherwise the
    child has served it and this is the exit code (a child killed by a signal kills this
    process with the same signal)."""
    if os.environ.get(SWITCH) == "0" or not sys.platform.startswith("linux") or "--dev" in argv:
        return None
    place = _place(argv)
    if place is None:
        return None
    socket_path, lock_path, terraform = place
    import _socket

    conn = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        conn.connect(socket_path)
    except OSError:
        conn.close()
        if terraform_command(terraform) not in BRIEF_COMMANDS:
            _start_server(lock_path, socket_path, terraform)
        return None
    try:
        _send_request(conn, argv)
    except OSError:
        conn.close()
        return None  # nothing was forked for a request not sent whole
    try:
        conn.settimeout(FORK_ANSWER_TIMEOUT)
        answer = read_exactly(conn, 5)
    except OSError:  # no answer in time: a child may still come, so this launch must not serve too
        sys.stderr.write(f"[ERROR] raydog: the provider's fork server did not answer in {FORK_ANSWER_TIMEOUT:g} s; "
                         f"{SWITCH}=0 turns it off\n")
        return 1
    if answer is None or answer[:1] != b"P":
        conn.close()
        return None  # refused, or the fork server is gone: nothing was forked
    return _relay(conn, int.from_bytes(answer[1:], "big"), terraform)


def _place(argv):
    """(socket, lock, Terraform's pid) for this launch, or None without a private directory."""
    import _sha256

    uid = os.getuid()
    base = os.environ.get("XDG_RUNTIME_DIR") or os.environ.get("TMPDIR") or "/tmp"
    directory = os.path.join(base, f"raydog-provider-{uid}")
    try:
        os.mkdir(directory, 0o700)
    except FileExistsError:
        pass
    except OSError:
        return None
    try:
        info = os.lstat(directory)
        executable = os.stat(sys.executable)
        cwd = os.getcwd()
    except OSError:
        return None
    if info.st_uid != uid or info.st_mode & 0o077 or not stat.S_ISDIR(info.st_mode):
        return None  # someone else's, or open to others: never trust a socket in it
    terraform = os.getppid()
    started = _process_start(terraform)
    if started is None:
        return None
    identity = [str(uid), str(terraform), started, sys.executable,
                f"{executable.st_ino}:{executable.st_size}:{executable.st_mtime_ns}", cwd, "\0".join(argv[1:])]
    identity += sorted(f"{k}={v}" for k, v in os.environ.items() if not k.startswith(PER_LAUNCH_PREFIX))
    key = _sha256.sha256("\0\0".join(identity).encode("utf-8", "surrogateescape")).hexdigest()[:32]
    socket_path = os.path.join(directory, f"{key}.sock")
    if len(os.fsencode(socket_path)) + STAGING_SUFFIX_BYTES > SOCKET_PATH_MAX:
        return None  # too deep a directory for a unix socket's address
    return socket_path, os.path.join(directory, f"{key}.lock"), terraform


def terraform_command(pid: int):
    """The Terraform subcommand process ``pid`` runs (``terraform [-chdir=DIR] show -json``:
    "show"), or None when it is not a ``terraform`` executable (the embedded Terraform runs
    in a Python process) or says none."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as file:
            args = file.read().split(b"\0")
    except OSError:
        return None
    if not os.path.basename(args[0]).startswith(b"terraform"):
        return None
    command = next((arg for arg in args[1:] if arg and not arg.startswith(b"-")), None)
    return command.decode(errors="replace") if command is not None else None


def _process_start(pid: int):
    """The process's start time in clock ticks (so a reused pid is another key), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            stat = file.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2:].split()
    return fields[19].decode() if len(fields) > 19 else None


def _send_request(conn, argv) -> None:
    """Ask for a child with this launch's stdio, environment, directory and arguments."""
    fields = [PROTOCOL, os.fsencode(os.getcwd()), str(len(argv)).encode()]
    fields += [os.fsencode(a) for a in argv]
    fields += [os.fsencode(k) + b"=" + os.fsencode(v) for k, v in os.environ.items()]
    body = b"\0".join(fields)
    import _socket

    fds = (0, 1, 2)
    ancillary = [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, b"".join(fd.to_bytes(4, sys.byteorder) for fd in fds))]
    conn.settimeout(REQUEST_TIMEOUT)
    conn.sendmsg([len(body).to_bytes(8, "big")], ancillary)
    conn.sendall(body)


def read_exactly(conn, size: int):
    """``size`` bytes from the socket, or None if it closes first (the fork server reads
    requests with it too)."""
    data = bytearray()
    while len(data) < size:
        chunk = conn.recv(min(size - len(data), 1 << 20))
        if not chunk:
            return None
        data += chunk
    return bytes(data)


def _relay(conn, child: int, terraform: int) -> int:
    """Be the child's stand-in until it exits: its exit status, or Terraform's exit."""
    import _signal
    import select

    _signal.signal(_signal.SIGINT, _signal.SIG_IGN)  # like the provider: Terraform asks it to stop

    def forward(signum, frame):
        try:
            os.kill(child, signum)
        except OSError:
            pass

    for name in FORWARDED_SIGNALS:
        _signal.signal(getattr(_signal, name), forward)
    conn.settimeout(None)
    try:
        watched = os.pidfd_open(terraform)
    except OSError:
        watched = None
    while True:
        readable, _, _ = select.select([conn] + ([watched] if watched is not None else []), [], [],
                                       None if watched is not None else 0.05)
        if conn in readable:
            answer = read_exactly(conn, 5)
            if answer is None or answer[:1] != b"X":
                return 1  # the fork server is gone: nothing left to say
            return _exit_code(int.from_bytes(answer[1:], "big", signed=True))
        if (watched is not None and watched in readable) or (watched is None and os.getppid() != terraform):
            try:
                conn.sendall(b"G")  # Terraform is gone: the child stops as a provider whose Terraform died
            except OSError:
                pass
            return 0


def _exit_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        import _signal

        signum = os.WTERMSIG(status)
        _signal.signal(signum, _signal.SIG_DFL)
        os.kill(os.getpid(), signum)
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 1


def _start_server(lock_path: str, socket_path: str, terraform: int) -> None:
    """Start the fork server unless one is starting (it holds the lock while it lives)."""
    import fcntl

    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return  # starting, or running and busy: this launch serves itself
    os.close(fd)  # the server takes the lock itself
    program = [sys.executable] if getattr(sys, "frozen", False) else [sys.executable, "-m", "raydog.plugin"]
    try:
        os.posix_spawn(program[0], [*program, FLAG, str(terraform), socket_path, lock_path], os.environ,
                       file_actions=[(os.POSIX_SPAWN_OPEN, fd, os.devnull, os.O_RDWR, 0) for fd in (0, 1, 2)],
                       setsid=True)
    except OSError:
        pass
