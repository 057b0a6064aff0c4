"""Time and machines for the sandbox's model.

``Scheduler`` owns the sandbox's clock thread and the node runtime, and is what the
models ask for both (``service.Scheduling``):

* timers: provisioning delay, task start delay, task timeouts, idle node and idle pool
  shutdown, and simulated task exits — each a callback into a model at a due time;
* allocation passes: coalesced requests for ``work.allocation.TaskAllocation`` to match
  READY tasks to free workers (the rules of the match are the model's);
* runtime calls: ``start_node``, ``run_task``, ``abort_task`` and ``stop_node`` run on a
  thread pool, in order per node, and never under the models' lock, so a runtime may
  call ``on_exit`` from any thread at any time.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .backend import SandboxBackend
from .nodes.runtime import NodeRuntime, NodeSpec, TaskRun

log = logging.getLogger("raydog_sandbox")


class Timers:
    """One thread running callbacks at their due time (monotonic clock)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[..., Any], tuple]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="sandbox-timers", daemon=True)
        self._thread.start()

    def later(self, delay: float, fn: Callable[..., Any], *args: Any) -> None:
        with self._cond:
            heapq.heappush(self._heap, (time.monotonic() + max(delay, 0.0), next(self._seq), fn, args))
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping:
                    if self._heap:
                        wait = self._heap[0][0] - time.monotonic()
                        if wait <= 0:
                            break
                        self._cond.wait(wait)
                    else:
                        self._cond.wait()
                if self._stopping:
                    return
                _, _, fn, args = heapq.heappop(self._heap)
            try:
                fn(*args)
            except Exception:
                log.exception("sandbox timer callback %s failed", getattr(fn, "__name__", fn))


class NodeCalls:
    """Runs runtime calls on a thread pool, one at a time and in order for each node."""

    def __init__(self, workers: int = 32) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sandbox-node")
        self._lock = threading.Lock()
        self._queues: dict[str, deque[tuple[Callable[..., Any], tuple]]] = {}
        self._closed = False

    def submit(self, node_id: str, fn: Callable[..., Any], *args: Any) -> None:
        with self._lock:
            if self._closed:
                return
            queue = self._queues.get(node_id)
            if queue is not None:
                queue.append((fn, args))
                return
            self._queues[node_id] = deque([(fn, args)])
        self._pool.submit(self._drain, node_id)

    def _drain(self, node_id: str) -> None:
        while True:
            with self._lock:
                queue = self._queues[node_id]
                if not queue:
                    del self._queues[node_id]
                    return
                fn, args = queue.popleft()
            try:
                fn(*args)
            except Exception:
                log.exception("sandbox runtime call %s for node %s failed", getattr(fn, "__name__", fn), node_id)

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._pool.shutdown(wait=True, cancel_futures=False)


class Scheduler:
    """Wires a SandboxBackend to time and to a NodeRuntime."""

    def __init__(self, backend: SandboxBackend, runtime: NodeRuntime) -> None:
        self.backend = backend
        self.runtime = runtime
        self._timers = Timers()
        self._calls = NodeCalls()
        self._allocation_pending = False
        self._flag_lock = threading.Lock()
        backend.attach(self)

    # ── what the models ask for ──

    def later(self, delay: float, fn: Callable[..., Any], *args: Any) -> None:
        self._timers.later(delay, fn, *args)

    def allocate_soon(self) -> None:
        """Ask for one allocation pass; requests made before it runs are coalesced."""
        with self._flag_lock:
            if self._allocation_pending:
                return
            self._allocation_pending = True
        self._timers.later(0.0, self._allocation_pass)

    def boot_node(self, spec: NodeSpec) -> None:
        self._calls.submit(spec.node_id, self._boot, spec)

    def run_task(self, run: TaskRun, attempt: int) -> None:
        work = self.backend.work

        def on_exit(exit_code: int, output_tail: str = "") -> None:
            work.task_exited(run.task_id, attempt, exit_code, output_tail)

        self._calls.submit(run.node_id, self._run, run, attempt, on_exit)

    def abort_task(self, node_id: str, task_id: str) -> None:
        self._calls.submit(node_id, self.runtime.abort_task, task_id)

    def stop_node(self, node_id: str) -> None:
        self._calls.submit(node_id, self._stop, node_id)

    # ── runtime calls, off the models' lock ──

    def _boot(self, spec: NodeSpec) -> None:
        try:
            self.runtime.start_node(spec)
        except Exception as error:
            log.exception("node %s did not boot", spec.node_id)
            self.backend.pools.node_boot_failed(spec.node_id, str(error))
            return
        self.backend.pools.node_booted(spec.node_id)

    def _run(self, run: TaskRun, attempt: int, on_exit: Callable[..., None]) -> None:
        try:
            self.runtime.run_task(run, on_exit)
        except Exception as error:  # any failure to start is the task's error
            log.exception("task %s did not start", run.task_id)
            self.backend.work.task_start_failed(run.task_id, attempt, str(error))

    def _stop(self, node_id: str) -> None:
        try:
            self.runtime.stop_node(node_id)
        finally:
            self.backend.pools.node_stopped(node_id)

    def _allocation_pass(self) -> None:
        with self._flag_lock:
            self._allocation_pending = False
        self.backend.allocation.allocate_ready_tasks()

    def close(self) -> None:
        """Stop the clock and wait for runtime calls in flight; the runtime itself is closed by its owner."""
        self._timers.stop()
        self._calls.close()

