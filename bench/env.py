"""The bench's moving parts: the installed provider, a sandbox process, timed Terraform runs.

The provider is installed with ``raydog install`` into a private filesystem mirror and
Terraform finds it through a CLI config, exactly as the test harness does (tests/harness/
terraform.py is reused). The sandbox runs as its own process (``python -m raydog_sandbox``) so that
its HTTP server never shares a GIL with the bench, Terraform or the provider.
"""

from __future__ import annotations

import json
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import psutil
from harness.processes import served_terraform
from harness.terraform import Terraform, terraform_command, write_cli_config

from bench import REPO

PROVIDER_MARKERS = ("raydog.plugin", "terraform-provider-raydog")

# `raydog install` run from another copy of the provider's code (e.g. a git ref, to compare).
_INSTALL_FROM_SOURCE = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
try:
    import raydog.packaging.install as installer  # the release artifact, built from that copy
except ImportError:
    import raydog.install as installer  # before the release artifact: a launcher and the code
assert Path(installer.__file__).resolve().is_relative_to(Path(sys.argv[1]).resolve()), installer.__file__
installer.install(Path(sys.argv[2]))
"""


CHECKOUT_PATHS = ("provider", "scripts", "terraform", "examples")


def checkout(ref: str, destination: Path) -> Path:
    """The provider's code, node scripts, module and examples at git ``ref``, laid out as in
    the repository under ``destination`` (which is returned)."""
    destination.mkdir(parents=True, exist_ok=True)
    present = subprocess.run(
        ["git", "-C", str(REPO), "ls-tree", "--name-only", ref], check=True, capture_output=True, text=True
    ).stdout.split()
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", ref, *[p for p in CHECKOUT_PATHS if p in present]],
        check=True,
        capture_output=True,
    )
    subprocess.run(["tar", "-x", "-C", str(destination)], input=archive.stdout, check=True)
    return destination


@dataclass
class BenchEnv:
    """A private Terraform home: the provider mirror, the CLI config and a plugin cache-free env."""

    root: Path
    env: dict[str, str] = field(default_factory=dict)
    mirror: Path | None = None

    @classmethod
    def create(cls, root: Path, provider_source: Path | None = None) -> BenchEnv:
        """Install the provider (from this checkout, or from ``provider_source``: a directory
        holding a ``raydog`` package, laid out like the repository's ``provider/``)."""
        root.mkdir(parents=True, exist_ok=True)
        become_subreaper()
        mirror = root / "mirror"
        if provider_source is None:
            command = [sys.executable, "-m", "raydog.cli", "install", "--dir", str(mirror)]
        else:
            command = [sys.executable, "-c", _INSTALL_FROM_SOURCE, str(provider_source), str(mirror)]
        subprocess.run(command, check=True, capture_output=True, text=True)
        home = root / "home"
        home.mkdir(exist_ok=True)
        cli_config = write_cli_config(home / "terraformrc", mirror)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "YD_"))}
        env.update(
            TF_CLI_CONFIG_FILE=str(cli_config), TF_IN_AUTOMATION="1", CHECKPOINT_DISABLE="1", HOME=str(home)
        )
        return cls(root, env, mirror)

    def launcher(self) -> Path:
        """The provider executable Terraform runs (the mirror's launcher script)."""
        return next(
            self.mirror.glob("registry.terraform.io/yellowdog/raydog/*/*/terraform-provider-raydog_v*")
        )

    def workdir(self, name: str, sandbox: SandboxProcess | None = None) -> Terraform:
        env = dict(self.env)
        if sandbox is not None:
            env.update(
                YD_API_URL=sandbox.url, YD_API_KEY_ID=sandbox.key_id, YD_API_KEY_SECRET=sandbox.key_secret
            )
        return Terraform(self.root / "work" / name, env)


