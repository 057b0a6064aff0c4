"""Helpers for the exec-mode node runtime tests (tests/sandbox/test_nodes.py)."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

from harness.waits import wait_until
import psutil
import pytest
from raydog_sandbox.nodes.exec_runtime import ExecCapabilityError, check_exec_capability
from raydog_sandbox.nodes.runtime import NodeSpec, TaskRun

# Every task process of a test runtime carries this variable (through the runtime's
# ``environment``), so a test can find its processes, and only its, with psutil.
TEST_MARKER = "RAYDOG_NODES_TEST"


def _exec_problem() -> str | None:
    try:
        check_exec_capability()
    except ExecCapabilityError as exc:
        return str(exc)
    return None


EXEC_PROBLEM = _exec_problem()

# Tests that need namespaces skip with the one line that says what to do.
requires_exec = pytest.mark.skipif(EXEC_PROBLEM is not None, reason=EXEC_PROBLEM or "")


class ExitRecorder:
    """An ``on_exit`` callback that remembers every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, str]] = []
        self._called = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, exit_code: int, output_tail: str) -> None:
        with self._lock:
            self.calls.append((exit_code, output_tail))
        self._called.set()

    @property
    def called(self) -> bool:
        return self._called.is_set()

    def wait(self, timeout: float = 30.0) -> tuple[int, str]:
        """The (exit code, output tail) of the task's end; fails if it does not come in time."""
        assert self._called.wait(timeout), f"on_exit was not called within {timeout} s"
        return self.calls[0]


def node(name: str, ip: str, userdata: str | None = None, public_ip: str | None = None) -> NodeSpec:
    return NodeSpec(
        node_id=f"ydid:node:000000:{name}",
        instance_id=f"i-{name}",
        hostname=name,
        private_ip=ip,
        public_ip=public_ip or ip,
        pool_name="pool",
        userdata=userdata,
    )


def planned_node(runtime, name: str, index: int) -> NodeSpec:
    """A node with the runtime's ``index``-th private and public address."""
    private_ip, public_ip = runtime.address_plan.addresses(index)
    return node(name, private_ip, public_ip=public_ip)


def bash_task(
    task_id: str, spec: NodeSpec, script: str, environment: dict[str, str] | None = None, arguments=()
) -> TaskRun:
    return TaskRun(
        task_id=task_id,
        task_group_id="ydid:taskgrp:000000:group:1",
        node_id=spec.node_id,
        task_type="bash",
        task_data=script,
        arguments=list(arguments),
        environment=dict(environment or {}),
    )


def marked_processes(marker: str) -> list[psutil.Process]:
    """Live (non-zombie) processes whose environment carries ``TEST_MARKER=marker``."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                continue
            if process.environ().get(TEST_MARKER) == marker:
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def processes_mentioning(text: str) -> list[psutil.Process]:
    """Live processes whose command line mentions ``text`` (a runtime's data dir: its agents)."""
    found = []
    for process in psutil.process_iter():
        try:
            mentions = any(text in arg for arg in process.cmdline())
            if mentions and process.pid != os.getpid() and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def wait_for_processes(marker: str, count: int, timeout: float = 10.0) -> list[psutil.Process]:
    """Wait until exactly ``count`` live processes carry ``TEST_MARKER=marker``; returns them."""
    return wait_until(lambda: marked_processes(marker), f"{count} processes of this test run", timeout=timeout,
                      until=lambda found: len(found) == count)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("0.0.0.0", 0))
        return probe.getsockname()[1]


def read(path: Path) -> str:
    return path.read_text() if path.exists() else ""
