"""The sandbox's state: one record per YellowDog object, shared by the service models.

Records are plain mutable dataclasses that point at each other (a node at its instance,
an instance at its node, a worker at its task); only the service models change them, and
only under the models' lock (see ``service.py``). The HTTP layer renders them into the
SDK's model classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from yellowdog_client.model import (
    ComputeRequirementStatus,
    ComputeRequirementTemplateUsage,
    InstanceStatus,
    NodeStatus,
    ProvisionedWorkerPoolProperties,
    RunSpecification,
    TaskData,
    TaskError,
    TaskGroupStatus,
    TaskStatus,
    TaskTemplate,
    WorkerPoolStatus,
    WorkerStatus,
    WorkRequirementStatus,
)

from .compute.templates import Template

WAITING = (TaskStatus.PENDING, TaskStatus.READY)
LIVE_NODE = (NodeStatus.RUNNING, NodeStatus.LATE)
# Every sandbox node runs bash tasks and nothing else.
SUPPORTED_TASK_TYPES = ("bash",)


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
    shutting_down: bool = False  # strict mode: DELETE nodes/{id} asked; the node ends after a delay

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
