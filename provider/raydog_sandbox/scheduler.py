"""Time and machines for the sandbox platform.

``Scheduler`` owns the sandbox's clock thread and the node runtime:

* timers: provisioning delay, task start delay, task timeouts, idle node and idle pool
  shutdown, and simulated task exits — each a callback into ``Platform`` at a due time;
* allocation: matching READY tasks to free workers (one worker per node, one task per
  worker) by task type, worker tag, namespace and the rest of the run specification;
* runtime calls: ``start_node``, ``run_task``, ``abort_task`` and ``stop_node`` run on a
  thread pool, in order per node, and never under the platform's lock, so a runtime may
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

from yellowdog_client.model import RunSpecification, TaskStatus

from .models import SUPPORTED_TASK_TYPES, GroupRec, NodeRec, Platform, WorkerRec
from .nodes.runtime import NodeRuntime, NodeSpec, TaskRun
from .compute.templates import PROVIDER, REGION

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
    """Wires a Platform to time and to a NodeRuntime."""

    def __init__(self, platform: Platform, runtime: NodeRuntime) -> None:
        self.platform = platform
        self.runtime = runtime
        self._timers = Timers()
        self._calls = NodeCalls()
        self._allocation_pending = False
        self._flag_lock = threading.Lock()
        platform.scheduler = self

    # ── what the platform asks for ──

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
        platform = self.platform

        def on_exit(exit_code: int, output_tail: str = "") -> None:
            platform.task_exited(run.task_id, attempt, exit_code, output_tail)

        self._calls.submit(run.node_id, self._run, run, attempt, on_exit)

    def abort_task(self, node_id: str, task_id: str) -> None:
        self._calls.submit(node_id, self.runtime.abort_task, task_id)

    def stop_node(self, node_id: str) -> None:
        self._calls.submit(node_id, self._stop, node_id)

    # ── runtime calls, off the platform lock ──

    def _boot(self, spec: NodeSpec) -> None:
        try:
            self.runtime.start_node(spec)
        except Exception as error:
            log.exception("node %s did not boot", spec.node_id)
            self.platform.node_boot_failed(spec.node_id, str(error))
            return
        self.platform.node_booted(spec.node_id)

    def _run(self, run: TaskRun, attempt: int, on_exit: Callable[..., None]) -> None:
        try:
            self.runtime.run_task(run, on_exit)
        except Exception as error:  # any failure to start is the task's error
            log.exception("task %s did not start", run.task_id)
            self.platform.task_start_failed(run.task_id, attempt, str(error))

    def _stop(self, node_id: str) -> None:
        try:
            self.runtime.stop_node(node_id)
        finally:
            self.platform.node_stopped(node_id)

    # ── allocation ──

    def _allocation_pass(self) -> None:
        with self._flag_lock:
            self._allocation_pending = False
        with self.platform.lock:
            allocate_ready_tasks(self.platform)

    def close(self) -> None:
        """Stop the clock and wait for runtime calls in flight; the runtime itself is closed by its owner."""
        self._timers.stop()
        self._calls.close()


def allocate_ready_tasks(platform: Platform) -> int:
    """Give READY tasks to free, matching workers, highest priority first; returns how many. Lock held."""
    allocated = 0
    order = sorted(
        platform.waiting,
        key=lambda gid: _priority(platform, platform.groups[gid]))
    for group_id in order:
        queue = platform.waiting[group_id]
        group = platform.groups[group_id]
        _drop_not_ready(queue)
        if not queue:
            del platform.waiting[group_id]
            continue
        if not platform.free_workers or not platform.group_can_allocate(group):
            continue
        namespace_ok = set(group.run_spec.namespaces) if group.run_spec.namespaces else None
        for worker in _candidates(platform, group.run_spec):
            if not queue:
                break
            if not platform.group_can_allocate(group):
                break
            node = worker.node
            pool = platform.pools[node.pool_id]
            if namespace_ok is not None and pool.namespace not in namespace_ok:
                continue
            if not _node_fits(group.run_spec, node, pool.template):
                continue
            task = queue[0]
            if task.task_type not in SUPPORTED_TASK_TYPES:
                break  # no node of the sandbox runs other task types: the group is starved
            queue.popleft()
            platform.allocate(task, worker)
            allocated += 1
            _drop_not_ready(queue)
        if not queue:
            del platform.waiting[group_id]
    return allocated


def _priority(platform: Platform, group: GroupRec) -> tuple[float, float, int]:
    wr = platform.work_requirements[group.wr_id]
    return -wr.priority, -group.priority, group.seq


def _drop_not_ready(queue: deque) -> None:
    while queue and queue[0].status is not TaskStatus.READY:
        queue.popleft()


def _candidates(platform: Platform, spec: RunSpecification) -> list[WorkerRec]:
    if spec.workerTags:
        found: list[WorkerRec] = []
        for tag in spec.workerTags:
            found.extend(platform.free_by_tag.get(tag, {}).values())
        return found
    return list(platform.free_workers.values())


def _node_fits(spec: RunSpecification, node: NodeRec, template: Any) -> bool:
    if spec.providers and not any(p.value == PROVIDER for p in spec.providers):
        return False
    if spec.regions and REGION not in spec.regions:
        return False
    if spec.instanceTypes and template.instance_type not in spec.instanceTypes:
        return False
    for value, bounds in ((template.vcpus, spec.vcpus), (template.ram, spec.ram)):
        if bounds is not None and ((bounds.min is not None and value < bounds.min)
                                   or (bounds.max is not None and value > bounds.max)):
            return False
    return True
