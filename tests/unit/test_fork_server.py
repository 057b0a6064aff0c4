"""The fork server (raydog.launcher, raydog.fork_server): the later launches of one Terraform
command fork from a warm copy of the provider, with their own environment, and nothing of it
outlives Terraform.

A real process stands in for Terraform (DRIVER): it launches ``python -m raydog.plugin`` as
Terraform does, reads the handshake line, calls the provider over its socket and TLS
certificate, and reports what it saw. Each test has its own runtime directory, so the fork
servers it starts are its own and can be found by it.
"""

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from harness.processes import fork_servers
from harness.waits import wait_until
from raydog import launcher

DRIVER = r"""
import json, os, subprocess, sys
from raydog.packaging import smoke

launched = {}
for line in sys.stdin:
    command = json.loads(line)
    name = command["name"]
    if command["do"] == "launch":
        proc = subprocess.Popen([sys.executable, "-m", "raydog.plugin"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env={**os.environ, **command.get("env", {})})
        launched[name] = proc
        print(json.dumps({"pid": proc.pid, "handshake": proc.stdout.readline().decode()}), flush=True)
    elif command["do"] == "call":
        proc = launched[name]
        handshake = command["handshake"]
        with smoke.connected(handshake) as channel:
            resources = sorted(smoke.get_provider_schema(channel).resource_schemas)
        proc.wait(timeout=30)
        log = proc.stderr.read().decode()
        print(json.dumps({"rc": proc.returncode, "resources": resources,
                          "warm": "launched from the warm copy of the provider" in log,
                          "sdk": "SDK loaded" in log}), flush=True)
    elif command["do"] == "wait":
        proc = launched[name]
        proc.wait(timeout=30)
        print(json.dumps({"rc": proc.returncode}), flush=True)
"""

RESOURCES = ["raydog_cluster", "raydog_head", "raydog_observability", "raydog_worker_pool"]


class Terraform:
    """The stand-in for Terraform: one process whose launches share its fork server."""

    def __init__(self, tmp_path, run_dir, command=None, cwd=None, **environ):
        self.run_dir = run_dir
        inherited = {k: v for k, v in os.environ.items() if k != launcher.SWITCH}
        self.environ = {**inherited, "XDG_RUNTIME_DIR": str(self.run_dir), "TF_LOG": "debug",
                        "GRPC_VERBOSITY": "ERROR", "HOME": str(tmp_path), **environ}
        if command is None:
            argv = [sys.executable, "-c", DRIVER]
        else:  # seen as `terraform <command>`: Python, named terraform, runs the driver saved as <command>
            cwd = tmp_path / f"terraform-{command}"
            cwd.mkdir(exist_ok=True)
            (cwd / command).write_text(DRIVER)
            (cwd / "terraform").symlink_to(sys.executable)
            import raydog  # an editable install: its path comes from a .pth file, which PYTHONPATH skips

            source = os.path.dirname(os.path.dirname(raydog.__file__))
            self.environ["PYTHONPATH"] = os.pathsep.join([source, *(p for p in sys.path if p)])
            argv = [str(cwd / "terraform"), command]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=self.environ,
                                     text=True, cwd=cwd)

    def _ask(self, **command):
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, f"the stand-in for Terraform died on {command}"
        return json.loads(line)

    def launch(self, name, **env):
        return self._ask(do="launch", name=name, env=env)

    def call(self, name, launched):
        """GetProviderSchema and Shutdown, as Terraform's first launch does."""
        return self._ask(do="call", name=name, handshake=launched["handshake"])

    def wait(self, name):
        return self._ask(do="wait", name=name)

    def launch_and_call(self, name, **env):
        return self.call(name, self.launch(name, **env))

    def warm(self, name, **env):
        """Whether the launch was forked from the warm copy (and not served by itself)."""
        return self.launch_and_call(name, **env)["warm"]

    def sockets(self):
        return sorted(p.name for p in self.run_dir.glob("raydog-provider-*/*.sock"))

    def files(self):
        return sorted(p.name for p in self.run_dir.glob("raydog-provider-*/*"))

    def fork_servers(self):
        """Pids of the fork servers of this test (their command line names its runtime directory)."""
        return [pid for pid, argv in fork_servers().items() if any(str(self.run_dir) in a for a in argv)]

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)


