"""Exec mode: every node is an isolated local node, every task a real ``bash taskdata.txt``.

Each node is a process tree under ``unshare --pid --mount --uts --net --fork --mount-proc``
whose PID 1 is the node agent (``node_agent.py``). The node therefore has:

- its own PID namespace and /proc, so ``ray stop`` on one node sees only that node's
  processes, and killing the agent (PID 1) kills everything in the node;
- its own mount namespace: private /tmp (Ray's session dir and sockets) and /dev/shm
  (Ray's object store), the Ray virtual environment at ``/opt/yellowdog/agent/venv``,
  the agent's home at ``/opt/yellowdog/agent`` and task working directories under
  ``/var/opt/yellowdog/agent/data/workers``, as on a YellowDog node; the host's own
  /opt is never touched, and everything but the node's own directory is read-only;
- its own hostname (the node's, resolving to its private IP through a per-node
  /etc/hosts);
- its own network namespace (``network.py``): its private and public IP on an ``eth0``
  joined to the sandbox's bridge, so a plain ``ray start`` registers the node's private
  IP and Ray's fixed ports (6379, 8265, 52365) never clash between nodes;
- tasks run as ``yd-agent`` (uid 59999), an unprivileged user, as YellowDog's agent
  runs them; userdata runs as the node's root, as cloud-init would.

Where the sandbox cannot make network namespaces (not root, no iproute2), nodes share
the host's network with loopback addresses (127.0.x.y private, 127.1.x.y public), and
say so at start: unmodified scripts then register the wrong IP and clash on ports. For
that fallback only, every task's environment carries ``RAY_NODE_IP_ADDRESS`` and
``RAY_DASHBOARD_AGENT_LISTEN_PORT`` (a free port) for scripts that pass them to
``ray start``. Without root, tasks run as the user namespace's root, which is the
unprivileged user running the sandbox.

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
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path

from .network import LOOPBACK_PLAN, AddressPlan, NetworkError, SandboxNetwork, probe_network
from .node_process import NODE_STOPPED_EXIT_CODE, NodeProcess, child_of, read_tail
from .runtime import ExitCallback, NodeSpec, TaskRun

log = logging.getLogger(__name__)

AGENT_SCRIPT = Path(__file__).with_name("node_agent.py")

# Where a YellowDog node keeps things; the built-in node scripts rely on the venv path.
AGENT_HOME = "/opt/yellowdog/agent"
AGENT_VENV = "/opt/yellowdog/agent/venv"
AGENT_DATA = "/var/opt/yellowdog/agent/data"

# Between Ray's worker ports (10002-19999) and Linux's ephemeral ports (32768-60999).
DASHBOARD_AGENT_PORTS = (20000, 32768)

OUTPUT_MAX_BYTES = 1 << 20

MINIMAL_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# The unprivileged user tasks run as (when the sandbox runs as root), as YellowDog's agent.
TASK_USER = ("yd-agent", 59999, 59999)

# What every node agent adds to a task's environment (besides, when nodes share the
# host's network, RAY_NODE_IP_ADDRESS and RAY_DASHBOARD_AGENT_LISTEN_PORT).
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


def _unshare_command(network: bool = False) -> list[str]:
    command = ["unshare", "--pid", "--mount", "--uts", "--fork", "--mount-proc", "--kill-child"]
    if network:
        command.insert(1, "--net")
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


def node_environment(node: NodeSpec, dashboard_agent_port: int | None) -> dict[str, str]:
    """The node agent's environment: what every task on ``node`` starts from.

    ``dashboard_agent_port`` is given only when nodes share the host's network."""
    environment = {"PATH": MINIMAL_PATH, "HOME": AGENT_HOME, "LANG": "C.UTF-8", **RAY_NODE_ENVIRONMENT}
    if dashboard_agent_port is not None:
        environment["RAY_NODE_IP_ADDRESS"] = node.private_ip
        environment["RAY_DASHBOARD_AGENT_LISTEN_PORT"] = str(dashboard_agent_port)
    return environment


