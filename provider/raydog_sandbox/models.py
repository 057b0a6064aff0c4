"""The sandbox platform: every YellowDog object the sandbox holds, and their lifecycles.

No HTTP here (that is ``api.py``) and no clocks or processes (that is ``scheduler.py``
and the runtime): ``Platform`` is a thread-safe state machine. Its public methods are
what the API can ask of YellowDog; its ``*_due`` and ``node_*``/``task_exited`` methods
are called back by the scheduler when a timer fires or a runtime call returns.

Every method takes ``self.lock``; runtime calls are never made while holding it (the
scheduler queues them), so a runtime may call back into the platform from any thread.

Simulate-mode knob: a task whose environment has ``SANDBOX_EXIT_CODE=<n>`` ends with
exit code ``n`` ``SANDBOX_EXIT_AFTER`` seconds (default 0) after it starts executing.
"""

from __future__ import annotations

import itertools
import logging
import re
import secrets
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from yellowdog_client.model import (
    ComputeRequirementStatus,
    ComputeRequirementSummarySearch,
    ComputeRequirementTemplateUsage,
    InstanceSearch,
    InstanceStatus,
    NodeSearch,
    NodeStatus,
    ProvisionedWorkerPoolProperties,
    RunSpecification,
    Task,
    TaskData,
    TaskError,
    TaskErrorType,
    TaskGroup,
    TaskGroupStatus,
    TaskSearch,
    TaskStatus,
    TaskTemplate,
    WorkerPoolSearch,
    WorkerPoolStatus,
    WorkerStatus,
    WorkRequirement,
    WorkRequirementSearch,
    WorkRequirementStatus,
)

from .nodes.runtime import NodeSpec, TaskRun
from .compute.templates import PROVIDER, REGION, Template, TemplateCatalogue

if TYPE_CHECKING:
    from .scheduler import Scheduler

log = logging.getLogger("raydog_sandbox")

NAME_PATTERN = re.compile(r"^[a-z](?:[a-z0-9_-]{0,58}[a-z0-9])?$")
TASK_GROUPS_MAX = WorkRequirement.TASK_GROUPS_MAX
AGENT_HOME = "/opt/yellowdog/agent"
AGENT_DATA = "/var/opt/yellowdog/agent/data"
SUPPORTED_TASK_TYPES = ("bash",)

WAITING = (TaskStatus.PENDING, TaskStatus.READY)
LIVE_NODE = (NodeStatus.RUNNING, NodeStatus.LATE)


def utcnow() -> datetime:
    return datetime.now(UTC)


# ── errors ──────────────────────────────────────────────────────────────────────


