"""What an autoscaled worker pool does besides a fixed one: its bounds on the platform, its size
kept inside them, and the check that the cluster's head runs an autoscaler at all.

Ray's autoscaler on the head (raydog.autoscaler.raydog_node_provider) reads a pool's bounds
from the tag of the pool's compute requirement, which the pool's create and update write, so
new bounds reach it without replacing the head.

One actor moves a pool's size at a time. An update of an autoscaled pool first takes the pool
out of the autoscaler's hands (``hold``: the tag says held; the autoscaler launches nothing
into it and only finishes a shrink it had begun, which the update waits for), then sizes the
pool, then writes the new bounds (or none), which hands it back.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import TYPE_CHECKING, Optional

from tf.utils import Diagnostics

from raydog import names
from raydog.autoscaler.shipping import API_URL_VARIABLE, HELD_TAG, bounds_tag
from raydog.config.models import Autoscaling
from raydog.yellowdog import WaitTimeoutError

if TYPE_CHECKING:
    from raydog.yellowdog import YellowDogClient

log = logging.getLogger(__name__)

# How long an update waits for the autoscaler to finish a shrink it had begun (a node shutdown).
SETTLE_SECONDS = 120.0

_HEAD_GROUP = re.compile(rf"{re.escape(names.HEAD_GROUP_ROLE)}-[0-9a-f]{{8}}")


def pool_tag(autoscaling: Optional[Autoscaling]) -> Optional[str]:
    """The compute requirement tag carrying the bounds, or None for a fixed-size pool."""
    if autoscaling is None:
        return None
    return bounds_tag(autoscaling.min_nodes, autoscaling.max_nodes, autoscaling.idle_timeout)


def head_runs_autoscaler(client: "YellowDogClient", cluster_id: str) -> Optional[bool]:
    """Whether the cluster's live head was given an autoscaler key; None when it has no live head yet."""
    wr = client.get_work_requirement(cluster_id)
    if wr is None:
        return None
    heads = [g for g in wr.task_groups if _HEAD_GROUP.fullmatch(g.name or "") and not g.finished]
    tasks = [t for g in heads for t in client.list_tasks(g.id)]
    if not tasks:
        return None
    return any(t.environment.get(API_URL_VARIABLE) for t in tasks)


# How long an apply waits for a head created at the same time (a pool that learns its head from
# the platform does not wait for it in Terraform's graph): until the head's group and task exist.
HEAD_WAIT_SECONDS = 300.0


def require_autoscaler(diags: Diagnostics, client: "YellowDogClient", cluster_id: str, strict: bool,
                       head_wait: float = 0.0, stopping: Optional[threading.Event] = None) -> bool:
    """Error (False) when the pool's cluster has a head without an autoscaler key; with ``strict``
    (an apply) also when there is no live head to run one, after waiting up to ``head_wait``
    seconds for one to appear."""
    runs = head_runs_autoscaler(client, cluster_id)
    deadline, stopping = time.monotonic() + head_wait, stopping or threading.Event()
    while runs is None and strict and time.monotonic() < deadline and not stopping.is_set():
        stopping.wait(min(1.0, max(deadline - time.monotonic(), 0.0)))
        runs = head_runs_autoscaler(client, cluster_id)
    if runs or (runs is None and not strict):
        return True
    why = "has no live head" if runs is None else "has a head without an autoscaler key"
    diags.add_error(
        "The cluster runs no autoscaler",
        f"Work requirement {cluster_id} {why}, so nothing would scale this pool. Give the raydog_head "
        "autoscaler_application_key_id and autoscaler_application_key_secret (the module's autoscaler_key), or "
        "remove the autoscaling block and set node_count.",
        path=["autoscaling"])
    return False


def hold(client: "YellowDogClient", pool: dict, timeout_seconds: float,
         stopping: Optional[threading.Event] = None) -> None:
    """Take an autoscaled pool (its state: id, compute_requirement_id, task_group_id) out of the
    autoscaler's hands, and wait until a shrink the autoscaler had begun is finished (the pool's
    target is its live tasks). The caller hands it back by writing the bounds (``pool_tag``)."""
    client.set_compute_requirement_tag(pool["compute_requirement_id"], HELD_TAG)
    try:
        client.wait_until_pool_matches_tasks(pool["id"], pool["task_group_id"],
                                             min(timeout_seconds, SETTLE_SECONDS), stopping)
    except WaitTimeoutError as exc:  # e.g. a node lost with its task: the update sizes the pool anyway
        log.warning("worker pool %s: its size and its tasks still differ (%s); sizing it now", pool["id"], exc)