def _port_is_free(ip: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((ip, port))
        except OSError:
            return False
    return True


class ExecRuntime:
    """Runs every node as an isolated local node and every task as ``bash taskdata.txt``.

    ``data_dir`` holds the nodes' directories. ``venv`` is the virtual environment that
    holds Ray, shown to nodes at /opt/yellowdog/agent/venv (default: this interpreter's,
    ``sys.prefix``). Userdata runs at boot only with ``run_userdata=True``.
    ``environment`` adds to (or overrides) every node agent's environment.
    ``network``: True needs per-node network namespaces (error if impossible), False
    shares the host's network, None (default) uses namespaces where possible and says
    so on the log when it cannot (``network_problem``).
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
        network: bool | None = None,
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
        self.network_problem = probe_network() if network is not False else "shared network asked for"
        if network and self.network_problem:
            raise ExecCapabilityError(self.network_problem)
        self.network: SandboxNetwork | None = None
        if self.network_problem is None:
            try:
                self.network = SandboxNetwork()
            except NetworkError as error:
                if network:
                    raise ExecCapabilityError(str(error)) from None
                self.network_problem = str(error)
        if self.network is None and network is None:
            log.warning("exec mode: nodes share the host's network (%s); unmodified node scripts register "
                        "the host's IP and their Ray ports clash", self.network_problem)
        self.task_user = TASK_USER if os.geteuid() == 0 else None
        self._lock = threading.Lock()
        self._nodes: dict[str, NodeProcess] = {}
        self._outputs: dict[str, Path] = {}
        self._task_nodes: dict[str, str] = {}

    @property
    def address_plan(self) -> AddressPlan:
        """The node addresses: the bridge's subnets, or loopback ones on the host's network."""
        return self.network.plan if self.network is not None else LOOPBACK_PLAN

    @property
    def host_address(self) -> str | None:
        """The host's address on the sandbox bridge, which nodes reach (None when nodes share the
        host's network, where the API's own loopback address serves them)."""
        return f"{self.network.plan.private_prefix}.1" if self.network is not None else None

    # -- nodes ---------------------------------------------------------------------------

    def start_node(self, node: NodeSpec) -> None:
        """Boot a node; returns once the node can run tasks (and its userdata, if run, succeeded)."""
        subnet = "127.0.0.0/8" if self.network is None else f"{self.network.plan.private_prefix}.0/24"
        if ipaddress.ip_address(node.private_ip) not in ipaddress.ip_network(subnet):
            raise ValueError(f"node {node.node_id}: private IP {node.private_ip} is not in {subnet}")
        directory = self.data_dir / "nodes" / safe_name(node.node_id)
        with self._lock:
            if node.node_id in self._nodes:
                raise ValueError(f"node {node.node_id} is already running")
            port = None if self.network is not None else self._free_dashboard_agent_port(node.private_ip)
            state = NodeProcess(node, directory, node_environment(node, port), port)
            self._nodes[node.node_id] = state
        try:
            self._boot(state)
            if self.run_userdata and node.userdata:
                self._run_userdata(state)
        except BaseException:
            self.stop_node(node.node_id)
            raise

    def _boot(self, node: NodeProcess) -> None:
        directory = node.directory
        for sub in ("home/venv", "data/workers", "tmp"):
            (directory / sub).mkdir(parents=True, exist_ok=True)
        (directory / "tmp").chmod(0o1777)
        self._give_to_task_user(directory / "home", directory / "data", directory / "data" / "workers")
        # A head's dashboard probes cloud metadata servers (169.254.169.254) unless it
        # finds an autoscaler config in HOME; an empty one stops that.
        bootstrap = directory / "home" / "ray_bootstrap_config.yaml"
        if not bootstrap.exists():
            bootstrap.write_text("# raydog sandbox: keeps Ray from probing cloud metadata servers\n{}\n")
        # The node's hostname resolves to its private IP, as on a cloud VM, without DNS.
        hosts = Path("/etc/hosts").read_text() if Path("/etc/hosts").exists() else "127.0.0.1\tlocalhost\n"
        (directory / "hosts").write_text(f"{hosts.rstrip()}\n{node.spec.private_ip}\t{node.spec.hostname}\n")
        self._write_accounts(directory)
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
            "accounts": [[str(directory / name), f"/etc/{name}"] for name in ("passwd", "group")]
            if self.task_user else [],
            "task_user": list(self.task_user[1:]) if self.task_user else None,
            "writable": [AGENT_HOME, AGENT_DATA, "/tmp", "/dev/shm"],
            "read_only": [AGENT_VENV, *self._paths_kept_under_tmp(), *self._python_home()],
            "expose": self._python_home() if self.task_user else [],
        }
        with open(directory / "agent.log", "ab") as agent_log:
            node.process = subprocess.Popen(
                [*_unshare_command(self.network is not None), sys.executable, "-I", str(AGENT_SCRIPT),
                 json.dumps(config)],
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
        node.init_pid = child_of(node.process.pid)
        if self.network is not None:
            if node.init_pid is None:
                raise NodeBootError(f"node {node.spec.node_id}: its PID 1 is gone")
            try:
                node.link = self.network.attach(node.init_pid, node.spec.private_ip, node.spec.public_ip)
            except NetworkError as error:
                raise NodeBootError(f"node {node.spec.node_id}: {error}") from None

    def _give_to_task_user(self, *paths: Path) -> None:
        if self.task_user is not None:
            for path in paths:
                os.chown(path, self.task_user[1], self.task_user[2])

    def _write_accounts(self, directory: Path) -> None:
        """/etc/passwd and /etc/group of the node: the host's, plus the task user."""
        if self.task_user is None:
            return
        name, uid, gid = self.task_user
        for file, line in (("passwd", f"{name}:x:{uid}:{gid}:YellowDog agent:{AGENT_HOME}:/bin/bash"),
                           ("group", f"{name}:x:{gid}:")):
            host = Path("/etc") / file
            text = host.read_text() if host.exists() else ""
            (directory / file).write_text(f"{text.rstrip()}\n{line}\n".lstrip())

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

    def _python_home(self) -> list[str]:
        """The installation the venv's python links to (pyenv's under /root, say), unless under /tmp."""
        home = os.path.dirname(os.path.dirname(os.path.realpath(self.venv / "bin" / "python")))
        return [] if home.startswith("/tmp/") or home in ("/", "/usr") else [home]

    def _paths_kept_under_tmp(self) -> list[str]:
        """Host paths the node needs that a private /tmp would hide (a venv created in /tmp)."""
        python = os.path.realpath(self.venv / "bin" / "python")
        paths = {str(self.venv), os.path.realpath(self.venv), os.path.dirname(os.path.dirname(python))}
        return sorted(p for p in paths if p.startswith("/tmp/"))

    def _run_userdata(self, node: NodeProcess) -> None:
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
                "as_root": True,
            }
        )
        if not sent or not done.wait(self.userdata_timeout):
            raise NodeBootError(
                f"node {node.spec.node_id}: userdata did not finish within {self.userdata_timeout:.0f} s "
                f"(output: {output})"
            )
        if result[0] != 0:
            last = (read_tail(output, 300).strip().splitlines() or [""])[-1]
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
        try:
            node.terminate()
        finally:
            if self.network is not None and node.link is not None:
                self.network.detach(node.link)
        node.finish_all(NODE_STOPPED_EXIT_CODE)

    def close(self) -> None:
        """Stop every node; after this no process of the runtime is left."""
        with self._lock:
            node_ids = list(self._nodes)
        for node_id in node_ids:
            self.stop_node(node_id)
        if self.network is not None:
            self.network.close()

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
            self._give_to_task_user(workdir, workdir / "taskdata.txt", workdir / "taskoutput.txt")
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
        return None if output is None else read_tail(output, OUTPUT_MAX_BYTES)
