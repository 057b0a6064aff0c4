"""One running exec-mode node as the runtime sees it: its ``unshare`` process, its
agent's pipes and its running tasks (``exec_runtime.ExecRuntime`` owns the nodes)."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import threading
from pathlib import Path

from .runtime import ExitCallback, NodeSpec

log = logging.getLogger(__name__)

# A task still running when its node is stopped ends by SIGKILL, as bash would report it.
NODE_STOPPED_EXIT_CODE = 128 + signal.SIGKILL

# How long a node agent may take to exit on its own before it is killed.
AGENT_EXIT_SECONDS = 2.0

OUTPUT_TAIL_BYTES = 4096


def read_tail(path: Path, size: int) -> str:
    try:
        with open(path, "rb") as output:
            output.seek(0, os.SEEK_END)
            output.seek(max(0, output.tell() - size))
            return output.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def child_of(parent: int) -> int | None:
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


class NodeProcess:
    """One running node: its unshare process, its agent's pipes, its running tasks."""

    def __init__(self, spec: NodeSpec, directory: Path, environment: dict[str, str],
                 dashboard_agent_port: int | None) -> None:
        self.spec = spec
        self.directory = directory
        self.environment = environment
        self.dashboard_agent_port = dashboard_agent_port
        self.process: subprocess.Popen | None = None
        self.init_pid: int | None = None
        self.booted = threading.Event()
        self.boot_error: str | None = None
        self.running: dict[str, tuple[ExitCallback, Path]] = {}
        self.lock = threading.Lock()
        self.reader: threading.Thread | None = None
        self.link: str | None = None  # the host end of its veth pair, when it has a network

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
            _call(on_exit, code, read_tail(output, OUTPUT_TAIL_BYTES))

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
        init_pid = self.init_pid or child_of(process.pid)
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
