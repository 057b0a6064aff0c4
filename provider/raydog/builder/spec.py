"""What a cluster should be: the builder's arguments, parsed once into typed objects.

``RayDogCluster`` fills a ``ClusterSpec`` from RayDog's constructor and
``add_worker_pool()`` arguments; ``config.py`` renders it as the module's inputs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta

# YellowDog's naming rule, which the module applies to pool keys (RayDog's internal names).
NAME_RULE = re.compile(r"^[a-z](?:[a-z0-9_-]{0,58}[a-z0-9])?$")
MAX_POOL_KEY = 44  # the module appends "-<6 hex>" and the provider allows 51
RESERVED_POOL_KEYS = ("head", "obs")
WORKER_NODES_TASK_GROUP_NAME = "worker-nodes"  # RayDog's default internal names: worker-nodes-NN


@dataclass(frozen=True)
class NodeSpec:
    """One node's provisioning properties (the head, or the observability node)."""

    compute_requirement_template_id: str
    script: str | None = None
    images_id: str | None = None
    userdata: str | None = None
    instance_tags: dict[str, str] | None = None
    metrics_enabled: bool | None = None


@dataclass
class WorkerNodeWorkerPool:
    """A worker pool added with ``add_worker_pool()`` (RayDog's class of the same name).

    ``worker_pool_id`` is the YellowDog worker pool id once the pool exists.
    """

    compute_requirement_template_id: str
    task_script: str
    node_count: int
    images_id: str | None = None
    userdata: str | None = None
    instance_tags: dict[str, str] | None = None
    metrics_enabled: bool | None = None
    worker_pool_id: str | None = None


@dataclass
class ClusterSpec:
    name: str
    namespace: str
    api_url: str
    head: NodeSpec
    tag: str | None = None
    lifetime: timedelta | None = None
    observability: NodeSpec | None = None
    worker_pools: dict[str, WorkerNodeWorkerPool] = field(default_factory=dict)
    build_timeout: timedelta | None = None

    @property
    def node_count(self) -> int:
        return 1 + (self.observability is not None) + sum(p.node_count for p in self.worker_pools.values())


def pool_key_problem(key: str) -> str | None:
    """Why ``key`` cannot name a worker pool of the module, or None."""
    if not NAME_RULE.fullmatch(key):
        return ("must start with a lowercase letter, end with a letter or digit, and hold only lowercase "
                "letters, digits, '-' and '_' (YellowDog's naming rule)")
    if len(key) > MAX_POOL_KEY:
        return f"may be at most {MAX_POOL_KEY} characters long"
    if key in RESERVED_POOL_KEYS:
        return "is reserved for the cluster's own pools"
    return None


def duration(value: timedelta) -> str:
    """A Terraform-style duration ("600s", "1500ms") for the module."""
    milliseconds = round(value.total_seconds() * 1000)
    if milliseconds <= 0:
        raise ValueError(f"a duration must be longer than zero (got {value})")
    return f"{milliseconds // 1000}s" if milliseconds % 1000 == 0 else f"{milliseconds}ms"
