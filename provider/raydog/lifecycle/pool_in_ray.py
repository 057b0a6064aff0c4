"""The steps of a worker pool's create, update and delete that ask Ray (lifecycle.ray_nodes):
wait for new nodes to join Ray (`readiness = "ray"`), pick idle nodes first when
`node_count` goes down, and drain the nodes a shrink or a removal ends (`drain_timeout`).

Each step reports to the diagnostics and never raises: readiness failures are errors on
`readiness` (the create or update fails), Ray being unreachable on a shrink or a delete is a
warning and the nodes' tasks are ended without draining, since a removal must not depend on
Ray's health.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Optional, Sequence

from tf.types import Unknown
from tf.utils import Diagnostics

from raydog import settings
from raydog.config.models import RayAccess, WorkerPoolConfig
from raydog.lifecycle.peers import head_private_ip
from raydog.lifecycle.ray_nodes import RayNotReadyError, drain, kept_idle_first, task_ips, wait_until_joined
from raydog.yellowdog import PlatformError, StoppedError, TaskInfo, WaitTimeoutError

if TYPE_CHECKING:
    from raydog.yellowdog import YellowDogClient


# The share of timeouts.update (a shrink) or timeouts.delete (a removal) a drain may use.
DRAIN_SHARE = 0.5
# How long a shrink or a removal looks for the head on the platform when neither the config nor the
# pool's tasks give its address (head_name_suffix): a missing head must not hold the operation up.
HEAD_LOOKUP_SECONDS = 10.0


class PoolInRay:
    """Mixed into the worker pool resource (resources.worker_pool)."""

    provider: Any
    client: "YellowDogClient"

    @staticmethod
    def asks_ray_on_shrink(planned: dict) -> bool:
        """Whether a shrink asks Ray which nodes are idle and drains them (drain_timeout is not zero)."""
        drain_timeout = planned.get("drain_timeout")
        if drain_timeout is Unknown:
            return True
        head_ip = planned.get("head_private_ip")
        return RayAccess.parse(planned, head_ip if isinstance(head_ip, str) else None).drain_timeout.total_seconds() > 0

    def with_head(self, diags: Diagnostics, config: WorkerPoolConfig, tasks: Sequence[TaskInfo],
                  lookup_seconds: float = HEAD_LOOKUP_SECONDS) -> WorkerPoolConfig:
        """``config`` with the head's GCS address, found where it is used rather than at parse time:
        ray_gcs_address or head_private_ip when set; else the head's IP the pool's tasks were given
        (learnt from the platform, lifecycle.peers); else the head looked up on the platform, for at
        most ``lookup_seconds``. Not found: ``config`` unchanged (no address; Ray is not asked) and a warning."""
        ray = config.ray
        if ray.gcs_address or (ray.drain_timeout.total_seconds() <= 0 and ray.readiness != settings.READINESS_RAY):
            return config
        ip = next((t.environment["RAY_HEAD_IP"] for t in tasks if t.environment.get("RAY_HEAD_IP")), None)
        if not ip and config.head_private_ip is None and config.cluster_id:
            try:
                ip = head_private_ip(self.provider, self.client, config, config.cluster_id, lookup_seconds)
            except (PlatformError, StoppedError, WaitTimeoutError) as exc:
                diags.add_warning("The head's Ray GCS address is unknown",
                                  f"Could not find the head (head_name_suffix) on the platform: {exc}. Ray is not "
                                  "asked (no readiness wait, no drain); set ray_gcs_address to the head's GCS.",
                                  path=["ray_gcs_address"])
                return config
        return replace(config, ray=replace(ray, gcs_address=settings.gcs_address(ip))) if ip else config

    def wait_for_ray(self, diags: Diagnostics, config: WorkerPoolConfig, executing: Sequence[TaskInfo],
                     cr_id: Optional[str], started: float, timeout: float) -> None:
        """With readiness = "ray", wait (until ``started + timeout``) for the executing tasks' nodes to join Ray."""
        if config.ray.readiness != settings.READINESS_RAY or not executing:
            return
        address = config.ray.gcs_address or "(unknown)"
        try:
            ips = sorted(task_ips(self.client, executing, cr_id).values())
            wait_until_joined(address, ips, max(started + timeout - time.monotonic(), 1.0), self.provider.stopping)
        except (PlatformError, RayNotReadyError) as exc:
            diags.add_error(
                "The nodes did not join Ray",
                f'{exc}. readiness = "ray" waits, within the create or update timeout, until the head\'s Ray GCS at '
                f"{address} lists every new node alive. Check that the nodes reach the head (head_private_ip) and "
                "that the provider reaches the GCS (set ray_gcs_address to an address it can reach, such as the "
                'head\'s public IP or an SSH tunnel), or use readiness = "executing".',
                path=["readiness"])

    def kept_on_shrink(self, diags: Diagnostics, current: dict, config: WorkerPoolConfig,
                       live: Sequence[TaskInfo], ordered: list[str], target: int) -> tuple[list[str], bool]:
        """The task ids (of ``ordered``, oldest first) a shrink keeps, and whether Ray answered:
        Ray's idle nodes go first; the newest when drain_timeout is "0s" or Ray cannot be asked
        (a warning: then the nodes are not drained either)."""
        if config.ray.drain_timeout.total_seconds() <= 0 or not config.ray.gcs_address:
            return ordered[:target], False
        kept, why = kept_idle_first(self.client, config.ray.gcs_address, live, ordered, target,
                                    current.get("compute_requirement_id"))
        if why:
            diags.add_warning("The nodes were not drained",
                              f"Could not ask Ray which nodes are idle: {why}. The newest nodes' tasks are ended now, "
                              "without draining; Ray retries the work that was running on them (tasks with retries "
                              "left, actors with restarts). Set ray_gcs_address to an address the provider reaches, "
                              'or drain_timeout = "0s" to not ask Ray.', path=["ray_gcs_address"])
        return kept, why is None

    def drain_before_removal(self, diags: Diagnostics, config: WorkerPoolConfig, tasks: Sequence[TaskInfo],
                             cr_id: Optional[str], reason: str, operation_timeout: float) -> None:
        """Ask Ray to drain the nodes of ``tasks`` and wait up to drain_timeout for their work to
        finish; at most half the operation's timeout, so the removal that follows has time too."""
        seconds = min(config.ray.drain_timeout.total_seconds(), operation_timeout * DRAIN_SHARE)
        if seconds <= 0 or not tasks or not config.ray.gcs_address:
            return
        why = drain(self.client, config.ray.gcs_address, tasks, cr_id, seconds, self.provider.stopping,
                    f"raydog: {reason}")
        if why:
            diags.add_warning("The nodes were not drained",
                              f"{why}. Their tasks are ended now; Ray retries the work that was running on them "
                              "(tasks with retries left, actors with restarts). Raise drain_timeout to give the work "
                              "more time, or set ray_gcs_address to an address the provider reaches.",
                              path=["drain_timeout"])

    def drain_pool(self, diags: Diagnostics, current: dict) -> None:
        """Drain every node of the pool before it is removed."""
        if not current.get("task_group_id"):
            return
        config = WorkerPoolConfig.parse(current)
        if config.ray.drain_timeout.total_seconds() <= 0:
            return
        try:
            live = self.client.list_tasks(current["task_group_id"])
        except PlatformError as exc:
            diags.add_warning("The nodes were not drained", f"{exc}. The pool is removed without draining.",
                              path=["drain_timeout"])
            return
        config = self.with_head(diags, config, live)
        self.drain_before_removal(diags, config, live, current.get("compute_requirement_id"), "worker pool removed",
                                  config.timeouts.delete.total_seconds())