@pytest.fixture
def terraform(tmp_path):
    """Stand-ins for Terraform with a runtime directory of their own (short: a unix socket's
    path has at most 107 bytes, and a deeper directory means no fork server)."""
    run_dir = Path(tempfile.mkdtemp(prefix="fs-", dir="/tmp"))
    made = []

    def make(command=None, cwd=None, **environ):
        made.append(Terraform(tmp_path, run_dir, command, cwd, **environ))
        return made[-1]

    yield make
    for stand_in in made:
        if stand_in.proc.poll() is None:
            stand_in.proc.kill()
        for pid in stand_in.fork_servers():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass  # it left on its own, after its Terraform
    shutil.rmtree(run_dir, ignore_errors=True)


def refuses(socket_path):
    """Whether nothing serves the unix socket any more."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(socket_path)
        except OSError:
            return True
    return False


def child_socket(launched):
    return launched["handshake"].split("|")[3]


def test_later_launches_fork_from_the_warm_copy_and_nothing_outlives_terraform(terraform):
    tf = terraform()
    first = tf.launch_and_call("schema")
    assert first == {"rc": 0, "resources": RESOURCES, "warm": False, "sdk": False}
    wait_until(tf.sockets, "the fork server listens")
    for name in ("validate", "plan"):  # forked at once, with the SDK if the warmer is ready by then
        assert {**tf.launch_and_call(name), "sdk": None} == {"rc": 0, "resources": RESOURCES, "warm": True, "sdk": None}
    # The third fork waits for the warmer: the apply's launch has the SDK loaded.
    assert tf.launch_and_call("apply") == {"rc": 0, "resources": RESOURCES, "warm": True, "sdk": True}
    wait_until(lambda: len(tf.fork_servers()), "the warmed copy takes over and the first one leaves",
               until=lambda count: count == 1)
    tf.close()
    wait_until(lambda: (tf.fork_servers(), tf.files()), "the fork server and its files are gone",
               until=lambda seen: seen == ([], []))


def test_a_launch_with_another_environment_never_forks_from_a_copy_made_with_this_one(terraform):
    tf = terraform()
    one, two = tf.run_dir / "one", tf.run_dir / "two"  # short: the provider's own socket goes in TMPDIR
    one.mkdir()
    two.mkdir()
    tf.launch_and_call("first", TMPDIR=str(one))
    wait_until(tf.sockets, "the first fork server listens")
    warm = tf.launch("again", TMPDIR=str(one))
    assert child_socket(warm).startswith(str(one))  # the child's TMPDIR is the launch's
    assert tf.call("again", warm)["warm"] is True
    other = tf.launch("other", TMPDIR=str(two))
    assert child_socket(other).startswith(str(two))
    assert tf.call("other", other)["warm"] is False  # another environment: another fork server, started now
    wait_until(lambda: len(tf.sockets()), "the second fork server listens", until=lambda n: n == 2)
    warm = tf.launch("other again", TMPDIR=str(two))
    assert child_socket(warm).startswith(str(two))
    assert tf.call("other again", warm)["warm"] is True


def test_a_killed_launcher_takes_its_child_with_it_and_sigterm_reaches_the_child(terraform):
    tf = terraform()
    tf.launch_and_call("schema")
    wait_until(tf.sockets, "the fork server listens")
    killed = tf.launch("killed")
    os.kill(killed["pid"], signal.SIGKILL)
    wait_until(lambda: refuses(child_socket(killed)), "the killed launcher's child stops serving")
    assert tf.wait("killed")["rc"] == -signal.SIGKILL
    stopped = tf.launch("terminated")
    os.kill(stopped["pid"], signal.SIGTERM)
    assert tf.wait("terminated")["rc"] == -signal.SIGTERM  # the child's death, passed on
    assert refuses(child_socket(stopped))


def test_when_terraform_dies_its_launches_children_and_fork_server_follow(terraform):
    tf = terraform()
    tf.launch_and_call("schema")
    wait_until(tf.sockets, "the fork server listens")
    held = tf.launch("held")  # serving, as in an apply's long wait
    assert not refuses(child_socket(held))
    tf.proc.kill()  # kill -9 of Terraform: no Shutdown for anyone
    wait_until(lambda: refuses(child_socket(held)), "the orphaned child stops")
    wait_until(lambda: os.path.exists(f"/proc/{held['pid']}"), "the launcher exits", until=lambda alive: not alive)
    wait_until(lambda: (tf.fork_servers(), tf.files()), "the fork server and its files are gone",
               until=lambda seen: seen == ([], []))


def test_switched_off_in_a_directory_others_can_open_or_too_deep_every_launch_serves_itself(terraform, tmp_path):
    tf = terraform(**{launcher.SWITCH: "0"})
    for name in ("one", "two"):
        assert tf.launch_and_call(name) == {"rc": 0, "resources": RESOURCES, "warm": False, "sdk": False}
    assert tf.files() == [] and tf.fork_servers() == []
    tf.close()

    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / f"raydog-provider-{os.getuid()}").mkdir()
    os.chmod(shared / f"raydog-provider-{os.getuid()}", 0o777)  # anyone could put a socket there
    tf = terraform(XDG_RUNTIME_DIR=str(shared))
    for name in ("one", "two"):
        assert tf.launch_and_call(name)["warm"] is False
    assert list((shared / f"raydog-provider-{os.getuid()}").iterdir()) == []
    assert stat.S_IMODE(os.stat(shared / f"raydog-provider-{os.getuid()}").st_mode) == 0o777
    tf.close()

    deep = tmp_path / ("d" * 60)  # pytest's tmp_path is already ~60 bytes deep
    deep.mkdir(mode=0o700)
    tf = terraform(XDG_RUNTIME_DIR=str(deep))
    for name in ("one", "two"):
        assert tf.launch_and_call(name)["warm"] is False
    assert [p.name for p in deep.iterdir()] in ([], [f"raydog-provider-{os.getuid()}"])
    assert list(deep.glob("*/*")) == []


def test_the_fork_server_serves_only_its_own_user(terraform):
    tf = terraform()
    tf.launch_and_call("schema")
    (path,) = wait_until(lambda: list(tf.run_dir.glob("raydog-provider-*/*.sock")), "the fork server listens")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    other_uid = 59999
    pid = os.fork()
    if pid == 0:  # another user connects and sends a request: no child, the connection closed
        code = 1
        try:
            os.setuid(other_uid)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                try:
                    conn.connect(str(path))
                except PermissionError:
                    code = 0  # the socket's mode already refuses: fine too
                else:
                    body = launcher.PROTOCOL + b"\0/\0" + b"0"
                    conn.sendmsg([len(body).to_bytes(8, "big")], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                                                    b"".join(fd.to_bytes(4, sys.byteorder) for fd in (0, 1, 2)))])
                    conn.sendall(body)
                    conn.settimeout(10)
                    code = 0 if conn.recv(5) == b"" else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert tf.launch_and_call("after")["warm"] is True  # still serving its own user


def test_a_stopped_fork_server_removes_its_socket_and_the_next_launch_starts_another(terraform):
    tf = terraform()
    tf.launch_and_call("schema")
    wait_until(lambda: len(tf.fork_servers()), "the warmed copy takes over", until=lambda count: count == 1)
    (server,) = tf.fork_servers()
    os.kill(server, signal.SIGTERM)
    wait_until(lambda: (tf.fork_servers(), tf.files()), "the stopped fork server and its files are gone",
               until=lambda seen: seen == ([], []))
    assert tf.launch_and_call("cold again") == {"rc": 0, "resources": RESOURCES, "warm": False, "sdk": False}
    wait_until(tf.sockets, "a new fork server listens")
    assert tf.launch_and_call("warm again")["warm"] is True


def test_a_command_of_one_launch_leaves_nothing_behind(terraform):
    """`terraform init` or `show` starts the provider once: its fork server (and a warmer that
    may still be loading the SDK) end with the command."""
    tf = terraform()
    assert tf.launch_and_call("only")["warm"] is False
    tf.close()
    wait_until(lambda: (tf.fork_servers(), tf.files()), "the fork server, its warmer and their files are gone",
               until=lambda seen: seen == ([], []))


def test_terraform_commands_that_start_the_provider_once_or_twice_start_no_fork_server(terraform):
    assert launcher.terraform_command(os.getpid()) is None  # not a terraform executable
    shown = terraform(command="show")
    wait_until(lambda: launcher.terraform_command(shown.proc.pid), "the stand-in runs as `terraform show`",
               until=lambda command: command == "show")  # its command line is the new one once exec is done
    assert shown.launch_and_call("schema")["warm"] is False
    assert shown.launch_and_call("again")["warm"] is False
    assert shown.fork_servers() == [] and shown.files() == []
    shown.close()
    applied = terraform(command="apply")
    applied.launch_and_call("schema")
    wait_until(applied.sockets, "the apply's fork server listens")
    assert applied.launch_and_call("validate")["warm"] is True


MANAGED_STATE = json.dumps({"version": 4, "resources": [
    {"mode": "managed", "type": "raydog_cluster", "name": "c", "instances": []}]}, indent=2)


def test_a_plan_that_refreshes_resources_waits_for_the_sdk(terraform, tmp_path):
    """With resources in the local state, the plan's launch (the second fork) reads them with
    the SDK, so it is forked from the warmer, as the apply's launch is."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "terraform.tfstate").write_text(MANAGED_STATE)
    tf = terraform(cwd=workdir)
    tf.launch_and_call("schema")
    wait_until(tf.sockets, "the fork server listens")
    assert tf.launch_and_call("validate")["warm"] is True
    assert tf.launch_and_call("plan") == {"rc": 0, "resources": RESOURCES, "warm": True, "sdk": True}