class SandboxProcess:
    """``python -m raydog_sandbox`` in its own process; ``url`` is ready when the constructor returns.

    Its application key is made here and given through the environment (never on the
    command line, where ``ps`` shows it).
    """

    key_id = "bench"

    def __init__(
        self,
        mode: str = "simulate",
        provision_delay: float = 0.0,
        task_start_delay: float = 0.0,
        data_dir: Path | None = None,
        ready_timeout: float = 60.0,
    ) -> None:
        args = [
            sys.executable,
            "-m",
            "raydog_sandbox",
            "--port",
            "0",
            "--mode",
            mode,
            "--provision-delay",
            str(provision_delay),
            "--task-start-delay",
            str(task_start_delay),
        ]
        if data_dir is not None:
            args += ["--data-dir", str(data_dir)]
        self.mode = mode
        self.key_secret = secrets.token_urlsafe(24)
        env = dict(os.environ, RAYDOG_SANDBOX_API_KEY_ID=self.key_id, RAYDOG_SANDBOX_API_KEY_SECRET=self.key_secret)
        # stderr goes to a file: a pipe nobody reads would block the sandbox once it filled up.
        self._stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=self._stderr, text=True, start_new_session=True, env=env
        )
        self.url = self._read_url(ready_timeout)

    def _read_url(self, timeout: float) -> str:
        found: dict[str, str] = {}
        reader = threading.Thread(
            target=lambda: found.setdefault("line", self.proc.stdout.readline()), daemon=True
        )
        reader.start()
        reader.join(timeout)
        line = found.get("line", "").strip()
        if not line.startswith("http"):
            self.stop(keep_stderr=True)
            self._stderr.seek(0)
            error = self._stderr.read()[-2000:]
            self._stderr.close()
            raise RuntimeError(f"raydog sandbox --mode {self.mode} did not start: {line or error.strip()}")
        return line

    def _sandbox(self, method: str, path: str) -> dict:
        request = urllib.request.Request(
            f"{self.url}/sandbox/v1{path}", method=method, data=b"" if method == "POST" else None,
            headers={"Authorization": f"yd-key {self.key_id}:{self.key_secret}"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def requests(self) -> dict:
        """{"total": n, "routes": {"GET /workerPools/{id}": n, ...}} since the last reset."""
        return self._sandbox("GET", "/requests")

    def reset_requests(self) -> None:
        self._sandbox("POST", "/requests/reset")

    def state(self) -> dict:
        return self._sandbox("GET", "/state")

    def cpu_seconds(self) -> float:
        """User + system CPU the sandbox process has used so far (all its threads)."""
        times = psutil.Process(self.proc.pid).cpu_times()
        return times.user + times.system

    def stop(self, keep_stderr: bool = False) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
        if not keep_stderr:
            self._stderr.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


# The provider's fork server (raydog.launcher), which later launches fork from, and its children
# leave Terraform's process tree (it is started in a session of its own), so the bench process
# is made a child subreaper: they become its children when their parent exits, and it reaps
# them (their CPU then counts in RUSAGE_CHILDREN) after each run.
PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> None:
    """Orphaned descendants (the provider's fork servers) become this process's children."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def _fork_server_of(process: psutil.Process) -> int | None:
    """The Terraform pid a fork server serves, or None if the process is not a fork server
    (or is gone)."""
    try:
        return served_terraform(process.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


def _is_fork_server(process: psutil.Process) -> bool:
    return _fork_server_of(process) is not None


def fork_servers(terraform_pid: int | None = None) -> list[psutil.Process]:
    """This process's children that are fork servers (of ``terraform_pid``, or of any)."""
    found = []
    for child in psutil.Process().children():
        served = _fork_server_of(child)
        if served is not None and terraform_pid in (None, served):
            found.append(child)
    return found


def reap_fork_servers(terraform_pid: int | None = None, timeout: float = 30.0) -> int:
    """Wait for the fork servers of ``terraform_pid`` (or every one) that are this process's
    children (they exit once their Terraform has) and reap them, so their CPU and their
    children's is counted; how many."""
    reaped = 0
    deadline = time.monotonic() + timeout
    while True:
        servers = fork_servers(terraform_pid)
        if not servers:
            return reaped
        for server in servers:
            try:
                os.waitpid(server.pid, 0 if time.monotonic() < deadline else os.WNOHANG)
                reaped += 1
            except ChildProcessError:
                pass
        if time.monotonic() >= deadline:
            raise RuntimeError(f"fork servers still running {timeout:g} s after their Terraform: "
                               f"{[s.pid for s in servers]}")


class ProviderWatch:
    """Polls the provider processes of a Terraform run: how many started, and their peak RSS.

    It watches every descendant of this process, not only Terraform's: the children of the
    provider's fork server are not in Terraform's tree. A fork server is not a launch.

    Peak RSS is each process's VmHWM (the kernel's high-water mark), read every ``interval``;
    a process that grows in its last ``interval`` before exiting is under-read by that growth.
    """

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.peaks: dict[int, int] = {}
        self.servers: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="provider-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        root = psutil.Process()
        while not self._stop.is_set():
            try:
                children = root.children(recursive=True)
            except psutil.NoSuchProcess:
                return
            for child in children:
                if child.pid not in self.peaks and not _is_provider(child):
                    continue
                if child.pid not in self.peaks and _is_fork_server(child):
                    self.servers.add(child.pid)
                peak = _peak_rss(child.pid)
                if peak is not None:
                    self.peaks[child.pid] = max(peak, self.peaks.get(child.pid, 0))
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    @property
    def launches(self) -> int:
        return len(set(self.peaks) - self.servers)

    @property
    def peak_rss_mb(self) -> float | None:
        return round(max(self.peaks.values()) / 2**20, 1) if self.peaks else None


def _is_provider(process: psutil.Process) -> bool:
    """A provider process: the release executable (``terraform-provider-raydog_v*``, what
    ``raydog install`` lays out), or Python running ``raydog.plugin`` from an older launcher
    (not that launcher's shell, which carries the provider's name until it execs Python)."""
    try:
        command = " ".join(process.cmdline())
        if "raydog.plugin" in command:
            return True
        if process.name().startswith(PROVIDER_MARKERS[1]):
            return True
        return process.name().startswith("python") and PROVIDER_MARKERS[1] in command
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False


def _peak_rss(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return psutil.Process(pid).memory_info().rss
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


@dataclass
class Run:
    """One timed Terraform command."""

    args: list[str]
    seconds: float
    cpu_seconds: float  # user + system CPU of Terraform and every provider process it ran
    returncode: int
    stdout: str
    stderr: str
    provider_launches: int
    provider_peak_rss_mb: float | None

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


class CommandFailed(RuntimeError):
    pass


def timed(
    tf: Terraform, *args: str, ok: tuple[int, ...] = (0,), timeout: float = 600, wrap: list[str] | None = None
) -> Run:
    """Run ``terraform ARGS`` in ``tf``'s directory; wall time from launch to exit, with provider stats.

    ``wrap`` prefixes the command (a profiler such as ``py-spy record --``).
    """
    cpu_before = _children_cpu()
    started = time.perf_counter()
    proc = subprocess.Popen(
        [*(wrap or []), *terraform_command(), *args],
        cwd=tf.workdir,
        env=tf.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    watch = ProviderWatch()
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        stdout, stderr = proc.communicate()
        raise CommandFailed(
            f"terraform {' '.join(args)} timed out after {timeout}s\n{stdout[-3000:]}\n{stderr[-3000:]}"
        )
    finally:
        watch.stop()
    seconds = time.perf_counter() - started
    reap_fork_servers(proc.pid)
    cpu = _children_cpu() - cpu_before
    run = Run(list(args), seconds, cpu, proc.returncode, stdout, stderr, watch.launches, watch.peak_rss_mb)
    if proc.returncode not in ok:
        raise CommandFailed(
            f"terraform {' '.join(args)} exited {proc.returncode}\n{stdout[-3000:]}\n{stderr[-3000:]}"
        )
    return run


def _children_cpu() -> float:
    """CPU time of every reaped descendant: Terraform reaps its providers, we reap Terraform."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


AUTO = ("-input=false", "-no-color")


def init(tf: Terraform) -> Run:
    return timed(tf, "init", *AUTO)


def apply(tf: Terraform, parallelism: int = 10, wrap: list[str] | None = None) -> Run:
    return timed(tf, "apply", "-auto-approve", *AUTO, f"-parallelism={parallelism}", wrap=wrap)


def plan_no_change(tf: Terraform, parallelism: int = 10, wrap: list[str] | None = None) -> Run:
    """``plan -detailed-exitcode`` with refresh; it must find nothing to change."""
    run = timed(tf, "plan", *AUTO, "-detailed-exitcode", f"-parallelism={parallelism}", ok=(0, 2), wrap=wrap)
    if run.returncode != 0:
        raise CommandFailed(f"the plan after apply was not empty:\n{run.stdout[-3000:]}")
    return run


def destroy(tf: Terraform, parallelism: int = 10, wrap: list[str] | None = None) -> Run:
    return timed(tf, "destroy", "-auto-approve", *AUTO, f"-parallelism={parallelism}", wrap=wrap)


__all__ = [
    "BenchEnv",
    "CommandFailed",
    "ProviderWatch",
    "Run",
    "SandboxProcess",
    "apply",
    "destroy",
    "init",
    "plan_no_change",
    "terraform_command",
    "timed",
]
