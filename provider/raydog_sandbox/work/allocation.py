"""From READY to EXECUTING: which waiting task goes to which free worker, and when it starts.

One worker per node and one task per worker; higher work requirement priority first,
then higher group priority, then the older group. A task goes only to a worker whose
node matches its group's run specification (task types, worker tags, namespaces,
providers, regions, instance types, vCPUs, RAM) while the group may take more workers
(``maxWorkers``, dependencies finished, neither held nor finished). An allocated task
starts executing after the task start delay and may time out. Part of the model: the
scheduler only asks for an allocation pass and fires the timers.
"""

from __future__ import annotations

import logging
from collections import deque

from yellowdog_client.model import RunSpecification, TaskGroupStatus, TaskStatus, WorkRequirementStatus

from ..compute.templates import PROVIDER, REGION, Template
from ..nodes.runtime import TaskRun
from ..pools.models import PoolsModel
from ..records import SUPPORTED_TASK_TYPES, GroupRec, NodeRec, TaskRec, WorkerRec
from ..service import utcnow
from .models import WorkModel

log = logging.getLogger("raydog_sandbox")

AGENT_HOME = "/opt/yellowdog/agent"
AGENT_DATA = "/var/opt/yellowdog/agent/data"


class TaskAllocation:
    """Gives READY tasks to free workers and takes each allocated task to EXECUTING."""

    def __init__(self, work: WorkModel, pools: PoolsModel, task_start_delay: float = 0.0,
                 simulate_exits: bool = True) -> None:
        self.work = work
        self.pools = pools
        self.core = work.core
        self.lock = work.lock
        self.task_start_delay = task_start_delay
        self.simulate_exits = simulate_exits

    def allocate_ready_tasks(self) -> int:
        """One allocation pass over every group with READY tasks; returns how many were allocated."""
        with self.lock:
            work = self.work
            allocated = 0
            for group_id in sorted(work.waiting, key=lambda gid: self._priority(work.groups[gid])):
                queue = work.waiting[group_id]
                group = work.groups[group_id]
                _drop_not_ready(queue)
                if not queue:
                    del work.waiting[group_id]
                    continue
                if not self.pools.free_workers or not self.group_can_allocate(group):
                    continue
                namespace_ok = set(group.run_spec.namespaces) if group.run_spec.namespaces else None
                for worker in self.pools.free_workers_for(group.run_spec.workerTags):
                    if not queue:
                        break
                    if not self.group_can_allocate(group):
                        break
                    node = worker.node
                    pool = self.pools.pools[node.pool_id]
                    if namespace_ok is not None and pool.namespace not in namespace_ok:
                        continue
                    if not _node_fits(group.run_spec, pool.template):
                        continue
                    task = queue[0]
                    if task.task_type not in SUPPORTED_TASK_TYPES:
                        break  # no node of the sandbox runs other task types: the group is starved
                    queue.popleft()
                    self.allocate(task, worker)
                    allocated += 1
                    _drop_not_ready(queue)
                if not queue:
                    del work.waiting[group_id]
            return allocated

    def _priority(self, group: GroupRec) -> tuple[float, float, int]:
        wr = self.work.work_requirements[group.wr_id]
        return -wr.priority, -group.priority, group.seq

    def group_can_allocate(self, group: GroupRec) -> bool:
        if group.removed or group.status not in (
                TaskGroupStatus.PENDING, TaskGroupStatus.RUNNING, TaskGroupStatus.FINISHING):
            return False
        wr = self.work.work_requirements[group.wr_id]
        if wr.status not in (WorkRequirementStatus.RUNNING, WorkRequirementStatus.FINISHING):
            return False
        if group.run_spec.maxWorkers is not None and group.in_progress >= group.run_spec.maxWorkers:
            return False
        if group.dependencies:
            by_name = {g.name: g for g in wr.groups}
            for name in group.dependencies:
                dependency = by_name.get(name)
                if dependency is None or dependency.status is not TaskGroupStatus.COMPLETED:
                    return False
        return True

    def allocate(self, task: TaskRec, worker: WorkerRec) -> None:
        """Give a READY task to a free worker; it starts executing after the task start delay."""
        self.pools.claim_worker(worker, task)
        task.attempt += 1
        task.node_id = worker.node.id
        task.worker_id = worker.id
        task.ending = None
        self.work.set_task_status(task, TaskStatus.ALLOCATED)
        group = self.work.groups[task.group_id]
        if group.status is TaskGroupStatus.PENDING:
            self.work.set_group_status(group, TaskGroupStatus.RUNNING)
        self.core.sched().later(self.task_start_delay, self.task_start_due, task.id, task.attempt)

    def task_start_due(self, task_id: str, attempt: int) -> None:
        """Timer: the task start delay has passed; the task downloads its inputs (if it has any,
        for one more delay) and executes on its node."""
        with self.lock:
            task = self.work.tasks.get(task_id)
            if task is None or task.attempt != attempt or task.status is not TaskStatus.ALLOCATED:
                return
            if task.data is not None and task.data.inputs:
                self.work.set_task_status(task, TaskStatus.DOWNLOADING)
                self.core.sched().later(self.task_start_delay, self.task_downloaded_due, task.id, attempt)
                return
            self._execute(task, attempt)

    def task_downloaded_due(self, task_id: str, attempt: int) -> None:
        """Timer: the task's inputs are on its node; it executes."""
        with self.lock:
            task = self.work.tasks.get(task_id)
            if task is not None and task.attempt == attempt and task.status is TaskStatus.DOWNLOADING:
                self._execute(task, attempt)

    def _execute(self, task: TaskRec, attempt: int) -> None:
        node = self.pools.nodes[task.node_id]
        self.work.set_task_status(task, TaskStatus.EXECUTING)
        task.started = utcnow()
        task.runtime_started = True
        self.core.sched().run_task(self._task_run(task, node), attempt)
        timeout = task.timeout or self.work.groups[task.group_id].run_spec.taskTimeout
        if timeout is not None:
            self.core.sched().later(timeout.total_seconds(), self.task_timeout_due, task.id, attempt)
        if self.simulate_exits and task.environment and "SANDBOX_EXIT_CODE" in task.environment:
            self._schedule_simulated_exit(task, attempt)

    def _schedule_simulated_exit(self, task: TaskRec, attempt: int) -> None:
        env = task.environment or {}
        try:
            code = int(env["SANDBOX_EXIT_CODE"])
            after = float(env.get("SANDBOX_EXIT_AFTER", "0"))
        except ValueError:
            log.warning("task %s: SANDBOX_EXIT_CODE/SANDBOX_EXIT_AFTER are not numbers; ignored", task.id)
            return
        self.core.sched().later(max(after, 0.0), self.work.task_exited, task.id, attempt, code, "")

    def _task_run(self, task: TaskRec, node: NodeRec) -> TaskRun:
        """The task as the YellowDog agent runs it: its environment plus the agent's YD_* variables."""
        pool = self.pools.pools[node.pool_id]
        environment = dict(task.environment or {})
        environment.update({
            "YD_TASK_ID": task.id,
            "YD_TASK_GROUP_ID": task.group_id,
            "YD_INSTANCE_ID": node.instance.id,
            "YD_PROVIDER": PROVIDER,
            "YD_REGION": REGION,
            "YD_INSTANCE_TYPE": pool.template.instance_type,
            "YD_AGENT_DATA": AGENT_DATA,
            "YD_AGENT_HOME": AGENT_HOME,
            "YD_WORKER_SLOT": "1",
        })
        return TaskRun(task_id=task.id, task_group_id=task.group_id, node_id=node.id, task_type=task.task_type,
                       task_data=task.task_data, arguments=list(task.arguments or []), environment=environment)

    def task_timeout_due(self, task_id: str, attempt: int) -> None:
        """Timer: the task's timeout has passed since it started executing; it is aborted and FAILS."""
        with self.lock:
            task = self.work.tasks.get(task_id)
            if task is None or task.attempt != attempt or not task.status.in_progress or task.ending is not None:
                return
            self.work.abort(task, "timeout")


def _drop_not_ready(queue: deque) -> None:
    while queue and queue[0].status is not TaskStatus.READY:
        queue.popleft()


def _node_fits(spec: RunSpecification, template: Template) -> bool:
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