class SandboxError(Exception):
    """An error the API answers with the SDK's body shape {errorType, message, detail}."""

    status_code = 400
    error_type = "InvalidRequestException"

    def __init__(self, message: str, detail: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.detail = list(detail)


class InvalidRequest(SandboxError):
    """Maps to the SDK's InvalidRequestException."""


class NotFound(SandboxError):
    """404 whose errorType the SDK does not know, so it raises requests.HTTPError."""

    status_code = 404
    error_type = "NotFoundException"


class InvalidWorkRequirementStatus(SandboxError):
    """A work requirement transition the platform refuses (403, as the live API answers)."""

    status_code = 403
    error_type = "InvalidWorkRequirementStatusException"


class NotAuthorised(SandboxError):
    status_code = 401
    error_type = "NotAuthorisedException"


def check_name(field_name: str, value: Any, required: bool = True) -> None:
    """Raise InvalidRequest unless value follows YellowDog's naming rule."""
    if value is None:
        if required:
            raise InvalidRequest(f"{field_name} is required")
        return
    if not isinstance(value, str) or not NAME_PATTERN.match(value):
        raise InvalidRequest(
            f"{field_name} {value!r} is not valid: use 1 to 60 lower-case letters, digits, '-' or '_', "
            "starting with a letter and ending with a letter or digit")


# ── records ─────────────────────────────────────────────────────────────────────


@dataclass(eq=False)
class TaskRec:
    id: str
    seq: int
    wr_id: str
    group_id: str
    name: str | None
    tag: str | None
    task_type: str
    arguments: list[str] | None
    task_data: str | None
    environment: dict[str, str] | None
    timeout: timedelta | None
    data: TaskData | None
    created: datetime
    status: TaskStatus = TaskStatus.READY
    status_changed: datetime | None = None
    retry_count: int = 0
    node_id: str | None = None
    worker_id: str | None = None
    errors: list[TaskError] = field(default_factory=list)
    exit_code: int | None = None
    output_tail: str = ""
    started: datetime | None = None
    finished: datetime | None = None
    abort_requested: datetime | None = None
    ending: str | None = None  # why it is being ended: "abort", "lost" (node gone), "timeout"
    attempt: int = 0  # bumped at each allocation; stale timers and exits carry an old one
    runtime_started: bool = False  # run_task was issued for the current attempt


@dataclass(eq=False)
class GroupRec:
    id: str
    seq: int
    wr_id: str
    name: str
    run_spec: RunSpecification
    tag: str | None
    priority: float
    dependencies: list[str]
    finish_all: bool
    finish_any_failed: bool
    completed_ttl: timedelta | None
    task_template: TaskTemplate | None
    status: TaskGroupStatus = TaskGroupStatus.PENDING
    status_changed: datetime | None = None
    tasks: list[TaskRec] = field(default_factory=list)
    task_names: set[str] = field(default_factory=set)
    next_task_n: int = 1
    in_progress: int = 0
    unfinished: int = 0
    failed: int = 0
    removed: bool = False


@dataclass(eq=False)
class WorkRequirementRec:
    id: str
    seq: int
    uuid: str
    namespace: str
    name: str
    tag: str | None
    priority: float
    created: datetime
    status: WorkRequirementStatus = WorkRequirementStatus.RUNNING
    status_changed: datetime | None = None
    groups: list[GroupRec] = field(default_factory=list)
    next_group_n: int = 1


@dataclass(eq=False)
class WorkerRec:
    id: str
    node: NodeRec
    status: WorkerStatus
    registered: datetime
    task: TaskRec | None = None


@dataclass(eq=False)
class InstanceRec:
    id: str
    seq: int
    cr_id: str
    pool_id: str
    hostname: str
    private_ip: str
    public_ip: str
    created: datetime
    status: InstanceStatus = InstanceStatus.PENDING
    status_changed: datetime | None = None
    node: NodeRec | None = None
    address_index: int = -1


@dataclass(eq=False)
class NodeRec:
    id: str
    seq: int
    pool_id: str
    instance: InstanceRec
    created: datetime
    status: NodeStatus | None = None  # None while booting: not yet registered
    status_changed: datetime | None = None
    registered: datetime | None = None
    deregistered: datetime | None = None
    worker: WorkerRec | None = None
    idle_token: int = 0

    @property
    def live(self) -> bool:
        return self.status in LIVE_NODE


@dataclass(eq=False)
class ComputeRequirementRec:
    id: str
    seq: int
    namespace: str
    name: str
    tag: str | None
    template: Template
    usage: ComputeRequirementTemplateUsage
    source_id: str
    pool_id: str
    created: datetime
    target: int
    status: ComputeRequirementStatus = ComputeRequirementStatus.PROVISIONING
    status_changed: datetime | None = None
    next_status: ComputeRequirementStatus | None = None
    instances: list[InstanceRec] = field(default_factory=list)


@dataclass(eq=False)
class PoolRec:
    id: str
    seq: int
    namespace: str
    name: str
    cr_id: str
    template: Template
    properties: ProvisionedWorkerPoolProperties | None
    worker_tag: str | None
    created: datetime
    target: int
    status: WorkerPoolStatus = WorkerPoolStatus.PENDING
    status_changed: datetime | None = None
    nodes: list[NodeRec] = field(default_factory=list)
    registered: int = 0  # live registered nodes (one worker each)
    claimed: int = 0
    ever_registered: bool = False
    last_claimed: datetime | None = None
    last_released: datetime | None = None
    idle_token: int = 0


# ── the platform ────────────────────────────────────────────────────────────────


class Platform:
    """All sandbox state and the rules by which it changes."""

    def __init__(
        self,
        catalogue: TemplateCatalogue | None = None,
        provision_delay: float = 0.0,
        task_start_delay: float = 0.0,
        max_nodes: int | None = None,
        simulate_exits: bool = True,
    ) -> None:
        self.lock = threading.RLock()
        self.catalogue = catalogue or TemplateCatalogue()
        self.provision_delay = provision_delay
        self.task_start_delay = task_start_delay
        self.max_nodes = max_nodes
        self.simulate_exits = simulate_exits
        self.scheduler: Scheduler | None = None
        self._hex = secrets.token_hex(3).upper()
        self._seq = itertools.count(1)
        self._address = itertools.count(0)

        self.work_requirements: dict[str, WorkRequirementRec] = {}
        self.wr_by_name: dict[tuple[str, str], WorkRequirementRec] = {}
        self.groups: dict[str, GroupRec] = {}
        self.tasks: dict[str, TaskRec] = {}
        self.pools: dict[str, PoolRec] = {}
        self.pools_by_name: dict[tuple[str, str], list[PoolRec]] = {}
        self.compute_requirements: dict[str, ComputeRequirementRec] = {}
        self.crs_by_name: dict[tuple[str, str], list[ComputeRequirementRec]] = {}
        self.instances: dict[str, InstanceRec] = {}
        self.instances_by_address: dict[str, list[InstanceRec]] = {}
        self.nodes: dict[str, NodeRec] = {}
        self.workers: dict[str, WorkerRec] = {}
        self.alive_instances = 0
        self._addresses_in_use: set[int] = set()

        # Scheduling indexes: READY tasks per group, free workers per worker tag.
        self.waiting: dict[str, deque[TaskRec]] = {}
        self.free_workers: dict[str, WorkerRec] = {}
        self.free_by_tag: dict[str | None, dict[str, WorkerRec]] = {}

    # ── ids and addresses ──

    def _id(self, kind: str, suffix: str | None = None) -> str:
        return f"ydid:{kind}:{self._hex}:{suffix or uuid.uuid4()}"

    def _allocate_address(self) -> int:
        """An index into 127.0.1.1 .. 127.0.255.254 (and the same in 127.1/16), never one in use."""
        for _ in range(255 * 254):
            index = next(self._address) % (255 * 254)
            if index not in self._addresses_in_use:
                self._addresses_in_use.add(index)
                return index
        raise InvalidRequest("quota exceeded: the sandbox has no free node addresses left")

    @staticmethod
    def _addresses(index: int) -> tuple[str, str]:
        third, fourth = 1 + index // 254, 1 + index % 254
        return f"127.0.{third}.{fourth}", f"127.1.{third}.{fourth}"

    def _sched(self) -> Scheduler:
        if self.scheduler is None:
            raise RuntimeError("the platform has no scheduler attached")
        return self.scheduler

    # ── work requirements ──

    def add_work_requirement(self, body: WorkRequirement) -> WorkRequirementRec:
        with self.lock:
            check_name("namespace", body.namespace)
            check_name("name", body.name)
            check_name("tag", body.tag, required=False)
            # Unique among live work requirements (like pools): a finished cluster's name can be
            # used again, so destroy-then-apply works. GET by name returns the newest.
            previous = self.wr_by_name.get((body.namespace, body.name))
            if previous is not None and not previous.status.finished:
                raise InvalidRequest(
                    f"work requirement '{body.namespace}/{body.name}' already exists in namespace '{body.namespace}'")
            groups = body.taskGroups or []
            self._validate_group_list(groups, existing={})
            wr_uuid = str(uuid.uuid4())
            now = utcnow()
            wr = WorkRequirementRec(
                id=self._id("workreq", wr_uuid), seq=next(self._seq), uuid=wr_uuid, namespace=body.namespace,
                name=body.name, tag=body.tag, priority=body.priority or 0, created=now, status_changed=now)
            for group in groups:
                wr.groups.append(self._new_group(wr, group))
            self.work_requirements[wr.id] = wr
            self.wr_by_name[(wr.namespace, wr.name)] = wr
            return wr

    def update_work_requirement(self, body: WorkRequirement) -> WorkRequirementRec:
        """Replace the task-group list with the body's, as the real PUT does."""
        with self.lock:
            if not body.id:
                raise InvalidRequest("id is required to update a work requirement")
            wr = self.get_work_requirement(body.id)
            if (body.namespace, body.name) != (wr.namespace, wr.name):
                raise InvalidRequest("the namespace and name of a work requirement cannot be changed")
            if wr.status.finished:
                raise InvalidWorkRequirementStatus(
                    f"InvalidWorkRequirementStatusException: work requirement {wr.id} is {wr.status.name} "
                    "and cannot be updated")
            check_name("tag", body.tag, required=False)
            groups = body.taskGroups or []
            existing = {g.id: g for g in wr.groups}
            self._validate_group_list(groups, existing)
            adding = any(g.id is None for g in groups)
            if adding and wr.status not in (WorkRequirementStatus.RUNNING, WorkRequirementStatus.HELD):
                raise InvalidWorkRequirementStatus(
                    f"InvalidWorkRequirementStatusException: work requirement {wr.id} is {wr.status.name}; "
                    "task groups can only be added while it is RUNNING or HELD")
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
            self._sched().allocate_soon()
            return wr

    def _validate_group_list(self, groups: list[TaskGroup], existing: dict[str, GroupRec]) -> None:
        if len(groups) > TASK_GROUPS_MAX:
            raise InvalidRequest(f"a work requirement holds at most {TASK_GROUPS_MAX} task groups")
        names: set[str] = set()
        for i, group in enumerate(groups):
            where = f"taskGroups[{i}]"
            if group.id is not None:
                if group.id not in existing:
                    raise InvalidRequest(f"{where}: task group {group.id} is not part of this work requirement")
                if group.name != existing[group.id].name:
                    raise InvalidRequest(f"{where}: the name of task group {group.id} cannot be changed")
            else:
                self._validate_new_group(where, group)
            if group.name in names:
                raise InvalidRequest(f"task group '{group.name}' already exists in this work requirement")
            names.add(group.name)
        for i, group in enumerate(groups):
            for dependency in (group.dependencies or []) + ([group.dependentOn] if group.dependentOn else []):
                if dependency not in names or dependency == group.name:
                    raise InvalidRequest(f"taskGroups[{i}].dependencies: no other task group is named {dependency!r}")

    @staticmethod
    def _validate_new_group(where: str, group: TaskGroup) -> None:
        check_name(f"{where}.name", group.name)
        check_name(f"{where}.tag", group.tag, required=False)
        spec = group.runSpecification
        if spec is None or not spec.taskTypes:
            raise InvalidRequest(f"{where}.runSpecification.taskTypes must name at least one task type")
        for tag in spec.workerTags or []:
            check_name(f"{where}.runSpecification.workerTags", tag)
        for namespace in spec.namespaces or []:
            check_name(f"{where}.runSpecification.namespaces", namespace)
        for key in ("minWorkers", "maxWorkers"):
            value = getattr(spec, key)
            if value is not None and value < 0:
                raise InvalidRequest(f"{where}.runSpecification.{key} must not be negative")

    def _new_group(self, wr: WorkRequirementRec, body: TaskGroup) -> GroupRec:
        n = wr.next_group_n
        wr.next_group_n += 1
        now = utcnow()
        dependencies = list(body.dependencies or [])
        if body.dependentOn and body.dependentOn not in dependencies:
            dependencies.append(body.dependentOn)
        group = GroupRec(
            id=f"ydid:taskgrp:{self._hex}:{wr.uuid}:{n}", seq=next(self._seq), wr_id=wr.id, name=body.name,
            run_spec=body.runSpecification, tag=body.tag, priority=body.priority or 0, dependencies=dependencies,
            finish_all=body.finishIfAllTasksFinished, finish_any_failed=body.finishIfAnyTaskFailed,
            completed_ttl=body.completedTaskTtl, task_template=body.taskTemplate, status_changed=now)
        if wr.status is WorkRequirementStatus.HELD:
            group.status = TaskGroupStatus.HELD
        self.groups[group.id] = group
        return group

    def _remove_group(self, group: GroupRec) -> None:
        """A group dropped by a PUT: its waiting tasks are cancelled, its running ones aborted."""
        group.removed = True
        self._set_group_status(group, TaskGroupStatus.CANCELLED)
        for task in group.tasks:
            if task.status in WAITING:
                self._finish_task(task, TaskStatus.CANCELLED)
            elif task.status.in_progress:
                self._abort_task(task, "abort")

    def get_work_requirement(self, wr_id: str) -> WorkRequirementRec:
        with self.lock:
            wr = self.work_requirements.get(wr_id)
            if wr is None:
                raise NotFound(f"work requirement {wr_id} not found")
            return wr

    def get_work_requirement_by_name(self, namespace: str, name: str) -> WorkRequirementRec:
        with self.lock:
            wr = self.wr_by_name.get((namespace, name))
            if wr is None:
                raise NotFound(f"work requirement '{namespace}/{name}' not found")
            return wr

    def transition_work_requirement(self, wr_id: str, status_name: str, abort: bool) -> WorkRequirementRec:
        with self.lock:
            wr = self.get_work_requirement(wr_id)
            try:
                target = WorkRequirementStatus[status_name]
            except KeyError:
                raise InvalidRequest(f"unknown work requirement status {status_name!r}") from None
            current = wr.status
            allowed = {
                WorkRequirementStatus.HELD: (WorkRequirementStatus.RUNNING,),
                WorkRequirementStatus.RUNNING: (WorkRequirementStatus.HELD,),
                WorkRequirementStatus.FINISHING: (WorkRequirementStatus.RUNNING, WorkRequirementStatus.HELD),
                WorkRequirementStatus.CANCELLING: (
                    WorkRequirementStatus.RUNNING, WorkRequirementStatus.HELD, WorkRequirementStatus.FINISHING,
                    WorkRequirementStatus.CANCELLING),
            }
            if current not in allowed.get(target, ()):
                raise InvalidWorkRequirementStatus(
                    f"InvalidWorkRequirementStatusException: work requirement {wr.id} is {current.name} "
                    f"and cannot transition to {target.name}")
            if target is WorkRequirementStatus.CANCELLING:
                self._cancel_work_requirement(wr, abort)
            elif target is WorkRequirementStatus.HELD:
                self._set_wr_status(wr, target)
                for group in wr.groups:
                    if not group.status.terminated and not group.status.terminating:
                        self._set_group_status(group, TaskGroupStatus.HELD)
            elif target is WorkRequirementStatus.RUNNING:
                self._set_wr_status(wr, target)
                for group in wr.groups:
                    if group.status is TaskGroupStatus.HELD:
                        self._set_group_status(
                            group, TaskGroupStatus.RUNNING if group.in_progress else TaskGroupStatus.PENDING)
                self._sched().allocate_soon()
            else:
                self._set_wr_status(wr, target)
                for group in wr.groups:
                    if not group.status.terminated and not group.status.terminating:
                        self._set_group_status(group, TaskGroupStatus.FINISHING)
                for group in list(wr.groups):
                    self._update_group(group)
                self._sched().allocate_soon()
            return wr

    def _cancel_work_requirement(self, wr: WorkRequirementRec, abort: bool) -> None:
        self._set_wr_status(wr, WorkRequirementStatus.CANCELLING)
        for group in wr.groups:
            if group.status.terminated:
                continue
            self._set_group_status(group, TaskGroupStatus.CANCELLING)
            for task in group.tasks:
                if task.status in WAITING:
                    self._finish_task(task, TaskStatus.CANCELLED, update=False)
                elif abort and task.status.in_progress:
                    self._abort_task(task, "abort", update=False)
        for group in list(wr.groups):
            self._update_group(group)
        self._update_work_requirement(wr)

    # ── tasks ──

    def add_tasks(self, group_id: str, bodies: list[Task]) -> list[TaskRec]:
        with self.lock:
            group = self.groups.get(group_id)
            if group is None or group.removed:
                raise NotFound(f"task group {group_id} not found")
            return self._add_tasks(group, bodies)

    def add_tasks_by_name(self, namespace: str, wr_name: str, group_name: str, bodies: list[Task]) -> list[TaskRec]:
        with self.lock:
            wr = self.get_work_requirement_by_name(namespace, wr_name)
            for group in wr.groups:
                if group.name == group_name:
                    return self._add_tasks(group, bodies)
            raise NotFound(f"task group '{group_name}' not found in work requirement '{namespace}/{wr_name}'")

    def _add_tasks(self, group: GroupRec, bodies: list[Task]) -> list[TaskRec]:
        wr = self.work_requirements[group.wr_id]
        if wr.status not in (WorkRequirementStatus.RUNNING, WorkRequirementStatus.HELD):
            raise InvalidWorkRequirementStatus(
                f"InvalidWorkRequirementStatusException: work requirement {wr.id} is {wr.status.name}; "
                "tasks can only be added while it is RUNNING or HELD")
        if group.status not in (TaskGroupStatus.PENDING, TaskGroupStatus.RUNNING, TaskGroupStatus.HELD):
            raise InvalidRequest(f"task group '{group.name}' is {group.status.name}; tasks cannot be added to it")
        template = group.task_template or TaskTemplate()
        names: set[str] = set()
        prepared = []
        for i, body in enumerate(bodies):
            where = f"tasks[{i}]"
            check_name(f"{where}.name", body.name, required=False)
            check_name(f"{where}.tag", body.tag, required=False)
            if body.name is not None:
                if body.name in group.task_names or body.name in names:
                    raise InvalidRequest(
                        f"Task names must be unique within task group: task '{body.name}' already exists "
                        f"in task group '{group.name}'")
                names.add(body.name)
            task_type = body.taskType or template.taskType
            if task_type is None:
                if len(group.run_spec.taskTypes) != 1:
                    raise InvalidRequest(f"{where}.taskType is required: the task group has several task types")
                task_type = group.run_spec.taskTypes[0]
            if task_type not in group.run_spec.taskTypes:
                raise InvalidRequest(
                    f"{where}.taskType {task_type!r} is not one of the task group's task types "
                    f"{group.run_spec.taskTypes}")
            environment = dict(template.environment or {})
            environment.update(body.environment or {})
            for key, value in environment.items():
                if not isinstance(key, str) or not isinstance(value, str):
                    raise InvalidRequest(f"{where}.environment must map strings to strings")
            prepared.append((body, task_type, environment or None))
        wr_uuid = wr.uuid
        group_n = group.id.rsplit(":", 1)[1]
        created = []
        now = utcnow()
        for body, task_type, environment in prepared:
            task = TaskRec(
                id=f"ydid:task:{self._hex}:{wr_uuid}:{group_n}:{group.next_task_n}", seq=next(self._seq),
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
            self._sched().allocate_soon()
        return created

    def get_task(self, task_id: str) -> TaskRec:
        with self.lock:
            task = self.tasks.get(task_id)
            if task is None:
                raise NotFound(f"task {task_id} not found")
            return task

    def cancel_task(self, task_id: str, abort: bool) -> TaskRec:
        """A waiting task is CANCELLED; with abort a running one is ABORTED; without, it runs on."""
        with self.lock:
            task = self.get_task(task_id)
            if task.status in WAITING:
                self._finish_task(task, TaskStatus.CANCELLED)
            elif abort and task.status.in_progress:
                self._abort_task(task, "abort")
            return task

    def _abort_task(self, task: TaskRec, reason: str, update: bool = True) -> None:
        if task.status.finished or task.ending is not None:
            return
        if task.status in WAITING:
            self._finish_task(task, TaskStatus.CANCELLED, update=update)
            return
        task.ending = reason
        task.abort_requested = utcnow()
        if task.runtime_started:
            self._sched().abort_task(task.node_id, task.id)
        else:
            self._end_task(task, None, update=update)

    def _set_task_status(self, task: TaskRec, status: TaskStatus) -> None:
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

    def _finish_task(self, task: TaskRec, status: TaskStatus, error: TaskError | None = None,
                     update: bool = True) -> None:
        worker = self.workers.get(task.worker_id) if task.worker_id else None
        if worker is not None and worker.task is task:
            self._release_worker(worker)
        if error is not None:
            task.errors.append(error)
        self._set_task_status(task, status)
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
            worker = self.workers.get(task.worker_id) if task.worker_id else None
            if worker is not None and worker.task is task:
                self._release_worker(worker)
            task.errors.append(error)
            task.retry_count += 1
            task.node_id = task.worker_id = None
            self._set_task_status(task, TaskStatus.READY)
            self.waiting.setdefault(task.group_id, deque()).append(task)
            self._sched().allocate_soon()
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

    def task_exited(self, task_id: str, attempt: int, exit_code: int, output_tail: str = "") -> None:
        """Runtime callback: the task's process ended (for any reason)."""
        with self.lock:
            task = self.tasks.get(task_id)
            if task is None or task.attempt != attempt or not task.runtime_started or task.status.finished:
                return
            task.exit_code = exit_code
            task.output_tail = output_tail
            self._end_task(task, exit_code)

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

    def _set_group_status(self, group: GroupRec, status: TaskGroupStatus) -> None:
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
                self._set_group_status(group, TaskGroupStatus.CANCELLED)
        elif status is TaskGroupStatus.FAILING:
            if group.in_progress == 0:
                self._set_group_status(group, TaskGroupStatus.FAILED)
        elif group.finish_any_failed and group.failed:
            self._set_group_status(group, TaskGroupStatus.FAILING)
            for task in group.tasks:
                if task.status in WAITING:
                    self._finish_task(task, TaskStatus.DISCARDED, update=False)
                elif task.status.in_progress:
                    self._abort_task(task, "abort", update=False)
            if group.in_progress == 0:
                self._set_group_status(group, TaskGroupStatus.FAILED)
        elif group.unfinished == 0 and (
                (group.tasks and group.finish_all) or status is TaskGroupStatus.FINISHING):
            self._set_group_status(group, TaskGroupStatus.FAILED if group.failed else TaskGroupStatus.COMPLETED)
        if group.status.terminated and status is not group.status:
            self._sched().allocate_soon()  # groups that depend on it may start now
        if not group.removed:
            self._update_work_requirement(self.work_requirements[group.wr_id])

    def _update_work_requirement(self, wr: WorkRequirementRec) -> None:
        if wr.status.finished:
            return
        if wr.status is WorkRequirementStatus.CANCELLING:
            if all(group.in_progress == 0 for group in wr.groups):
                for group in wr.groups:
                    if not group.status.terminated:
                        self._set_group_status(group, TaskGroupStatus.CANCELLED)
                self._set_wr_status(wr, WorkRequirementStatus.CANCELLED)
            return
        if wr.groups and all(group.status.terminated for group in wr.groups):
            failed = any(group.status is TaskGroupStatus.FAILED for group in wr.groups)
            self._set_wr_status(wr, WorkRequirementStatus.FAILED if failed else WorkRequirementStatus.COMPLETED)

    # ── allocation (called by the scheduler with the lock held) ──

    def group_can_allocate(self, group: GroupRec) -> bool:
        if group.removed or group.status not in (
                TaskGroupStatus.PENDING, TaskGroupStatus.RUNNING, TaskGroupStatus.FINISHING):
            return False
        wr = self.work_requirements[group.wr_id]
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
        self._claim_worker(worker, task)
        task.attempt += 1
        task.node_id = worker.node.id
        task.worker_id = worker.id
        task.ending = None
        self._set_task_status(task, TaskStatus.ALLOCATED)
        group = self.groups[task.group_id]
        if group.status is TaskGroupStatus.PENDING:
            self._set_group_status(group, TaskGroupStatus.RUNNING)
        self._sched().later(self.task_start_delay, self.task_start_due, task.id, task.attempt)

    def task_start_due(self, task_id: str, attempt: int) -> None:
        with self.lock:
            task = self.tasks.get(task_id)
            if task is None or task.attempt != attempt or task.status is not TaskStatus.ALLOCATED:
                return
            node = self.nodes[task.node_id]
            self._set_task_status(task, TaskStatus.EXECUTING)
            task.started = utcnow()
            task.runtime_started = True
            self._sched().run_task(self._task_run(task, node), attempt)
            timeout = task.timeout or self.groups[task.group_id].run_spec.taskTimeout
            if timeout is not None:
                self._sched().later(timeout.total_seconds(), self.task_timeout_due, task.id, attempt)
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
        self._sched().later(max(after, 0.0), self.task_exited, task.id, attempt, code, "")

    def _task_run(self, task: TaskRec, node: NodeRec) -> TaskRun:
        pool = self.pools[node.pool_id]
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
        with self.lock:
            task = self.tasks.get(task_id)
            if task is None or task.attempt != attempt or not task.status.in_progress or task.ending is not None:
                return
            self._abort_task(task, "timeout")

    # ── worker pools and compute requirements ──

    def provision_pool(self, usage: ComputeRequirementTemplateUsage,
                       properties: ProvisionedWorkerPoolProperties | None) -> PoolRec:
        with self.lock:
            where = "requirementTemplateUsage"
            if usage is None:
                raise InvalidRequest(f"{where} is required")
            template = self.catalogue.find(usage.templateId or "")
            if template is None:
                raise InvalidRequest(
                    f"{where}.templateId: compute requirement template {usage.templateId!r} not found; known "
                    "templates: " + ", ".join(t.name for t in self.catalogue.all()))
            check_name(f"{where}.requirementNamespace", usage.requirementNamespace)
            check_name(f"{where}.requirementName", usage.requirementName)
            check_name(f"{where}.requirementTag", usage.requirementTag, required=False)
            target = usage.targetInstanceCount or 0
            if target < 0:
                raise InvalidRequest(f"{where}.targetInstanceCount must not be negative")
            if properties is not None:
                check_name("provisionedProperties.workerTag", properties.workerTag, required=False)
                self._check_node_limits(properties, target)
            key = (usage.requirementNamespace, usage.requirementName)
            if any(not p.status.finished for p in self.pools_by_name.get(key, ())):
                raise InvalidRequest(
                    f"worker pool '{key[0]}/{key[1]}' already exists in namespace '{key[0]}'")
            if any(c.status is not ComputeRequirementStatus.TERMINATED for c in self.crs_by_name.get(key, ())):
                raise InvalidRequest(
                    f"compute requirement '{key[0]}/{key[1]}' already exists in namespace '{key[0]}'")
            self._check_quota(target)
            now = utcnow()
            pool_id, cr_id = self._id("wrkrpool"), self._id("compreq")
            cr = ComputeRequirementRec(
                id=cr_id, seq=next(self._seq), namespace=key[0], name=key[1], tag=usage.requirementTag,
                template=template, usage=usage, source_id=self._id("compsrc"), pool_id=pool_id, created=now,
                target=target, status_changed=now)
            pool = PoolRec(
                id=pool_id, seq=next(self._seq), namespace=key[0], name=key[1], cr_id=cr_id, template=template,
                properties=properties, worker_tag=properties.workerTag if properties else None, created=now,
                target=target, status_changed=now)
            self.compute_requirements[cr.id] = cr
            self.crs_by_name.setdefault(key, []).append(cr)
            self.pools[pool.id] = pool
            self.pools_by_name.setdefault(key, []).append(pool)
            self._add_instances(cr, target)
            self._update_compute_requirement(cr)
            self._refresh_pool(pool)
            return pool

    @staticmethod
    def _check_node_limits(properties: ProvisionedWorkerPoolProperties, size: int) -> None:
        low, high = properties.minNodes, properties.maxNodes
        if low is not None and high is not None and low > high:
            raise InvalidRequest("provisionedProperties.minNodes must not exceed maxNodes")
        if high is not None and size > high:
            raise InvalidRequest(f"the node count {size} exceeds the worker pool's maxNodes {high}")
        if low is not None and size < low:
            raise InvalidRequest(f"the node count {size} is below the worker pool's minNodes {low}")

    def _check_quota(self, extra: int) -> None:
        if self.max_nodes is not None and extra > 0 and self.alive_instances + extra > self.max_nodes:
            raise InvalidRequest(
                f"quota exceeded: {self.alive_instances} nodes are live or provisioning and {extra} more were "
                f"requested, but the sandbox allows at most {self.max_nodes} (--max-nodes)")

    def _add_instances(self, cr: ComputeRequirementRec, count: int) -> None:
        for _ in range(count):
            index = self._allocate_address()
            private_ip, public_ip = self._addresses(index)
            instance = InstanceRec(
                id=f"i-{secrets.token_hex(8)}", seq=next(self._seq), cr_id=cr.id, pool_id=cr.pool_id,
                hostname="ip-" + private_ip.replace(".", "-"), private_ip=private_ip, public_ip=public_ip,
                created=utcnow(), status_changed=utcnow(), address_index=index)
            cr.instances.append(instance)
            self.instances[instance.id] = instance
            for key in (private_ip, public_ip, instance.hostname):
                self.instances_by_address.setdefault(key, []).append(instance)
            self.alive_instances += 1
            self._sched().later(self.provision_delay, self.instance_boot_due, instance.id)

    def _set_instance_status(self, instance: InstanceRec, status: InstanceStatus) -> None:
        if instance.status is status:
            return
        if instance.status.alive and not status.alive:
            self.alive_instances -= 1
        if status is InstanceStatus.TERMINATED:
            self._addresses_in_use.discard(instance.address_index)
        instance.status = status
        instance.status_changed = utcnow()

    def instance_boot_due(self, instance_id: str) -> None:
        """Timer: the provisioning delay has passed; the instance runs and its node boots."""
        with self.lock:
            instance = self.instances.get(instance_id)
            if instance is None or instance.status is not InstanceStatus.PENDING:
                return
            self._set_instance_status(instance, InstanceStatus.RUNNING)
            pool = self.pools[instance.pool_id]
            cr = self.compute_requirements[instance.cr_id]
            node = NodeRec(id=self._id("node"), seq=next(self._seq), pool_id=pool.id, instance=instance,
                           created=utcnow())
            instance.node = node
            pool.nodes.append(node)
            self.nodes[node.id] = node
            spec = NodeSpec(node_id=node.id, instance_id=instance.id, hostname=instance.hostname,
                            private_ip=instance.private_ip, public_ip=instance.public_ip, pool_name=pool.name,
                            userdata=cr.usage.userData)
            self._update_compute_requirement(cr)
            self._sched().boot_node(spec)

    def node_booted(self, node_id: str) -> None:
        """Runtime callback: the node is up; it registers with one worker."""
        with self.lock:
            node = self.nodes.get(node_id)
            if node is None or node.status is not None:
                return
            now = utcnow()
            node.status = NodeStatus.RUNNING
            node.status_changed = node.registered = now
            worker = WorkerRec(id=self._id("wrkr"), node=node, status=WorkerStatus.STOPPED, registered=now)
            node.worker = worker
            self.workers[worker.id] = worker
            pool = self.pools[node.pool_id]
            pool.registered += 1
            pool.ever_registered = True
            self._make_free(worker)
            self._refresh_pool(pool)
            self._start_node_idle_timer(node)
            self._sched().allocate_soon()

    def node_boot_failed(self, node_id: str, message: str) -> None:
        with self.lock:
            node = self.nodes.get(node_id)
            if node is None or node.status is not None:
                return
            log.error("node %s failed to boot: %s", node_id, message)
            node.status = NodeStatus.TERMINATED
            node.status_changed = node.deregistered = utcnow()
            self._set_instance_status(node.instance, InstanceStatus.TERMINATED)
            self._refresh_pool(self.pools[node.pool_id])
            self._update_compute_requirement(self.compute_requirements[node.instance.cr_id])

    def node_stopped(self, node_id: str) -> None:
        """Runtime callback: every process of the node has ended; its instance is gone."""
        with self.lock:
            node = self.nodes.get(node_id)
            if node is None:
                return
            worker = node.worker
            if worker is not None and worker.task is not None:
                task = worker.task
                task.ending = task.ending or "lost"
                self._end_task(task, None)
            self._set_instance_status(node.instance, InstanceStatus.TERMINATED)
            self._update_compute_requirement(self.compute_requirements[node.instance.cr_id])

    def _make_free(self, worker: WorkerRec) -> None:
        tag = self.pools[worker.node.pool_id].worker_tag
        self.free_workers[worker.id] = worker
        self.free_by_tag.setdefault(tag, {})[worker.id] = worker

    def _make_busy(self, worker: WorkerRec) -> None:
        tag = self.pools[worker.node.pool_id].worker_tag
        self.free_workers.pop(worker.id, None)
        bucket = self.free_by_tag.get(tag)
        if bucket is not None:
            bucket.pop(worker.id, None)
            if not bucket:
                del self.free_by_tag[tag]

    def _claim_worker(self, worker: WorkerRec, task: TaskRec) -> None:
        self._make_busy(worker)
        worker.task = task
        worker.status = WorkerStatus.RUNNING
        worker.node.idle_token += 1
        pool = self.pools[worker.node.pool_id]
        pool.claimed += 1
        pool.last_claimed = utcnow()
        self._refresh_pool(pool)

    def _release_worker(self, worker: WorkerRec) -> None:
        worker.task = None
        pool = self.pools[worker.node.pool_id]
        pool.claimed -= 1
        pool.last_released = utcnow()
        if worker.node.live:
            worker.status = WorkerStatus.STOPPED
            self._make_free(worker)
            self._start_node_idle_timer(worker.node)
            self._sched().allocate_soon()
        self._refresh_pool(pool)

    def _refresh_pool(self, pool: PoolRec) -> None:
        """Derive a live pool's status from its workers; start its idle timer when it becomes idle."""
        if pool.status.finished:
            return
        before = pool.status
        if pool.claimed > 0:
            status = WorkerPoolStatus.RUNNING
        elif pool.registered > 0:
            status = WorkerPoolStatus.IDLE
        elif pool.ever_registered or not self._pending_instances(pool):
            status = WorkerPoolStatus.EMPTY
        else:
            status = WorkerPoolStatus.PENDING
        if status is before:
            return
        pool.status = status
        pool.status_changed = utcnow()
        idle = (WorkerPoolStatus.EMPTY, WorkerPoolStatus.IDLE)
        if status in idle and before not in idle:
            pool.idle_token += 1
            shutdown = pool.properties.idlePoolShutdown if pool.properties else None
            if _enabled(shutdown):
                self._sched().later(shutdown.timeout.total_seconds(), self.pool_idle_due, pool.id, pool.idle_token)
        elif status not in idle:
            pool.idle_token += 1

    def _pending_instances(self, pool: PoolRec) -> bool:
        cr = self.compute_requirements[pool.cr_id]
        return any(i.status is InstanceStatus.PENDING or (i.node is not None and i.node.status is None)
                   for i in cr.instances if i.status.alive)

    def _start_node_idle_timer(self, node: NodeRec) -> None:
        node.idle_token += 1
        pool = self.pools[node.pool_id]
        shutdown = pool.properties.idleNodeShutdown if pool.properties else None
        if _enabled(shutdown):
            self._sched().later(shutdown.timeout.total_seconds(), self.node_idle_due, node.id, node.idle_token)

    def node_idle_due(self, node_id: str, token: int) -> None:
        with self.lock:
            node = self.nodes.get(node_id)
            if node is None or not node.live or node.idle_token != token or node.worker.task is not None:
                return
            self._shutdown_node(node)

    def pool_idle_due(self, pool_id: str, token: int) -> None:
        with self.lock:
            pool = self.pools.get(pool_id)
            if pool is None or pool.idle_token != token or pool.status not in (
                    WorkerPoolStatus.EMPTY, WorkerPoolStatus.IDLE):
                return
            self._shutdown_pool(pool)

    def get_pool(self, pool_id: str) -> PoolRec:
        with self.lock:
            pool = self.pools.get(pool_id)
            if pool is None:
                raise NotFound(f"worker pool {pool_id} not found")
            return pool

    def get_pool_by_name(self, namespace: str, name: str) -> PoolRec:
        with self.lock:
            return _live_or_newest(self.pools_by_name.get((namespace, name)), lambda p: not p.status.finished,
                                   f"worker pool '{namespace}/{name}' not found")

    def shutdown_pool(self, pool_id: str) -> PoolRec:
        """Shut a pool down; a pool already shut down or terminated is left as it is."""
        with self.lock:
            pool = self.get_pool(pool_id)
            self._shutdown_pool(pool)
            return pool

    def _shutdown_pool(self, pool: PoolRec) -> None:
        if pool.status.finished:
            return
        pool.status = WorkerPoolStatus.SHUTDOWN
        pool.status_changed = utcnow()
        self._terminate_cr(self.compute_requirements[pool.cr_id])

    def terminate_pool(self, pool_id: str) -> PoolRec:
        """Out of band: the pool and its compute requirement are terminated at once."""
        with self.lock:
            pool = self.get_pool(pool_id)
            self._terminate_cr(self.compute_requirements[pool.cr_id])
            return pool

    def resize_pool(self, pool_id: str, size: int) -> PoolRec:
        with self.lock:
            pool = self.get_pool(pool_id)
            if pool.status.finished:
                raise InvalidRequest(f"worker pool {pool.id} is {pool.status.name} and cannot be resized")
            if size < 0:
                raise InvalidRequest("size must not be negative")
            if pool.properties is not None:
                self._check_node_limits(pool.properties, size)
            cr = self.compute_requirements[pool.cr_id]
            alive = [i for i in cr.instances if i.status.alive]
            self._check_quota(size - len(alive))
            pool.target = cr.target = size
            if size > len(alive):
                self._add_instances(cr, size - len(alive))
            for instance in self._removal_order(alive)[:max(len(alive) - size, 0)]:
                self._terminate_instance(instance, NodeStatus.DEREGISTERED)
            self._update_compute_requirement(cr)
            self._refresh_pool(pool)
            return pool

    @staticmethod
    def _removal_order(alive: list[InstanceRec]) -> list[InstanceRec]:
        """Scale down takes instances not yet booted first, then idle nodes, then busy ones; newest first."""
        def rank(instance: InstanceRec) -> tuple[int, int]:
            node = instance.node
            if node is None or not node.live:
                return 0, -instance.seq
            return (1 if node.worker is None or node.worker.task is None else 2), -instance.seq
        return sorted(alive, key=rank)

    def _terminate_instance(self, instance: InstanceRec, node_status: NodeStatus) -> None:
        if not instance.status.alive:
            return
        if instance.node is not None:
            self._end_node(instance.node, node_status)
        else:
            self._set_instance_status(instance, InstanceStatus.TERMINATED)

    def _end_node(self, node: NodeRec, status: NodeStatus) -> None:
        """The node leaves: its worker stops, its tasks fail as ALLOCATION_LOST, its processes are stopped."""
        if node.status is not None and not node.live:
            return
        registered = node.live
        now = utcnow()
        node.status = status
        node.status_changed = node.deregistered = now
        self._set_instance_status(node.instance, InstanceStatus.TERMINATING)
        pool = self.pools[node.pool_id]
        worker = node.worker
        if worker is not None:
            self._make_busy(worker)
            worker.status = WorkerStatus.LOST if status is NodeStatus.LOST else WorkerStatus.SHUTDOWN
            task = worker.task
            if task is not None and not task.status.finished:
                task.ending = task.ending or "lost"
                if not task.runtime_started:  # else its on_exit, from runtime.stop_node, ends it
                    self._end_task(task, None)
        if registered:
            pool.registered -= 1
        self._refresh_pool(pool)
        self._sched().stop_node(node.id)

    def _terminate_cr(self, cr: ComputeRequirementRec) -> None:
        if cr.status in (ComputeRequirementStatus.TERMINATING, ComputeRequirementStatus.TERMINATED):
            return
        cr.status = ComputeRequirementStatus.TERMINATING
        cr.next_status = ComputeRequirementStatus.TERMINATED
        cr.status_changed = utcnow()
        pool = self.pools[cr.pool_id]
        if not pool.status.finished:
            pool.status = WorkerPoolStatus.SHUTDOWN
            pool.status_changed = utcnow()
        for instance in cr.instances:
            self._terminate_instance(instance, NodeStatus.TERMINATED)
        self._update_compute_requirement(cr)

    def _update_compute_requirement(self, cr: ComputeRequirementRec) -> None:
        if cr.status is ComputeRequirementStatus.TERMINATING:
            if all(i.status is InstanceStatus.TERMINATED for i in cr.instances):
                cr.status, cr.next_status = ComputeRequirementStatus.TERMINATED, None
                cr.status_changed = utcnow()
                pool = self.pools[cr.pool_id]
                pool.status = WorkerPoolStatus.TERMINATED
                pool.status_changed = utcnow()
            return
        if cr.status is ComputeRequirementStatus.TERMINATED:
            return
        pending = any(i.status is InstanceStatus.PENDING for i in cr.instances)
        status = ComputeRequirementStatus.PROVISIONING if pending else ComputeRequirementStatus.RUNNING
        if cr.status is not status:
            cr.status = status
            cr.status_changed = utcnow()
        cr.next_status = ComputeRequirementStatus.RUNNING if pending else None

    def transition_compute_requirement(self, cr_id: str, status_name: str) -> ComputeRequirementRec:
        with self.lock:
            cr = self.get_compute_requirement(cr_id)
            if status_name != ComputeRequirementStatus.TERMINATED.value:
                if status_name not in ComputeRequirementStatus.__members__:
                    raise InvalidRequest(f"unknown compute requirement status {status_name!r}")
                raise InvalidRequest(
                    f"compute requirement {cr.id} cannot transition to {status_name}: the sandbox's simulated "
                    "compute source supports only TERMINATED")
            self._terminate_cr(cr)
            return cr

    def get_compute_requirement(self, cr_id: str) -> ComputeRequirementRec:
        with self.lock:
            cr = self.compute_requirements.get(cr_id)
            if cr is None:
                raise NotFound(f"compute requirement {cr_id} not found")
            return cr

    def get_compute_requirement_by_name(self, namespace: str, name: str) -> ComputeRequirementRec:
        with self.lock:
            return _live_or_newest(
                self.crs_by_name.get((namespace, name)),
                lambda c: c.status is not ComputeRequirementStatus.TERMINATED,
                f"compute requirement '{namespace}/{name}' not found")

    def compute_requirement_updating(self, cr_id: str) -> bool:
        with self.lock:
            cr = self.get_compute_requirement(cr_id)
            return cr.next_status is not None

    # ── nodes ──

    def get_node(self, node_id: str) -> NodeRec:
        with self.lock:
            node = self.nodes.get(node_id)
            if node is None or node.status is None:
                raise NotFound(f"node {node_id} not found")
            return node

    def get_node_by_worker(self, worker_id: str) -> NodeRec:
        with self.lock:
            worker = self.workers.get(worker_id)
            if worker is None:
                raise NotFound(f"worker {worker_id} not found")
            return worker.node

    def shutdown_node(self, node_id: str) -> NodeRec:
        """DELETE nodes/{id}: the node is deregistered, its instance terminated, the pool's target lowered."""
        with self.lock:
            node = self.get_node(node_id)
            self._shutdown_node(node)
            return node

    def _shutdown_node(self, node: NodeRec) -> None:
        if not node.live:
            return
        pool = self.pools[node.pool_id]
        cr = self.compute_requirements[pool.cr_id]
        pool.target = cr.target = max(pool.target - 1, 0)
        self._end_node(node, NodeStatus.DEREGISTERED)
        self._update_compute_requirement(cr)

    def kill_node(self, node_id: str) -> NodeRec:
        """Out of band: the node is LOST, its instance terminated, its tasks fail; nothing replaces it."""
        with self.lock:
            node = self.get_node(node_id)
            self._end_node(node, NodeStatus.LOST)
            return node

    # ── searches (each returns records in the requested order) ──

    def search_work_requirements(self, search: WorkRequirementSearch) -> list[WorkRequirementRec]:
        with self.lock:
            namespaces = _namespaces(search.namespace, search.namespaces)
            found = [
                wr for wr in self.work_requirements.values()
                if (namespaces is None or wr.namespace in namespaces)
                and (search.name is None or search.name in wr.name)
                and (search.tag is None or wr.tag == search.tag)
                and (not search.statuses or wr.status in search.statuses)
                and search.isHealthy is not False
                and _in_range(wr.created, search.createdTime)
                and _in_range(wr.status_changed, search.statusChangedTime)
            ]
            return _sorted(found, search.sortField, search.sortDirection)

    def search_tasks(self, search: TaskSearch, group_ids: list[str] | None = None) -> list[TaskRec]:
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
                and _in_range(t.started, search.startedTime)
                and _in_range(t.finished, search.finishedTime)
            ]
            return _sorted(found, search.sortField, search.sortDirection)

    def search_pools(self, search: WorkerPoolSearch) -> list[PoolRec]:
        with self.lock:
            namespaces = _namespaces(search.namespace, search.namespaces)
            found = [
                p for p in self.pools.values()
                if (namespaces is None or p.namespace in namespaces)
                and (search.name is None or search.name in p.name)
                and (search.type is None or PROVISIONED_POOL_TYPE.endswith(search.type))
                and (not search.statuses or p.status in search.statuses)
                and search.isHealthy is not False
                and _in_range(p.created, search.createdTime)
            ]
            return _sorted(found, search.sortField, search.sortDirection)

    def search_nodes(self, search: NodeSearch) -> list[NodeRec]:
        with self.lock:
            if search.workerPoolId:
                pool = self.pools.get(search.workerPoolId)
                candidates: Iterable[NodeRec] = pool.nodes if pool else ()
            elif search.instanceId:
                instance = self.instances.get(search.instanceId)
                candidates = [instance.node] if instance and instance.node else ()
            else:
                candidates = self.nodes.values()
            found = [n for n in candidates if n.status is not None and self._node_matches(n, search)]
            return _sorted(found, search.sortField, search.sortDirection)

    def _node_matches(self, node: NodeRec, search: NodeSearch) -> bool:
        pool = self.pools[node.pool_id]
        worker = node.worker
        task_group = worker.task.group_id if worker and worker.task else None
        return ((search.workerPoolId is None or node.pool_id == search.workerPoolId)
                and (search.instanceId is None or node.instance.id == search.instanceId)
                and (not search.statuses or node.status in search.statuses)
                and (not search.providers or any(p.value == PROVIDER for p in search.providers))
                and (search.region is None or search.region == REGION)
                and (search.instanceType is None or search.instanceType == pool.template.instance_type)
                and _in_range(pool.template.ram, search.ram)
                and _in_range(pool.template.vcpus, search.vcpus)
                and _in_range(worker.registered if worker else None, search.workerRegisteredTime)
                and _in_range(node.registered, search.registeredTime)
                and _in_range(node.deregistered, search.deregisteredTime)
                and _in_range(None, search.preemptionWarningTime)
                and (search.workerTaskGroupId is None or task_group == search.workerTaskGroupId)
                and (search.workerTag is None or pool.worker_tag == search.workerTag)
                and (not search.workerStatuses or (worker is not None and worker.status in search.workerStatuses)))

    def search_instances(self, search: InstanceSearch) -> list[InstanceRec]:
        with self.lock:
            if search.computeRequirementId:
                cr = self.compute_requirements.get(search.computeRequirementId)
                candidates: Iterable[InstanceRec] = cr.instances if cr else ()
            elif search.privateIpAddress or search.publicIpAddress or search.hostname:
                key = search.privateIpAddress or search.publicIpAddress or search.hostname
                candidates = self.instances_by_address.get(key, ())
            else:
                candidates = self.instances.values()
            found = [
                i for i in candidates
                if (search.computeRequirementId is None or i.cr_id == search.computeRequirementId)
                and (search.computeSourceId is None
                     or self.compute_requirements[i.cr_id].source_id == search.computeSourceId)
                and (not search.providers or any(p.value == PROVIDER for p in search.providers))
                and (not search.regions or REGION in search.regions)
                and (not search.statuses or i.status in search.statuses)
                and (not search.imageIds or _image_id(self.compute_requirements[i.cr_id]) in search.imageIds)
                and (search.publicIpAddress is None or i.public_ip == search.publicIpAddress)
                and (search.privateIpAddress is None or i.private_ip == search.privateIpAddress)
                and (search.hostname is None or i.hostname == search.hostname)
            ]
            return _sorted(found, search.sortField, search.sortDirection)

    def search_compute_requirements(self, search: ComputeRequirementSummarySearch) -> list[ComputeRequirementRec]:
        with self.lock:
            namespaces = _namespaces(search.namespace, search.namespaces)
            found = [
                c for c in self.compute_requirements.values()
                if (namespaces is None or c.namespace in namespaces)
                and (search.name is None or search.name in c.name)
                and (search.tag is None or c.tag == search.tag)
                and (not search.statuses or c.status in search.statuses)
                and search.isHealthy is not False
                and _in_range(c.created, search.createdTime)
            ]
            return _sorted(found, search.sortField, search.sortDirection)

    # ── sandbox operations ──

    def abort_task(self, task_id: str) -> TaskRec:
        return self.cancel_task(task_id, abort=True)

    def cancel_work_requirement(self, wr_id: str) -> WorkRequirementRec:
        with self.lock:
            wr = self.get_work_requirement(wr_id)
            if not wr.status.finished:
                self._cancel_work_requirement(wr, abort=True)
            return wr

    def snapshot(self) -> dict:
        """Every object with its status, for GET /sandbox/v1/state."""
        with self.lock:
            return {
                "workRequirements": [_wr_state(wr) for wr in self.work_requirements.values()],
                "workerPools": [_pool_state(p) for p in self.pools.values()],
                "computeRequirements": [_cr_state(c) for c in self.compute_requirements.values()],
                "instances": [_instance_state(i) for i in self.instances.values()],
                "nodes": [_node_state(n) for n in self.nodes.values() if n.status is not None],
                "live": self.live_counts(),
            }

    def live_counts(self) -> dict:
        with self.lock:
            return {
                "workRequirements": sum(1 for w in self.work_requirements.values() if not w.status.finished),
                "workerPools": sum(1 for p in self.pools.values() if not p.status.finished),
                "computeRequirements": sum(1 for c in self.compute_requirements.values()
                                           if c.status is not ComputeRequirementStatus.TERMINATED),
                "instances": self.alive_instances,
                "nodes": sum(1 for n in self.nodes.values() if n.live),
                "tasks": sum(1 for t in self.tasks.values() if not t.status.finished),
            }


PROVISIONED_POOL_TYPE = "co.yellowdog.platform.model.ProvisionedWorkerPool"
_SORT_KEYS = {
    "createdTime": lambda r: r.seq,
    "id": lambda r: r.id,
    "name": lambda r: getattr(r, "name", None) or "",
    "status": lambda r: r.status.name if r.status else "",
    "statusChangedTime": lambda r: r.status_changed or datetime.min.replace(tzinfo=UTC),
}


def _sorted(records: list, sort_field: str | None, direction: Any) -> list:
    key = _SORT_KEYS.get(sort_field or "createdTime", _SORT_KEYS["createdTime"])
    descending = direction is not None and direction.name == "DESCENDING"
    return sorted(records, key=key, reverse=descending)


def _namespaces(single: str | None, many: list[str] | None) -> set[str] | None:
    if single is None and not many:
        return None
    return set(many or []) | ({single} if single else set())


def _in_range(value: Any, bounds: Any) -> bool:
    if bounds is None or (bounds.min is None and bounds.max is None):
        return True
    if value is None:
        return False
    return (bounds.min is None or value >= bounds.min) and (bounds.max is None or value <= bounds.max)


def _image_id(cr: ComputeRequirementRec) -> str:
    return cr.usage.imagesId or "sim-image"


def _enabled(shutdown: Any) -> bool:
    return shutdown is not None and shutdown.enabled is not False and shutdown.timeout is not None


def _live_or_newest(candidates: list | None, is_live: Callable[[Any], bool], missing: str) -> Any:
    if not candidates:
        raise NotFound(missing)
    for candidate in reversed(candidates):
        if is_live(candidate):
            return candidate
    return candidates[-1]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z") if value else None


def _task_state(task: TaskRec) -> dict:
    return {
        "id": task.id, "name": task.name, "status": task.status.name, "taskGroupId": task.group_id,
        "nodeId": task.node_id, "workerId": task.worker_id, "exitCode": task.exit_code,
        "retryCount": task.retry_count, "environment": task.environment or {},
        "errors": [{"errorType": e.errorType, "processExitCode": e.processExitCode, "error": e.error}
                   for e in task.errors],
        "startedTime": _iso(task.started), "finishedTime": _iso(task.finished),
    }


def _wr_state(wr: WorkRequirementRec) -> dict:
    return {
        "id": wr.id, "namespace": wr.namespace, "name": wr.name, "status": wr.status.name,
        "taskGroups": [{"id": g.id, "name": g.name, "status": g.status.name,
                        "tasks": [_task_state(t) for t in g.tasks]} for g in wr.groups],
    }


def _pool_state(pool: PoolRec) -> dict:
    return {
        "id": pool.id, "namespace": pool.namespace, "name": pool.name, "status": pool.status.name,
        "computeRequirementId": pool.cr_id, "targetNodeCount": pool.target, "workerTag": pool.worker_tag,
        "nodeIds": [n.id for n in pool.nodes if n.status is not None],
    }


def _cr_state(cr: ComputeRequirementRec) -> dict:
    return {
        "id": cr.id, "namespace": cr.namespace, "name": cr.name, "status": cr.status.name,
        "targetInstanceCount": cr.target, "workerPoolId": cr.pool_id, "templateId": cr.template.id,
    }


def _instance_state(instance: InstanceRec) -> dict:
    return {
        "id": instance.id, "computeRequirementId": instance.cr_id, "status": instance.status.name,
        "privateIp": instance.private_ip, "publicIp": instance.public_ip, "hostname": instance.hostname,
        "nodeId": instance.node.id if instance.node else None,
    }


def _node_state(node: NodeRec) -> dict:
    worker = node.worker
    return {
        "id": node.id, "status": node.status.name if node.status else None, "workerPoolId": node.pool_id,
        "instanceId": node.instance.id, "privateIp": node.instance.private_ip,
        "publicIp": node.instance.public_ip, "hostname": node.instance.hostname,
        "workerId": worker.id if worker else None,
        "taskId": worker.task.id if worker and worker.task else None,
    }


# How much of taskoutput.txt a failed task's error carries. A convenience of the sandbox:
# on YellowDog the output is read from the task's uploaded outputs, not its error.
OUTPUT_EXCERPT_LINES = 20


def _output_excerpt(tail: str) -> str:
    lines = (tail or "").rstrip().splitlines()[-OUTPUT_EXCERPT_LINES:]
    return "; last lines of taskoutput.txt:\n" + "\n".join(lines) if lines else ""
