"""The seam between the sandbox's model and the machines it pretends to run.

The model decides *what* happens (a node boots, a task is allocated to a worker,
a task is aborted, a node is shut down); a runtime decides *how* it happens on this
machine. ``SimulatedRuntime`` runs nothing: tasks reach EXECUTING and stay there until
the model ends them. ``exec_runtime.ExecRuntime`` runs every node as an
isolated local node and every task as a real ``bash taskdata.txt``.

Runtimes are called by the scheduler and call back only through ``on_exit``; they never
touch the model directly.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable, Protocol


@dataclass(frozen=True)
class NodeSpec:
    """What a runtime needs to know to boot one node."""

    node_id: str
    instance_id: str
    hostname: str
    private_ip: str
    public_ip: str
    pool_name: str
    userdata: str | None = None


@dataclass(frozen=True)
class TaskRun:
    """One task to run on one node, as the YellowDog agent would run it."""

    task_id: str
    task_group_id: str
    node_id: str
    task_type: str
    task_data: str | None
    arguments: list[str] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)


# The exit code a task reports when it ended by SIGTERM (128 + 15), as bash does.
SIGTERM_EXIT_CODE = 143

# on_exit(exit_code, output_tail): called once, from a runtime thread, when the task's
# process has ended for any reason (including abort).
ExitCallback = Callable[[int, str], None]


class NodeRuntime(Protocol):
    """How the sandbox runs nodes and tasks."""

    def start_node(self, node: NodeSpec) -> None:
        """Boot a node; returns once the node can run tasks."""

    def run_task(self, run: TaskRun, on_exit: ExitCallback) -> None:
        """Start a task on its node and return at once."""

    def abort_task(self, task_id: str, grace_seconds: float = 10.0) -> None:
        """SIGTERM the task (so its EXIT trap runs), then kill its process tree after the grace.

        Returns at once; the task's end is reported through its ``on_exit``."""

    def stop_node(self, node_id: str) -> None:
        """End every process of the node; returns when none is left.

        Tasks still running on it report their end through their ``on_exit``."""

    def task_output(self, task_id: str) -> str | None:
        """The task's captured output (taskoutput.txt), or None when the runtime keeps none."""

    def close(self) -> None:
        """Stop every node; after this no process of the runtime is left."""


class SimulatedRuntime:
    """Runs nothing: nodes are records, tasks execute until the model ends them.

    It keeps the same contract as a real runtime: a task that is aborted, or whose node
    is stopped, reports its end through ``on_exit`` (exit code 143, as after SIGTERM).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[str, tuple[str, ExitCallback]] = {}

    def start_node(self, node: NodeSpec) -> None:
        return None

    def run_task(self, run: TaskRun, on_exit: ExitCallback) -> None:
        with self._lock:
            self._running[run.task_id] = (run.node_id, on_exit)

    def abort_task(self, task_id: str, grace_seconds: float = 10.0) -> None:
        with self._lock:
            entry = self._running.pop(task_id, None)
        if entry is not None:
            entry[1](SIGTERM_EXIT_CODE, "")

    def stop_node(self, node_id: str) -> None:
        with self._lock:
            ended = [tid for tid, (nid, _) in self._running.items() if nid == node_id]
            callbacks = [self._running.pop(tid)[1] for tid in ended]
        for on_exit in callbacks:
            on_exit(SIGTERM_EXIT_CODE, "")

    def task_output(self, task_id: str) -> str | None:
        return None

    def close(self) -> None:
        with self._lock:
            self._running.clear()