def test_local_state_has_resources_reads_the_workspace_s_local_state_only(tmp_path):
    from raydog.fork_server import local_state_has_resources

    assert local_state_has_resources(str(tmp_path), {}) is False  # no state yet
    (tmp_path / "terraform.tfstate").write_text(json.dumps({"version": 4, "resources": []}, indent=2))
    assert local_state_has_resources(str(tmp_path), {}) is False
    (tmp_path / "terraform.tfstate").write_text(MANAGED_STATE)
    assert local_state_has_resources(str(tmp_path), {}) is True
    assert local_state_has_resources(str(tmp_path), {"TF_WORKSPACE": "staging"}) is False
    (tmp_path / ".terraform").mkdir()
    (tmp_path / ".terraform" / "environment").write_text("staging")
    assert local_state_has_resources(str(tmp_path), {}) is False
    (tmp_path / "terraform.tfstate.d" / "staging").mkdir(parents=True)
    (tmp_path / "terraform.tfstate.d" / "staging" / "terraform.tfstate").write_text(MANAGED_STATE)
    assert local_state_has_resources(str(tmp_path), {}) is True
    (tmp_path / ".terraform" / "terraform.tfstate").write_text('{"backend": {"type": "s3"}}')
    assert local_state_has_resources(str(tmp_path), {}) is False  # the state is the backend's


