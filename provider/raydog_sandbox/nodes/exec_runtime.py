"""Exec mode: every node is an isolated local node, every task a real ``bash taskdata.txt``.

Each node is a process tree under ``unshare --pid --mount --uts --fork --mount-proc``
whose PID 1 is the node agent (``node_agent.py``). The node therefore has:

- its own PID namespace and /proc, so ``ray stop`` on one node sees only that node's
  processes, and killing the agent (PID 1) kills everything in the node;
- its own mount namespace: private /tmp (Ray's session dir and sockets) and /dev/shm
  (Ray's object store), the Ray virtual environment at ``/opt/yellowdog/agent/venv``,
  the agent's home at ``/opt/yellowdog/agent`` and task working directories under
  ``/var/opt/yellowdog/agent/data/workers``, as on a YellowDog node; the host's own
  /opt is never touched;
- its own hostname (the node's, resolving to its private IP through a per-node
  /etc/hosts), and its own loopback IP (the node's private IP, in 127.0.0.0/8) in the
  host's network namespace.

Nodes share the host's network, so a node script must tell Ray which address and which
dashboard-agent port are the node's (both are harmless no-ops on a real YellowDog node,
where the variables are unset)::

    ray start ... ${RAY_NODE_IP_ADDRESS:+--node-ip-address=$RAY_NODE_IP_ADDRESS} \\
        ${RAY_DASHBOARD_AGENT_LISTEN_PORT:+--dashboard-agent-listen-port=$RAY_DASHBOARD_AGENT_LISTEN_PORT}

Without the second flag every node's dashboard agent wants 127.0.0.1:52365: all but the
first run without their HTTP service. Head ports (6379 for the GCS on all interfaces,
10001 on 127.0.0.1, 8265) leave room for one head per port set on the machine.

On the host a node lives in ``<data dir>/nodes/<node id>/``: ``home/``, ``data/``
(``data/workers/<task id>/{taskdata.txt,taskoutput.txt}``), ``tmp/`` and ``agent.log``.
The agent reads commands on its stdin; when the sandbox exits or dies, that pipe closes,
the agent ends, and the kernel kills every process of the node.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import logging
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path

from .runtime import ExitCallback, NodeSpec, TaskRun

log = logging.getLogger(__name__)

AGENT_SCRIPT = Path(__file__).with_name("node_agent.py")

# Where a YellowDog node keeps things; the built-in node scripts rely on the venv path.
AGENT_HOME = "/opt/yellowdog/agent"
AGENT_VENV = "/opt/yellowdog/agent/venv"
AGENT_DATA = "/var/opt/yellowdog/agent/data"

# A task still running when its node is stopped ends by SIGKILL, as bash would report it.
NODE_STOPPED_EXIT_CODE = 128 + signal.SIGKILL

# Between Ray's worker ports (10002-19999) and Linux's ephemeral ports (32768-60999).
DASHBOARD_AGENT_PORTS = (20000, 32768)

# How long a node agent may take to exit on its own before it is killed.
AGENT_EXIT_SECONDS = 2.0

OUTPUT_TAIL_BYTES = 4096
OUTPUT_MAX_BYTES = 1 << 20

MINIMAL_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# What every node agent adds to a task's environment, besides RAY_NODE_IP_ADDRESS and
# RAY_DASHBOARD_AGENT_LISTEN_PORT.
RAY_NODE_ENVIRONMENT = {
    # No usage stats phoned home; and the "usage stats are disabled" report that a head
    # still sends goes to a closed local port instead of https://usage-stats.ray.io/.
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_USAGE_STATS_REPORT_URL": "http://127.0.0.1:9/",
    # Object store default: 30% of the host's RAM per node (every node sees all of it);
    # cap it so that a few nodes stay light. An explicit --object-store-memory still wins.
    "RAY_DEFAULT_OBJECT_STORE_MAX_MEMORY_BYTES": str(256 * 1024 * 1024),
    # Every node would watch the host's memory and kill workers on host-wide pressure.
    "RAY_memory_monitor_refresh_ms": "0",
    # gRPC's fork handlers make the head's Ray client server lose about one `ray://`
    # connection in 20 (ray-project/ray#63202); without them we saw none in 80.
    "GRPC_ENABLE_FORK_SUPPORT": "0",
}

CAPABILITY_HINT = (
    "run the sandbox as root, or enable unprivileged user namespaces "
    "(sysctl kernel.unprivileged_userns_clone=1 and user.max_user_namespaces>0), "
    "or use --mode simulate"
)


class ExecCapabilityError(RuntimeError):
    """This machine cannot create the namespaces exec-mode nodes need."""


class NodeBootError(RuntimeError):
    """A node failed to boot (namespace setup or userdata)."""


def _unshare_command() -> list[str]:
    command = ["unshare", "--pid", "--mount", "--uts", "--fork", "--mount-proc", "--kill-child"]
    if os.geteuid() != 0:
        command[1:1] = ["--user", "--map-root-user"]
    return command


@functools.cache
def _exec_capability_problem() -> str | None:
    if sys.platform != "linux":
        return f"exec mode needs Linux namespaces and this is {sys.platform}: use --mode simulate"
    if shutil.which("unshare") is None:
        return "exec mode needs the unshare command (util-linux): install util-linux, or use --mode simulate"
    try:
        probe = subprocess.run(
            [*_unshare_command(), "true"],
            check=False,
            capture_output=True,
            text=True,
            timeout=30,
            env={"PATH": MINIMAL_PATH},
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"exec mode cannot create namespaces ({exc}): {CAPABILITY_HINT}"
    if probe.returncode != 0:
        reason = (probe.stderr.strip().splitlines() or ["unshare failed"])[-1]
        return f"exec mode cannot create PID and mount namespaces ({reason}): {CAPABILITY_HINT}"
    return None


def check_exec_capability() -> None:
    """Raise ExecCapabilityError (one line saying what to do) when exec-mode nodes cannot run here."""
    problem = _exec_capability_problem()
    if problem is not None:
        raise ExecCapabilityError(problem)


def safe_name(identifier: str) -> str:
    """A file name for a YellowDog id: ':' (and anything else unusual) becomes '_'."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", identifier)


