"""Work requirements, their task groups and tasks: state and lifecycle, no HTTP (that is ``responses.py``).

A work requirement holds task groups, a group holds tasks. A task waits (READY) until
the allocation (``allocation.py``) gives it a free worker of a worker pool
(``pools/models.py``); then it executes until its process exits, it is aborted, it
times out or its node goes, and it finishes with a status decided here, which in turn
decides its group's and its work requirement's.

Simulate-mode knob: a task whose environment has ``SANDBOX_EXIT_CODE=<n>`` ends with
exit code ``n`` ``SANDBOX_EXIT_AFTER`` seconds (default 0) after it starts executing.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Callable, Iterable
from typing import TypeVar

from yellowdog_client.model import (
    Task,
    TaskError,
    TaskErrorType,
    TaskGroup,
    TaskGroupStatus,
    TaskSearch,
    TaskStatus,
    TaskTemplate,
    WorkRequirement,
    WorkRequirementSearch,
    WorkRequirementStatus,
)

from ..errors import InvalidRequest, InvalidWorkRequirementStatus, NotFound
from ..pools.models import PoolsModel
from ..records import WAITING, GroupRec, TaskRec, WorkRequirementRec
from ..search import in_order, in_range, namespaces_of
from ..service import ModelCore, as_is, check_name, utcnow
from .validation import TASK_GROUPS_MAX, check_group_list, check_new_tasks

T = TypeVar("T")
# How much of taskoutput.txt a failed task's error carries. A convenience of the sandbox:
# on YellowDog the output is read from the task's uploaded outputs, not its error.
OUTPUT_EXCERPT_LINES = 20
ADDING_ALLOWED = (WorkRequirementStatus.RUNNING, WorkRequirementStatus.HELD)
# The transitions a client may ask for: target -> the statuses it may come from.
TRANSITIONS = {
    WorkRequirementStatus.HELD: (WorkRequirementStatus.RUNNING,),
    WorkRequirementStatus.RUNNING: (WorkRequirementStatus.HELD,),
    WorkRequirementStatus.FINISHING: (WorkRequirementStatus.RUNNING, WorkRequirementStatus.HELD),
    WorkRequirementStatus.CANCELLING: (
        WorkRequirementStatus.RUNNING, WorkRequirementStatus.HELD, WorkRequirementStatus.FINISHING,
        WorkRequirementStatus.CANCELLING),
}


class WorkModel:
    """Work requirements, task groups and tasks, and the rules by which their statuses change."""

    def __init__(self, core: ModelCore, pools: PoolsModel) -> None:
        self.core = core
        self.lock = core.lock
        self.pools = pools
        pools.work = self
        self.upload_delay = 0.0  # how long a task with outputs stays UPLOADING after its process ends
        self.work_requirements: dict[str, WorkRequirementRec] = {}
        self.wr_by_name: dict[tuple[str, str], WorkRequirementRec] = {}
        self.groups: dict[str, GroupRec] = {}
        self.tasks: dict[str, TaskRec] = {}
        # READY tasks per group, in order (the allocation's queue).
        self.waiting: dict[str, deque[TaskRec]] = {}

    # ── work requirements ──

    def add_work_requirement(self, body: WorkRequirement, view: Callable[[WorkRequirementRec], T] = as_is) -> T:
        with self.lock:
            check_name("namespace", body.namespace)
            check_name("name", body.name)
            check_name("tag", body.tag, required=False)
            # Unique among live work requirements (like pools), or in strict mode among all of
            # the namespace's: a finished one keeps its name. GET by name returns the newest.
            previous = self.wr_by_name.get((body.namespace, body.name))
            if previous is not None and (self.core.strictness.reserve_finished_names or not previous.status.finished):
                raise InvalidRequest(
                    f"work requirement '{body.namespace}/{body.name}' already exists in namespace '{body.namespace}'")
            groups = body.taskGroups or []
            check_group_list(groups, existing={})
            wr_uuid = str(uuid.uuid4())
            now = utcnow()
            wr = WorkRequirementRec(
                id=self.core.new_id("workreq", wr_uuid), seq=self.core.next_seq(), uuid=wr_uuid,
                namespace=body.namespace, name=body.name, tag=body.tag, priority=body.priority or 0, created=now,
                status_changed=now)
            for group in groups:
                wr.groups.append(self._new_group(wr, group))
            self.work_requirements[wr.id] = wr
            self.wr_by_name[(wr.namespace, wr.name)] = wr
            return view(wr)

    def update_work_requirement(self, body: WorkRequirement,
                                view: Callable[[WorkRequirementRec], T] = as_is) -> T:
        """Replace the task-group list with the body's, as the real PUT does."""
        with self.lock:
            if not body.id:
                raise InvalidRequest("id is required to update a work requirement")
            wr = self._work_requirement(body.id)
            if (body.namespace, body.name) != (wr.namespace, wr.name):
                raise InvalidRequest("the namespace and name of a work requirement cannot be changed")
            if wr.status.finished:
                raise InvalidWorkRequirementStatus(
                    f"InvalidWorkRequirementStatusException: work requirement {wr.id} is {wr.status.name} "
                    "and cannot be updated")
            check_name("tag", body.tag, required=False)
            groups = body.taskGroups or []
            existing = {g.id: g for g in wr.groups}
            check_group_list(groups, existing)
            if any(g.id is None for g in groups) and wr.status not in ADDING_ALLOWED:
                raise InvalidWorkRequirementStatus(
                    f"InvalidWorkRequirementStatusException: work requirement {wr.id} is {wr.status.name}; "
                    "task groups can only be added while it is RUNNING or HELD")
            added = sum(1 for g in groups if g.id is None)
            if self.core.strictness.count_removed_groups and wr.next_group_n - 1 + added > TASK_GROUPS_MAX:
                raise InvalidRequest(
                    f"a work requirement holds at most {TASK_GROUPS_MAX} task groups: {wr.id} has had "
                    f"{wr.next_group_n - 1} (removed ones count) and {added} more were asked for")
            kept_ids = {g.id for g in groups if g.id is not None}
            for group in list(wr.groups):
                if group.id not in kept_ids:
                    self._remove_group(group)
            new_list = []
            for body_group in groups:
                if body_group.id is None:
                    new_list.append(self._new_group(wr, body_group))
                else:
                    kept = existing[body_group.id]
                    kept.priority = body_group.priority or 0
                    kept.tag = body_group.tag
                    new_list.append(kept)
            wr.groups = new_list
            wr.tag = body.tag
            wr.priority = body.priority or 0
            self._update_work_requirement(wr)
            self.core.sched().allocate_soon()
            return view(wr)

    def _new_group(self, wr: WorkRequirementRec, body: TaskGroup) -> GroupRec:
        n = wr.next_group_n
        wr.next_group_n += 1
        now = utcnow()
        dependencies = list(body.dependencies or [])
        if body.dependentOn and body.dependentOn not in dependencies:
            dependencies.append(body.dependentOn)
        group = GroupRec(
            id=f"ydid:taskgrp:{self.core.id_hex}:{wr.uuid}:{n}", seq=self.core.next_seq(), wr_id=wr.id,
            name=body.name, run_spec=body.runSpecification, tag=body.tag, priority=body.priority or 0,
            dependencies=dependencies, finish_all=body.finishIfAllTasksFinished,
            finish_any_failed=body.finishIfAnyTaskFailed, completed_ttl=body.completedTaskTtl,
            task_template=body.taskTemplate, status_changed=now)
        if wr.status is WorkRequirementStatus.HELD:
            group.status = TaskGroupStatus.HELD
        self.groups[group.id] = group
        return group

    def _remove_group(self, group: GroupRec) -> None:
        """A group dropped by a PUT: its waiting tasks are cancelled, its running ones aborted."""
        group.removed = True
        self.set_group_status(group, TaskGroupStatus.CANCELLED)
        for task in group.tasks:
            if task.status in WAITING:
                self._finish_task(task, TaskStatus.CANCELLED)
            elif task.status.in_progress:
                self.abort(task, "abort")

    def get_work_requirement(self, wr_id: str, view: Callable[[WorkRequirementRec], T] = as_is) -> T:
        with self.lock:
            return view(self._work_requirement(wr_id))

    def _work_requirement(self, wr_id: str) -> WorkRequirementRec:
        wr = self.work_requirements.get(wr_id)
        if wr is None:
            raise NotFound(f"work requirement {wr_id} not found")
        return wr

    def get_work_requirement_by_name(self, namespace: str, name: str,
                                     view: Callable[[WorkRequirementRec], T] = as_is) -> T:
        with self.lock:
            return view(self._work_requirement_by_name(namespace, name))

    def _work_requirement_by_name(self, namespace: str, name: str) -> WorkRequirementRec:
        wr = self.wr_by_name.get((namespace, name))
        if wr is None:
            raise NotFound(f"work requirement '{namespace}/{name}' not found")
        return wr

    def transition_work_requirement(self, wr_id: str, status_name: str, abort: bool,
                                    view: Callable[[WorkRequirementRec], T] = as_is) -> T:
        with self.lock:
            wr = self._work_requirement(wr_id)
            try:
                target = WorkRequirementStatus[status_name]
            except KeyError:
                raise InvalidRequest(f"unknown work requirement status {status_name!r}") from None
            current = wr.status
            if current not in TRANSITIONS.get(target, ()):
                raise InvalidWorkRequirementStatus(
                    f"InvalidWorkRequirementStatusException: work requirement {wr.id} is {current.name} "
                    f"and cannot transition to {target.name}")
            if target is WorkRequirementStatus.CANCELLING:
                self._cancel_work_requirement(wr, abort)
            elif target is WorkRequirementStatus.HELD:
                self._set_wr_status(wr, target)
                for group in wr.groups:
                    if not group.status.terminated and not group.status.terminating:
                        self.set_group_status(group, TaskGroupStatus.HELD)
            elif target is WorkRequirementStatus.RUNNING:
                self._set_wr_status(wr, target)
                for group in wr.groups:
                    if group.status is TaskGroupStatus.HELD:
                        self.set_group_status(
                            group, TaskGroupStatus.RUNNING if group.in_progress else TaskGroupStatus.PENDING)
                self.core.sched().allocate_soon()
            else:
                self._set_wr_status(wr, target)
                for group in wr.groups:
                    if not group.status.terminated and not group.status.terminating:
                        self.set_group_status(group, TaskGroupStatus.FINISHING)
                for group in list(wr.groups):
                    self._update_group(group)
                self.core.sched().allocate_soon()
            return view(wr)

    def _cancel_work_requirement(self, wr: WorkRequirementRec, abort: bool) -> None:
        self._set_wr_status(wr, WorkRequirementStatus.CANCELLING)
        for group in wr.groups:
            if group.status.terminated:
                continue
            self.set_group_status(group, TaskGroupStatus.CANCELLING)
            for task in group.tasks:
                if task.status in WAITING:
                    self._finish_task(task, TaskStatus.CANCELLED, update=False)
                elif abort and task.status.in_progress:
                    self.abort(task, "abort", update=False)
        for group in list(wr.groups):
            self._update_group(group)
        self._update_work_requirement(wr)

    def cancel_work_requirement(self, wr_id: str) -> WorkRequirementRec:
        """Out of band: cancel with abort."""
        with self.lock:
            wr = self._work_requirement(wr_id)
            if not wr.status.finished:
                self._cancel_work_requirement(wr, abort=True)
            return wr

    # ── tasks ──

    def add_tasks(self, group_id: str, bodies: list[Task], view: Callable[[list[TaskRec]], T] = as_is) -> T:
        with self.lock:
            group = self.groups.get(group_id)
            if group is None or group.removed:
                raise NotFound(f"task group {group_id} not found")
            return view(self._add_tasks(group, bodies))

    def add_tasks_by_name(self, namespace: str, wr_name: str, group_name: str, bodies: list[Task],
                          view: Callable[[list[TaskRec]], T] = as_is) -> T:
        with self.lock:
            wr = self._work_requirement_by_name(namespace, wr_name)
            for group in wr.groups:
                if group.name == group_name:
                    return view(self._add_tasks(group, bodies))
            raise NotFound(f"task group '{group_name}' not found in work requirement '{namespace}/{wr_name}'")

    def _add_tasks(self, group: GroupRec, bodies: list[Task]) -> list[TaskRec]:
        wr = self.work_requirements[group.wr_id]
        if wr.status not in ADDING_ALLOWED:
            raise InvalidWorkRequirementStatus(
                f"InvalidWorkRequirementStatusException: work requirement {wr.id} is {wr.status.name}; "
                "tasks can only be added while it is RUNNING or HELD")
        if group.status not in (TaskGroupStatus.PENDING, TaskGroupStatus.RUNNING, TaskGroupStatus.HELD):
            raise InvalidRequest(f"task group '{group.name}' is {group.status.name}; tasks cannot be added to it")
        prepared = check_new_tasks(group, bodies)
        template = group.task_template or TaskTemplate()
        group_n = group.id.rsplit(":", 1)[1]
        created = []
        now = utcnow()
        for body, task_type, environment in prepared:
            task = TaskRec(
                id=f"ydid:task:{self.core.id_hex}:{wr.uuid}:{group_n}:{group.next_task_n}", seq=self.core.next_seq(),
                wr_id=wr.id, group_id=group.id, name=body.name, tag=body.tag, task_type=task_type,
                arguments=body.arguments, task_data=body.taskData if body.taskData is not None else template.taskData,
                environment=environment, timeout=body.timeout, data=body.data, created=now, status_changed=now)
            group.next_task_n += 1
            group.tasks.append(task)
            group.unfinished += 1
            if task.name is not None:
                group.task_names.add(task.name)
            self.tasks[task.id] = task
            self.waiting.setdefault(group.id, deque()).append(task)
            created.append(task)
        if created:
            self.core.sched().allocate_soon()
        return created

    def get_task(self, task_id: str, view: Callable[[TaskRec], T] = as_is) -> T:
        with self.lock:
            return view(self._task(task_id))

    def _task(self, task_id: str) -> TaskRec:
        task = self.tasks.get(task_id)
        if task is None:
            raise NotFound(f"task {task_id} not found")
        return task

    def cancel_task(self, task_id: str, abort: bool, view: Callable[[TaskRec], T] = as_is) -> T:
        """A waiting task is CANCELLED; with abort a running one is ABORTED; without, it runs on."""
        with self.lock:
            task = self._task(task_id)
            if task.status.finished and self.core.strictness.refuse_finished:
                raise InvalidWorkRequirementStatus(
                    f"InvalidTaskStatusException: task {task.id} is {task.status.name} and cannot be cancelled")
            if task.status in WAITING:
                self._finish_task(task, TaskStatus.CANCELLED)
            elif abort and task.status.in_progress:
                self.abort(task, "abort")
            return view(task)

    def abort_task(self, task_id: str) -> TaskRec:
        """Out of band: abort (a waiting task is cancelled)."""
        return self.cancel_task(task_id, abort=True)

    def abort(self, task: TaskRec, reason: str, update: bool = True) -> None:
        """End the task for reason ("abort", "timeout"): at once if it has no process, else by the runtime."""
        if task.status.finished or task.ending is not None:
            return
        if task.status in WAITING:
            self._finish_task(task, TaskStatus.CANCELLED, update=update)
            return
        task.ending = reason
        task.abort_requested = utcnow()
        if task.runtime_started:
            self.core.sched().abort_task(task.node_id, task.id)
        else:
            self._end_task(task, None, update=update)

    def set_task_status(self, task: TaskRec, status: TaskStatus) -> None:
        old = task.status
        if old is status:
            return
        group = self.groups[task.group_id]
        if old.in_progress:
            group.in_progress -= 1
        if status.in_progress:
            group.in_progress += 1
        if status.finished and not old.finished:
            group.unfinished -= 1
            task.finished = utcnow()
            if status is TaskStatus.FAILED:
                group.failed += 1
        task.status = status
        task.status_changed = utcnow()

    def _release_worker_of(self, task: TaskRec) -> None:
        worker = self.pools.workers.get(task.worker_id) if task.worker_id else None
        if worker is not None and worker.task is task:
            self.pools.release_worker(worker)

    def _finish_task(self, task: TaskRec, status: TaskStatus, error: TaskError | None = None,
                     update: bool = True) -> None:
        self._release_worker_of(task)
        if error is not None:
            task.errors.append(error)
        self.set_task_status(task, status)
        if update:
            self._update_group(self.groups[task.group_id])

    def _end_task(self, task: TaskRec, exit_code: int | None, update: bool = True) -> None:
        """The task's process (if any) has ended: decide its final status from why it ended."""
        reason = task.ending
        task.ending = None
        task.runtime_started = False
        error = None
        if reason == "abort":
            status = TaskStatus.ABORTED
        elif reason == "lost":
            status, error = TaskStatus.FAILED, self._task_error(
                task, TaskErrorType.ALLOCATION_LOST, "the node running the task has gone")
        elif reason == "timeout":
            status, error = TaskStatus.FAILED, self._task_error(
                task, TaskErrorType.TIMED_OUT, "the task exceeded its timeout", exit_code)
        elif exit_code == 0:
            status = TaskStatus.COMPLETED
        else:
            status, error = TaskStatus.FAILED, self._task_error(
                task, TaskErrorType.PROCESS_NON_ZERO_EXIT,
                f"the task process exited with code {exit_code}{_output_excerpt(task.output_tail)}", exit_code)
        if status is TaskStatus.FAILED and self._may_retry(task):
            self._release_worker_of(task)
            task.errors.append(error)
            task.retry_count += 1
            task.node_id = task.worker_id = None
            self.set_task_status(task, TaskStatus.READY)
            self.waiting.setdefault(task.group_id, deque()).append(task)
            self.core.sched().allocate_soon()
            return
        self._finish_task(task, status, error, update=update)

    def _task_error(self, task: TaskRec, error_type: str, message: str, exit_code: int | None = None) -> TaskError:
        return TaskError(timestamp=utcnow(), error=message, nodeId=task.node_id, workerId=task.worker_id,
                         errorType=error_type, statusAtFailure=task.status, processExitCode=exit_code,
                         causedFailure=True)

    def _may_retry(self, task: TaskRec) -> bool:
        group = self.groups[task.group_id]
        spec = group.run_spec
        retries = spec.retryPolicy.maxRetries if spec.retryPolicy is not None else (spec.maximumTaskRetries or 0)
        wr = self.work_requirements[task.wr_id]
        return (task.retry_count < retries and group.status.active and not group.removed
                and wr.status is WorkRequirementStatus.RUNNING)

    def task_lost(self, task: TaskRec, process_gone: bool) -> None:
        """The node running the task has gone (TaskSide of the pools model); the task FAILS as ALLOCATION_LOST
        now if it has no process left, else when the runtime reports its process's exit."""
        task.ending = task.ending or "lost"
        if process_gone or not task.runtime_started:
            self._end_task(task, None)

    def task_exited(self, task_id: str, attempt: int, exit_code: int, output_tail: str = "") -> None:
        """Runtime callback: the task's process ended (for any reason)."""
        with self.lock:
            task = self.tasks.get(task_id)
            if task is None or task.attempt != attempt or not task.runtime_started or task.status.finished:
                return
            task.exit_code = exit_code
            task.output_tail = output_tail
            if task.ending is None and task.data is not None and task.data.outputs:
                self.set_task_status(task, TaskStatus.UPLOADING)
                self.core.sched().later(self.upload_delay, self.task_uploaded_due, task.id, attempt)
                return
            self._end_task(task, exit_code)

    def task_uploaded_due(self, task_id: str, attempt: int) -> None:
        """Timer: the outputs of a task whose process ended are uploaded; it finishes."""
        with self.lock:
            task = self.tasks.get(task_id)
            if task is not None and task.attempt == attempt and task.status is TaskStatus.UPLOADING:
                self._end_task(task, task.exit_code)

    def task_start_failed(self, task_id: str, attempt: int, message: str) -> None:
        """Runtime callback: the task's process could not be started."""
        with self.lock:
            task = self.tasks.get(task_id)
            if task is None or task.attempt != attempt or not task.runtime_started or task.status.finished:
                return
            task.runtime_started = False
            if task.ending == "abort":
                self._end_task(task, None)
                return
            task.ending = None
            self._finish_task(task, TaskStatus.FAILED, self._task_error(
                task, TaskErrorType.UNABLE_START_PROCESS, f"the task could not be started: {message}"))

    # ── group and work requirement status ──

    def set_group_status(self, group: GroupRec, status: TaskGroupStatus) -> None:
        if group.status is not status:
            group.status = status
            group.status_changed = utcnow()

    def _set_wr_status(self, wr: WorkRequirementRec, status: WorkRequirementStatus) -> None:
        if wr.status is not status:
            wr.status = status
            wr.status_changed = utcnow()

    def _update_group(self, group: GroupRec) -> None:
        status = group.status
        if status.terminated:
            return
        if status is TaskGroupStatus.CANCELLING:
            if group.in_progress == 0:
                self.set_group_status(group, TaskGroupStatus.CANCELLED)
        elif status is TaskGroupStatus.FAILING:
            if group.in_progress == 0:
                self.set_group_status(group, TaskGroupStatus.FAILED)
        elif group.finish_any_failed and group.failed:
            self.set_group_status(group, TaskGroupStatus.FAILING)
            for task in group.tasks:
                if task.status in WAITING:
                    self._finish_task(task, TaskStatus.DISCARDED, update=False)
                elif task.status.in_progress:
                    self.abort(task, "abort", update=False)
            if group.in_progress == 0:
                self.set_group_status(group, TaskGroupStatus.FAILED)
        elif group.unfinished == 0 and (
                (group.tasks and group.finish_all) or status is TaskGroupStatus.FINISHING):
            self.set_group_status(group, TaskGroupStatus.FAILED if group.failed else TaskGroupStatus.COMPLETED)
        if group.status.terminated and status is not group.status:
            self.core.sched().allocate_soon()  # groups that depend on it may start now
        if not group.removed:
            self._update_work_requirement(self.work_requirements[group.wr_id])

    def _update_work_requirement(self, wr: WorkRequirementRec) -> None:
        if wr.status.finished:
            return
        if wr.status is WorkRequirementStatus.CANCELLING:
            if all(group.in_progress == 0 for group in wr.groups):
                for group in wr.groups:
                    if not group.status.terminated:
                        self.set_group_status(group, TaskGroupStatus.CANCELLED)
                self._set_wr_status(wr, WorkRequirementStatus.CANCELLED)
            return
        if wr.groups and all(group.status.terminated for group in wr.groups):
            failed = any(group.status is TaskGroupStatus.FAILED for group in wr.groups)
            self._set_wr_status(wr, WorkRequirementStatus.FAILED if failed else WorkRequirementStatus.COMPLETED)

    # ── searches ──

    def search_work_requirements(self, search: WorkRequirementSearch,
                                 view: Callable[[list[WorkRequirementRec]], T] = as_is) -> T:
        with self.lock:
            namespaces = namespaces_of(search.namespace, search.namespaces)
            found = [
                wr for wr in self.work_requirements.values()
                if (namespaces is None or wr.namespace in namespaces)
                and (search.name is None or search.name in wr.name)
                and (search.tag is None or wr.tag == search.tag)
                and (not search.statuses or wr.status in search.statuses)
                and search.isHealthy is not False
                and in_range(wr.created, search.createdTime)
                and in_range(wr.status_changed, search.statusChangedTime)
            ]
            return view(in_order(found, search.sortField, search.sortDirection))

    def search_tasks(self, search: TaskSearch, group_ids: list[str] | None = None,
                     view: Callable[[list[TaskRec]], T] = as_is) -> T:
        with self.lock:
            group_ids = list(group_ids or []) + ([search.taskGroupId] if search.taskGroupId else [])
            if group_ids:
                groups = [self.groups[g] for g in dict.fromkeys(group_ids) if g in self.groups]
                if search.workRequirementId:
                    groups = [g for g in groups if g.wr_id == search.workRequirementId]
                candidates: Iterable[TaskRec] = (t for g in groups for t in g.tasks)
            elif search.workRequirementId:
                wr = self.work_requirements.get(search.workRequirementId)
                candidates = (t for g in wr.groups for t in g.tasks) if wr else ()
            else:
                candidates = self.tasks.values()
            found = [
                t for t in candidates
                if (search.name is None or t.name == search.name)
                and (not search.statuses or t.status in search.statuses)
                and (search.tag is None or t.tag == search.tag)
                and (search.tagStartsWith is None or (t.tag or "").startswith(search.tagStartsWith))
                and (search.hasErrors is None or bool(t.errors) == search.hasErrors)
                and (search.hasInputs is None or bool(t.data and t.data.inputs) == search.hasInputs)
                and (search.hasOutputs is None or bool(t.data and t.data.outputs) == search.hasOutputs)
                and in_range(t.started, search.startedTime)
                and in_range(t.finished, search.finishedTime)
            ]
            return view(in_order(found, search.sortField, search.sortDirection))


def _output_excerpt(tail: str) -> str:
    lines = (tail or "").rstrip().splitlines()[-OUTPUT_EXCERPT_LINES:]
    return "; last lines of taskoutput.txt:\n" + "\n".join(lines) if lines else ""