def test_a_fork_server_removes_what_killed_ones_left_and_nothing_else(terraform):
    """A fork server killed with SIGKILL leaves its socket, lock and command directory; the
    next fork server of the user removes them, but not the files of a live server (its lock
    is held) or of one that is starting (its lock is new)."""
    import fcntl
    import time

    from raydog import fork_server

    tf = terraform()
    directory = tf.run_dir / f"raydog-provider-{os.getuid()}"
    directory.mkdir(mode=0o700)
    old = time.time() - fork_server.LEFTOVER_AGE_SECONDS - 10
    for key in ("killed", "alive", "starting"):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
            listener.bind(str(directory / f"{key}.sock"))
        (directory / f"{key}.lock").touch()
        (directory / f"{key}.d").mkdir()
        (directory / f"{key}.d" / "credentials-0123").touch()
        if key != "starting":
            os.utime(directory / f"{key}.lock", (old, old))
    (directory / "killed.sock.4242").touch()  # a socket the killed server was binding
    held = os.open(directory / "alive.lock", os.O_RDWR)
    try:
        fcntl.flock(held, fcntl.LOCK_EX)
        tf.launch_and_call("schema")
        wait_until(lambda: sorted(p.name for p in directory.glob("killed*")), "the killed server's files are gone",
                   until=lambda left: left == [])
        left = {p.name for p in directory.iterdir()}
        assert {"alive.sock", "alive.lock", "alive.d", "starting.sock", "starting.lock", "starting.d"} <= left
    finally:
        os.close(held)


def test_the_server_renders_the_node_scripts_between_launches_each_once(monkeypatch):
    """After it binds, the fork server renders the built-in node scripts one step at a time
    (a plan of node resources needs them); a process renders each once, however many node
    resources plan at once."""
    import threading
    import time

    from raydog import fork_server, node_scripts
    from raydog.lifecycle import scripts

    calls = []

    def render(template, values):
        calls.append(template)
        time.sleep(0.05)  # long enough for every thread below to ask meanwhile
        return f"#!/bin/bash\n# {template}\n"

    monkeypatch.setattr(node_scripts, "render_builtin", render)
    monkeypatch.setattr(scripts, "_rendered", {})
    threads = [threading.Thread(target=scripts.default_script, args=("worker",)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls == ["worker"]

    steps = fork_server.between_launches()
    assert len(steps) == len(scripts.NODE_DEFAULT_TEMPLATES)
    for step in steps:
        step()
    assert sorted(calls) == sorted(scripts.NODE_DEFAULT_TEMPLATES)  # each once: worker was rendered already
    assert scripts.default_script("head") == "#!/bin/bash\n# head\n"