def node_environment(node: NodeSpec, dashboard_agent_port: int) -> dict[str, str]:
    """The node agent's environment: what every task on ``node`` starts from."""
    return {
        "PATH": MINIMAL_PATH,
        "HOME": AGENT_HOME,
        "LANG": "C.UTF-8",
        "RAY_NODE_IP_ADDRESS": node.private_ip,
        "RAY_DASHBOARD_AGENT_LISTEN_PORT": str(dashboard_agent_port),
        **RAY_NODE_ENVIRONMENT,
    }


def _port_is_free(ip: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((ip, port))
        except OSError:
            return False
    return True


def _read_tail(path: Path, size: int) -> str:
    try:
        with open(path, "rb") as output:
            output.seek(0, os.SEEK_END)
            output.seek(max(0, output.tell() - size))
            return output.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def _child_of(parent: int) -> int | None:
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                if int(stat.read().rsplit(b")", 1)[1].split()[1]) == parent:
                    return int(entry)
        except (OSError, IndexError, ValueError):
            continue
    return None


def _call(on_exit: ExitCallback, code: int, tail: str) -> None:
    try:
        on_exit(code, tail)
    except Exception:
        log.exception("on_exit callback failed")


class _Node:
    """One running node: its unshare process, its agent's pipes, its running tasks."""

    def __init__(self, spec: NodeSpec, directory: Path, dashboard_agent_port: int) -> None:
        self.spec = spec
        self.directory = directory
        self.environment = node_environment(spec, dashboard_agent_port)
        self.dashboard_agent_port = dashboard_agent_port
        self.process: subprocess.Popen | None = None
        self.init_pid: int | None = None
        self.booted = threading.Event()
        self.boot_error: str | None = None
        self.running: dict[str, tuple[ExitCallback, Path]] = {}
        self.lock = threading.Lock()
        self.reader: threading.Thread | None = None

    def send(self, command: dict) -> bool:
        line = (json.dumps(command) + "\n").encode()
        with self.lock:
            if self.process is None or self.process.stdin is None or self.process.stdin.closed:
                return False
            try:
                self.process.stdin.write(line)
                self.process.stdin.flush()
            except (BrokenPipeError, ValueError):
                return False
        return True

    def finish(self, task_id: str, code: int) -> None:
        with self.lock:
            entry = self.running.pop(task_id, None)
        if entry is not None:
            on_exit, output = entry
            _call(on_exit, code, _read_tail(output, OUTPUT_TAIL_BYTES))

    def finish_all(self, code: int) -> None:
        with self.lock:
            task_ids = list(self.running)
        for task_id in task_ids:
            self.finish(task_id, code)

    def read_events(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("event") == "exited":
                self.finish(event["id"], int(event["code"]))
            elif event.get("event") == "ready":
                self.booted.set()
            elif event.get("event") == "error":
                self.boot_error = event.get("message", "unknown error")
                self.booted.set()
        # The agent is gone, and so is every process of the node.
        self.process.wait()
        if not self.booted.is_set():
            self.boot_error = f"the node agent exited with code {self.process.returncode}"
            self.booted.set()
        self.finish_all(NODE_STOPPED_EXIT_CODE)

    def terminate(self, timeout: float = 60.0) -> None:
        """End the node's PID 1, which ends all of the node; return when nothing is left.

        Closing the agent's stdin makes it exit; if it does not at once (it may be blocked
        writing events), it is SIGKILLed. Either way unshare reaps PID 1, and the kernel
        lets PID 1 be reaped only once every other process of the namespace is gone."""
        process = self.process
        if process is None:
            return
        init_pid = self.init_pid or _child_of(process.pid)
        with self.lock:
            if process.stdin is not None:
                process.stdin.close()
        try:
            process.wait(AGENT_EXIT_SECONDS)
        except subprocess.TimeoutExpired:
            try:
                if init_pid is not None:
                    os.kill(init_pid, signal.SIGKILL)
                else:
                    process.kill()  # unshare has not forked PID 1 yet
            except ProcessLookupError:
                pass
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                raise RuntimeError(
                    f"node {self.spec.node_id}: its processes did not exit within {timeout:.0f} s"
                ) from None
        if self.reader is not None and self.reader is not threading.current_thread():
            self.reader.join(timeout)


class ExecRuntime:
    """Runs every node as an isolated local node and every task as ``bash taskdata.txt``.

    ``data_dir`` holds the nodes' directories. ``venv`` is the virtual environment that
    holds Ray, shown to nodes at /opt/yellowdog/agent/venv (default: this interpreter's,
    ``sys.prefix``). Userdata runs at boot only with ``run_userdata=True``.
    ``environment`` adds to (or overrides) every node agent's environment.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        venv: str | os.PathLike[str] | None = None,
        run_userdata: bool = False,
        userdata_timeout: float = 900.0,
        boot_timeout: float = 60.0,
        environment: Mapping[str, str] | None = None,
        shm_size: str = "50%",
    ) -> None:
        check_exec_capability()
        self.data_dir = Path(data_dir).absolute()
        self.venv = Path(venv if venv is not None else sys.prefix).absolute()
        if not (self.venv / "bin" / "python").exists():
            raise ValueError(
                f"venv {self.venv} has no bin/python: pass the virtual environment that holds Ray"
            )
        self.run_userdata = run_userdata
        self.userdata_timeout = userdata_timeout
        self.boot_timeout = boot_timeout
        self.environment = dict(environment or {})
        self.shm_size = shm_size
        self._lock = threading.Lock()
        self._nodes: dict[str, _Node] = {}
        self._outputs: dict[str, Path] = {}
        self._task_nodes: dict[str, str] = {}

    # -- nodes ---------------------------------------------------------------------------

    def start_node(self, node: NodeSpec) -> None:
        """Boot a node; returns once the node can run tasks (and its userdata, if run, succeeded)."""
        if ipaddress.ip_address(node.private_ip) not in ipaddress.ip_network("127.0.0.0/8"):
            raise ValueError(f"node {node.node_id}: private IP {node.private_ip} is not in 127.0.0.0/8")
        directory = self.data_dir / "nodes" / safe_name(node.node_id)
        with self._lock:
            if node.node_id in self._nodes:
                raise ValueError(f"node {node.node_id} is already running")
            state = _Node(node, directory, self._free_dashboard_agent_port(node.private_ip))
            self._nodes[node.node_id] = state
        try:
            self._boot(state)
            if self.run_userdata and node.userdata:
                self._run_userdata(state)
        except BaseException:
            self.stop_node(node.node_id)
            raise

    def _boot(self, node: _Node) -> None:
        directory = node.directory
        for sub in ("home/venv", "data/workers", "tmp"):
            (directory / sub).mkdir(parents=True, exist_ok=True)
        (directory / "tmp").chmod(0o1777)
        # A head's dashboard probes cloud metadata servers (169.254.169.254) unless it
        # finds an autoscaler config in HOME; an empty one stops that.
        bootstrap = directory / "home" / "ray_bootstrap_config.yaml"
        if not bootstrap.exists():
            bootstrap.write_text("# raydog sandbox: keeps Ray from probing cloud metadata servers\n{}\n")
        # The node's hostname resolves to its private IP, as on a cloud VM, without DNS.
        hosts = Path("/etc/hosts").read_text() if Path("/etc/hosts").exists() else "127.0.0.1\tlocalhost\n"
        (directory / "hosts").write_text(f"{hosts.rstrip()}\n{node.spec.private_ip}\t{node.spec.hostname}\n")
        config = {
            "grafts": [
                [str(directory / "home"), AGENT_HOME],
                [str(self.venv), AGENT_VENV],
                [str(directory / "data"), AGENT_DATA],
            ],
            "tmp": str(directory / "tmp"),
            "keep_visible": self._paths_kept_under_tmp(),
            "shm_size": self.shm_size,
            "hostname": node.spec.hostname,
            "hosts": str(directory / "hosts"),
        }
        with open(directory / "agent.log", "ab") as agent_log:
            node.process = subprocess.Popen(
                [*_unshare_command(), sys.executable, "-I", str(AGENT_SCRIPT), json.dumps(config)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=agent_log,
                env={"PATH": MINIMAL_PATH, "LANG": "C.UTF-8"},
                cwd="/",
            )
        node.reader = threading.Thread(
            target=node.read_events, name=f"raydog-node-{node.spec.hostname}", daemon=True
        )
        node.reader.start()
        if not node.booted.wait(self.boot_timeout):
            raise NodeBootError(f"node {node.spec.node_id} did not boot within {self.boot_timeout:.0f} s")
        if node.boot_error is not None:
            raise NodeBootError(
                f"node {node.spec.node_id} failed to boot: {node.boot_error} (see {directory / 'agent.log'})"
            )
        node.init_pid = _child_of(node.process.pid)

    def _free_dashboard_agent_port(self, ip: str) -> int:
        """A port for this node's Ray dashboard agent, free on its IP and on 127.0.0.1.

        Ray's dashboard agent listens on the node's IP *and* 127.0.0.1 at one fixed port
        (52365): nodes sharing the host's network would collide on 127.0.0.1."""
        taken = {node.dashboard_agent_port for node in self._nodes.values()}
        candidates = list(range(*DASHBOARD_AGENT_PORTS))
        random.shuffle(candidates)
        for port in candidates:
            if port not in taken and _port_is_free(ip, port) and _port_is_free("127.0.0.1", port):
                return port
        raise NodeBootError(f"no free port for the Ray dashboard agent in {DASHBOARD_AGENT_PORTS}")

    def _paths_kept_under_tmp(self) -> list[str]:
        """Host paths the node needs that a private /tmp would hide (a venv created in /tmp)."""
        python = os.path.realpath(self.venv / "bin" / "python")
        paths = {str(self.venv), os.path.realpath(self.venv), os.path.dirname(os.path.dirname(python))}
        return sorted(p for p in paths if p.startswith("/tmp/"))

    def _run_userdata(self, node: _Node) -> None:
        directory = node.directory / "data" / "userdata"
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "userdata.sh").write_text(node.spec.userdata or "")
        output = directory / "userdata.log"
        output.write_bytes(b"")
        result: list[int] = []
        done = threading.Event()

        def on_exit(code: int, _tail: str) -> None:
            result.append(code)
            done.set()

        task_id = f"userdata:{node.spec.node_id}"
        with node.lock:
            node.running[task_id] = (on_exit, output)
        sent = node.send(
            {
                "op": "run",
                "id": task_id,
                "argv": ["bash", "userdata.sh"],
                "cwd": f"{AGENT_DATA}/userdata",
                "env": {**node.environment, **self.environment},
                "output": f"{AGENT_DATA}/userdata/userdata.log",
            }
        )
        if not sent or not done.wait(self.userdata_timeout):
            raise NodeBootError(
                f"node {node.spec.node_id}: userdata did not finish within {self.userdata_timeout:.0f} s "
                f"(output: {output})"
            )
        if result[0] != 0:
            last = (_read_tail(output, 300).strip().splitlines() or [""])[-1]
            raise NodeBootError(
                f"node {node.spec.node_id}: userdata failed with exit code {result[0]}: {last!r} (output: {output})"
            )

    def stop_node(self, node_id: str) -> None:
        """End every process of the node; returns when none is left.

        Tasks still running on it report exit code 137 (SIGKILL) through their on_exit."""
        with self._lock:
            node = self._nodes.pop(node_id, None)
        if node is None:
            return
        node.terminate()
        node.finish_all(NODE_STOPPED_EXIT_CODE)

    def close(self) -> None:
        """Stop every node; after this no process of the runtime is left."""
        with self._lock:
            node_ids = list(self._nodes)
        for node_id in node_ids:
            self.stop_node(node_id)

    # -- tasks ---------------------------------------------------------------------------

    def run_task(self, run: TaskRun, on_exit: ExitCallback) -> None:
        """Start ``bash taskdata.txt <arguments>`` on the task's node and return at once.

        Raises (the task could not start) for a task type other than "bash", a node that
        is not running, or a task that is already running. A task may run again (a retry)
        once its previous run has ended: it gets a fresh working directory."""
        if run.task_type != "bash":
            raise ValueError(f"task type {run.task_type!r} is not supported by exec-mode nodes (only 'bash')")
        with self._lock:
            node = self._nodes.get(run.node_id)
            if node is None:
                raise RuntimeError(f"node {run.node_id} is not running")
            previous = self._nodes.get(self._task_nodes.get(run.task_id, ""))
            if previous is not None and run.task_id in previous.running:
                raise ValueError(f"task {run.task_id} is already running")
            workdir = node.directory / "data" / "workers" / safe_name(run.task_id)
            self._outputs[run.task_id] = workdir / "taskoutput.txt"
            self._task_nodes[run.task_id] = run.node_id
            with node.lock:
                node.running[run.task_id] = (on_exit, workdir / "taskoutput.txt")
        try:
            shutil.rmtree(workdir, ignore_errors=True)
            workdir.mkdir(parents=True)
            (workdir / "taskdata.txt").write_text(run.task_data or "")
            (workdir / "taskoutput.txt").write_bytes(b"")
            sent = node.send(
                {
                    "op": "run",
                    "id": run.task_id,
                    "argv": ["bash", "taskdata.txt", *run.arguments],
                    "cwd": f"{AGENT_DATA}/workers/{workdir.name}",
                    "env": {**node.environment, **self.environment, **run.environment},
                    "output": f"{AGENT_DATA}/workers/{workdir.name}/taskoutput.txt",
                }
            )
        except BaseException:
            with node.lock:
                node.running.pop(run.task_id, None)
            raise
        if not sent:
            with node.lock:
                if node.running.pop(run.task_id, None) is None:
                    return  # the node died meanwhile, and has reported the task's end
            raise RuntimeError(f"node {run.node_id} is not running")

    def abort_task(self, task_id: str, grace_seconds: float = 10.0) -> None:
        """SIGTERM the task's bash (its EXIT trap runs), then SIGKILL its processes.

        They are killed when bash ends, or after ``grace_seconds`` if it has not."""
        with self._lock:
            node = self._nodes.get(self._task_nodes.get(task_id, ""))
        if node is not None:
            node.send({"op": "abort", "id": task_id, "grace": grace_seconds})

    def task_output(self, task_id: str) -> str | None:
        """The task's taskoutput.txt (its last MiB), or None for a task this runtime never ran."""
        with self._lock:
            output = self._outputs.get(task_id)
        return None if output is None else _read_tail(output, OUTPUT_MAX_BYTES)
