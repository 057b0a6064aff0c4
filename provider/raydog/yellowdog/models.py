"""What the provider asks of the platform (specs) and reads back from it (infos).

Plain frozen dataclasses with no SDK types, so resources never touch yellowdog_client.
Statuses are the platform's enum names ("RUNNING", "EXECUTING", ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta


@dataclass(frozen=True)
class TaskGroupSpec:
    """One task group of bash tasks that run on the nodes of one worker pool."""

    name: str
    worker_tag: str  # the pool's worker tag: tasks run only on that pool's nodes
    namespace: str  # the pool's namespace
    task_timeout: timedelta | None = None
    finish_if_any_task_failed: bool = False
    # False keeps an emptied group open, so a pool scaled to zero can take new tasks later.
    finish_if_all_tasks_finished: bool = False
    tag: str | None = None
    priority: float = 0.0
    task_template: "TaskSpec | None" = None  # what the group's tasks run, for tasks added by others


@dataclass(frozen=True)
class TaskSpec:
    """One bash task; ``name`` is unique in its group and makes adding it idempotent."""

    name: str
    task_data: str = field(repr=False)
    environment: dict[str, str] = field(default_factory=dict, repr=False)  # may hold secrets
    timeout: timedelta | None = None
    tag: str | None = None


@dataclass(frozen=True)
class PoolSpec:
    """A provisioned worker pool from a compute requirement template.

    The pool's namespace/name are the compute requirement's; ``None`` shutdown timeouts
    mean "never shut down when idle" (the platform's defaults would shut a pool down).
    """

    namespace: str
    name: str
    template_id: str
    images_id: str | None
    userdata: str | None = field(repr=False)  # sensitive: never in logs or reprs
    instance_tags: dict[str, str]
    metrics_enabled: bool
    node_count: int
    worker_tag: str
    idle_node_shutdown: timedelta | None = None
    idle_pool_shutdown: timedelta | None = None
    node_boot_timeout: timedelta | None = None
    tag: str | None = None  # the compute requirement's tag
    max_nodes: int | None = None  # None: the platform's per-pool limit


@dataclass(frozen=True)
class TaskGroupInfo:
    id: str
    name: str
    status: str | None
    finished: bool


# The most task groups a work requirement holds (yellowdog-sdk WorkRequirement.TASK_GROUPS_MAX).
# Groups are never deleted, so every pool create or replacement in a cluster uses one for good.
TASK_GROUPS_MAX = 1000


@dataclass(frozen=True)
class WorkRequirementInfo:
    id: str
    namespace: str
    name: str
    tag: str | None
    status: str | None
    finished: bool
    task_groups: tuple[TaskGroupInfo, ...] = ()  # the node groups; the owner marker is not among them
    owner_token: str | None = None  # the token of the create that made it (see ownership.py)

    def task_group(self, name: str) -> TaskGroupInfo | None:
        """The group of that name, if any."""
        return next((group for group in self.task_groups if group.name == name), None)


@dataclass(frozen=True)
class PoolInfo:
    """A worker pool as the platform reports it.

    ``template_id``, ``instance_tags`` and ``tag`` come from its compute requirement
    (None when that could not be read). ``instance_tags`` are the tags on the provisioned
    sources, which the platform may extend beyond those the pool was asked for.
    ``images_id`` is not readable back from the platform and is always None.
    """

    id: str
    namespace: str | None
    name: str | None
    status: str | None
    live: bool
    compute_requirement_id: str | None
    target_node_count: int
    template_id: str | None
    images_id: str | None
    instance_tags: dict[str, str] | None
    metrics_enabled: bool | None
    worker_tag: str | None
    compute_requirement_status: str | None = None
    tag: str | None = None
    idle_node_shutdown: timedelta | None = None
    idle_pool_shutdown: timedelta | None = None
    node_boot_timeout: timedelta | None = None
    max_nodes: int | None = None  # the most nodes the pool may grow to (its maxNodes)


@dataclass(frozen=True)
class TaskInfo:
    id: str
    name: str | None
    status: str | None
    finished: bool
    task_group_id: str | None
    node_id: str | None
    worker_id: str | None
    exit_code: int | None
    error_detail: str | None
    environment: dict[str, str] = field(repr=False)
    task_data: str | None = field(repr=False)


@dataclass(frozen=True)
class NodeAddress:
    node_id: str
    private_ip: str | None
    public_ip: str | None
