"""The life of a node pool: a provisioned worker pool, its task group in the cluster's work
requirement, and one task per node. Shared by the head, the observability node and the
worker pools."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Callable, Optional

from tf.utils import Diagnostics

from raydog import names
from raydog.config.models import NodeConfig, Timeouts
from raydog.lifecycle.diagnostics import report
from raydog.lifecycle.ownership import OwnershipJournal
from raydog.yellowdog import (
    TASK_GROUPS_MAX,
    OwnedElsewhereError,
    PlatformError,
    PoolInfo,
    PoolSpec,
    StoppedError,
    TaskFailedError,
    TaskGroupSpec,
    TaskInfo,
    TaskSpec,
    WaitTimeoutError,
    WorkRequirementInfo,
)

if TYPE_CHECKING:
    from raydog.yellowdog import YellowDogClient

log = logging.getLogger("raydog.resources")

# Nodes whose task has ended are shut down after this long; a pool with no claimed
# worker after this long is shut down too (RayDog's builder used 3 minutes).
IDLE_NODE_SHUTDOWN = timedelta(minutes=5)
IDLE_POOL_SHUTDOWN = timedelta(minutes=10)
# How long a removal waits for the tasks it aborted to end (their EXIT trap stops Ray) before
# the pool goes, which ends whatever is left of them at once.
TASK_END_GRACE_SECONDS = 60.0
# From this many task groups in a cluster, a plan that adds a pool warns (TASK_GROUPS_MAX is the cap).
TASK_GROUPS_WARNING = 900
# Kinds of object in the ownership journal.
WORKER_POOL = "worker_pool"
WORK_REQUIREMENT = "work_requirement"


class PoolClaims:
    """The (namespace, pool name) of every pool one provider instance creates.

    One provider process serves a whole apply, so two resources of one configuration that
    would share a YellowDog pool are caught before any request."""

    def __init__(self) -> None:
        self._claimed: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def claim(self, namespace: str, pool_name: str) -> bool:
        """Record that this provider creates ``namespace/pool_name``; False if it already does."""
        with self._lock:
            if (namespace, pool_name) in self._claimed:
                return False
            self._claimed.add((namespace, pool_name))
            return True


@dataclass(frozen=True)
class NodePlan:
    """What to run on one pool: its YellowDog name, its task group role, one task per node."""

    suffix: str
    group_role: str
    task_names: list[str]
    environment: dict[str, str]
    wait: bool
    name_path: list  # the attribute that names the pool, for a duplicate-name error
    finish_if_any_task_failed: bool = False
    extra_state: dict[str, Any] = field(default_factory=dict)
    # Addresses learnt from the platform (the head's, the observability node's), called with
    # the work requirement id and the seconds left once the pool is provisioning: see lifecycle.peers.
    peer_environment: Optional[Callable[[str, float], dict[str, str]]] = None
    # An autoscaled pool: never shut down for idling, and its group keeps the task every node runs
    # as its task template, for the autoscaler to add nodes from.
    autoscaled: bool = False


@dataclass(frozen=True)
class CreatedPool:
    """What a create made: the state to record, the tasks added and, when waited for, their executing form."""

    state: dict
    tasks: list[TaskInfo]
    executing: list[TaskInfo]


def check_task_group_budget(diags: Diagnostics, wr: WorkRequirementInfo, path: list) -> bool:
    """Warn when the cluster nears YellowDog's cap of task groups per work requirement; error
    (False) when one more pool would pass it. Groups are never deleted: every pool create or
    replacement uses one for good."""
    used = len(wr.task_groups) + (1 if wr.owner_token else 0)  # the owner marker is a group too
    fix = ("Re-create the cluster to start afresh (terraform apply -replace=raydog_cluster.<name>: its "
           "nodes are re-created too), or replace pools less often.")
    if used + 1 > TASK_GROUPS_MAX:
        diags.add_error(
            "The cluster has no task group left",
            f"Work requirement {wr.id} holds {used} task groups and YellowDog allows {TASK_GROUPS_MAX}; every pool "
            f"create or replacement takes one for good. {fix}", path=path)
        return False
    if used + 1 >= TASK_GROUPS_WARNING:
        diags.add_warning(
            "The cluster is running out of task groups",
            f"Work requirement {wr.id} holds {used} of YellowDog's {TASK_GROUPS_MAX} task groups; every pool create "
            f"or replacement takes one for good, and past the cap pools can no longer be created. {fix}", path=path)
    return True


def live_pool(client: "YellowDogClient", pool_id: str, details: bool = False) -> Optional[PoolInfo]:
    """The pool while it is live, None once it is gone; PlatformError when we cannot tell.
    ``details`` reads its compute requirement too (its tag, for an autoscaled pool)."""
    pool = client.get_pool(pool_id, details=details)  # the pool alone answers `live`
    if pool is None or not pool.live:
        log.info("worker pool %s is gone (%s)", pool_id, None if pool is None else pool.status)
        return None
    return pool


class NodePool:
    """Create and remove of one node pool, reporting problems to ``diags``."""

    def __init__(self, client: "YellowDogClient", diags: Diagnostics, stopping: threading.Event,
                 claims: PoolClaims, ownership: OwnershipJournal) -> None:
        self.client = client
        self.diags = diags
        self.stopping = stopping
        self.claims = claims
        self.ownership = ownership

    def cluster(self, config: NodeConfig) -> Optional[WorkRequirementInfo]:
        """The cluster's work requirement, or None (with an error) when it can't take new nodes."""
        try:
            wr = self.client.recent_work_requirement(config.cluster_id)  # one read for the pools made together
        except PlatformError as exc:
            report(self.diags, "Cannot read the cluster's work requirement", exc, ["cluster_id"])
            return None
        if wr is None or wr.finished:
            status = "does not exist" if wr is None else f"is {wr.status}"
            self.diags.add_error(
                "The cluster is gone",
                f"Work requirement {config.cluster_id} {status}; re-create the raydog_cluster.",
                path=["cluster_id"],
            )
            return None
        if config.namespace and wr.namespace != config.namespace:
            self.diags.add_error(
                "namespace does not match the cluster",
                f'namespace is "{config.namespace}" but work requirement {wr.id} is in namespace "{wr.namespace}"; '
                "use raydog_cluster.<name>.namespace, or leave it unset.",
                path=["namespace"],
            )
            return None
        if not names.is_generation_of(wr.name, config.cluster_name):
            self.diags.add_error(
                "cluster_name does not match the cluster",
                f'cluster_name is "{config.cluster_name}" but work requirement {wr.id} is named "{wr.name}"; '
                "use raydog_cluster.<name>.name.",
                path=["cluster_name"],
            )
            return None
        return wr

    def create(self, planned: dict, config: NodeConfig, plan: NodePlan) -> Optional[CreatedPool]:
        """Provision the pool, append its task group, add its tasks and (if asked) wait for them.

        Ids are recorded as soon as they exist. A task that fails or doesn't start in time
        makes us remove what we created; an interrupt or an unexpected error returns the
        partial state with the error, so Terraform keeps the object (tainted) and the next
        apply replaces it: nothing is ever left on the platform that state doesn't know.
        """
        deadline = time.monotonic() + config.timeouts.create.total_seconds()
        wr = self.cluster(config)
        if wr is None or not check_task_group_budget(self.diags, wr, ["cluster_id"]):
            return None
        pool_name = names.pool_name(config.cluster_name, plan.suffix)
        if not self.claims.claim(wr.namespace, pool_name):
            self.diags.add_error(
                "Duplicate worker pool name",
                f'Another resource in this configuration already creates worker pool "{wr.namespace}/{pool_name}"; '
                "YellowDog pool names are unique, so give each pool its own name.",
                path=plan.name_path,
            )
            return None
        try:
            pool, token = self._provision(config, wr, pool_name, len(plan.task_names), plan.autoscaled)
            pool_name = pool.name or pool_name
        except OwnedElsewhereError as exc:
            self.diags.add_error(
                "Worker pool name taken",
                f"{exc}. To manage it with this configuration, import it "
                f'(import {{ to = <this resource\'s address>, id = "{exc.existing_id}" }}), or give this pool '
                "another name.",
                path=plan.name_path,
            )
            return None
        except PlatformError as exc:
            report(self.diags, f"Cannot provision worker pool {pool_name}", exc, ["compute_requirement_template_id"])
            return None
        state = dict(planned, id=pool.id, compute_requirement_id=pool.compute_requirement_id,
                     yellowdog_name=pool.name, namespace=wr.namespace)
        tasks: list[TaskInfo] = []
        try:
            environment = plan.environment
            if plan.autoscaled:  # the template's nodes need the peers' addresses too: learn them first
                environment = self._with_peers(plan, wr.id, deadline)
            group = self.client.ensure_task_group(wr.id, TaskGroupSpec(
                name=names.task_group_name(plan.group_role),
                worker_tag=token,
                tag=pool_name,  # the group names its pool, so the cluster can find every pool serving it
                namespace=wr.namespace,
                task_timeout=config.lifetime,
                finish_if_any_task_failed=plan.finish_if_any_task_failed,
                task_template=TaskSpec(name="template", task_data=config.script, environment=environment,
                                       timeout=config.lifetime) if plan.autoscaled else None,
            ))
            state["task_group_id"] = group.id
            if not plan.autoscaled:
                environment = self._with_peers(plan, wr.id, deadline)
            tasks = list(self.client.add_tasks(group.id, [
                TaskSpec(name=n, task_data=config.script, environment=environment, timeout=config.lifetime)
                for n in plan.task_names
            ]))
            state.update(plan.extra_state)
            executing = []
            if plan.wait:
                executing = self.client.wait_until_executing(
                    [t.id for t in tasks], max(deadline - time.monotonic(), 1.0), stop_event=self.stopping,
                    wr_id=wr.id)
            return CreatedPool(state, tasks, executing)
        except (TaskFailedError, WaitTimeoutError) as exc:
            cleaned = self.remove(state, config.timeouts, quiet=True)
            what = "did not start" if isinstance(exc, WaitTimeoutError) else "failed"
            report(self.diags, f"The {plan.group_role} node {what}", exc)
            if cleaned:
                return None
            self.diags.add_error(
                "Could not remove the pool after the failure",
                f"Worker pool {state['id']} is kept in state (tainted) so the next apply removes it.",
            )
            return CreatedPool(state, tasks, [])
        except StoppedError as exc:
            report(self.diags, "Interrupted", exc)
            return CreatedPool(state, tasks, [])
        except PlatformError as exc:
            report(self.diags, f"Cannot start the {plan.group_role} node tasks", exc)
            return CreatedPool(state, tasks, [])

    @staticmethod
    def _with_peers(plan: NodePlan, wr_id: str, deadline: float) -> dict[str, str]:
        """The plan's environment plus the peers' addresses (lifecycle.peers), if it learns any."""
        if plan.peer_environment is None:
            return plan.environment
        return {**plan.environment, **plan.peer_environment(wr_id, max(deadline - time.monotonic(), 1.0))}

    def _provision(self, config: NodeConfig, wr: WorkRequirementInfo, base: str,
                   node_count: int, autoscaled: bool = False) -> tuple[PoolInfo, str]:
        """Provision the pool under the first generation of its name (names.generations) that no
        finished pool keeps; returns it with its owner token.

        A live pool of a generation's name that this configuration made (a killed run's) is
        removed first; one made elsewhere is OwnedElsewhereError."""
        for pool_name in names.generations(base):
            token = self.ownership.issue(WORKER_POOL, wr.namespace, pool_name)  # before any request
            spec = self._pool_spec(config, wr, pool_name, node_count, token, autoscaled)
            try:
                # details=False: the ids are all a create needs, no read-back.
                pool = self.client.provision_pool(
                    spec, details=False,
                    proven_worker_tags=self.ownership.tokens(WORKER_POOL, wr.namespace, pool_name))
                if pool.worker_tag not in (None, token):
                    # Made by a run of this configuration that was killed before Terraform recorded it.
                    log.warning("worker pool %s (%s) was left by an interrupted run: removing it first",
                                pool_name, pool.id)
                    release_pool(self.client, wr.id, pool, config.timeouts, self.stopping)
                    pool = self.client.provision_pool(spec, details=False)
                return pool, token
            except OwnedElsewhereError:
                raise
            except PlatformError as exc:
                if not exc.name_taken:
                    raise
                log.info("worker pool name %s/%s is kept by a finished pool; trying the next", wr.namespace, pool_name)
        raise PlatformError("provision worker pool", f"every generation of {wr.namespace}/{base} is taken",
                            object_id=base)

    @staticmethod
    def _pool_spec(config: NodeConfig, wr: WorkRequirementInfo, pool_name: str, node_count: int,
                   token: str, autoscaled: bool = False) -> PoolSpec:
        return PoolSpec(
            namespace=wr.namespace,
            name=pool_name,
            template_id=config.template_id,
            images_id=config.images_id,
            userdata=config.userdata,
            instance_tags=config.instance_tags,
            metrics_enabled=config.metrics_enabled,
            node_count=node_count,
            worker_tag=token,
            idle_node_shutdown=IDLE_NODE_SHUTDOWN,
            # An autoscaled pool may sit at zero nodes until Ray asks for more: never shut it down for that.
            idle_pool_shutdown=None if autoscaled else IDLE_POOL_SHUTDOWN,
            node_boot_timeout=None,
        )

    def remove(self, state: dict, timeouts: Timeouts, quiet: bool = False) -> bool:
        """End the pool's tasks and give them time to end (their EXIT trap runs), then
        terminate its compute requirement and shut it down: ``abort_and_remove``."""
        try:
            abort_and_remove(self.client, state.get("cluster_id"), state.get("task_group_id"), state.get("id"),
                             state.get("compute_requirement_id"), timeouts, self.stopping)
            return True
        except PlatformError as exc:
            if not quiet:
                report(self.diags, f"Cannot remove worker pool {state.get('id')}", exc)
            else:
                log.warning("cleanup of worker pool %s failed: %s", state.get("id"), exc)
            return False


def release_pool(client: "YellowDogClient", wr_id: str, pool: PoolInfo, timeouts: Timeouts,
                 stopping: threading.Event) -> None:
    """Remove a pool that no resource in state holds, the way a delete removes one: its group
    in the cluster (found by the pool's worker tag) gives the tasks to abort."""
    found = client.find_pool_group(pool.namespace or "", pool.worker_tag or "", wr_id) if pool.worker_tag else None
    abort_and_remove(client, wr_id, found[1].id if found else None, pool.id, pool.compute_requirement_id, timeouts,
                     stopping)


def abort_and_remove(client: "YellowDogClient", wr_id: Optional[str], task_group_id: Optional[str],
                     pool_id: Optional[str], compute_requirement_id: Optional[str], timeouts: Timeouts,
                     stopping: threading.Event) -> None:
    """A pool's removal, request by request (a step that must come first, such as asking Ray
    to drain the nodes, goes in front of this call). Its cost does not grow with the pool's
    node count:

    1. end the task group: one update of the cluster's work requirement leaves the group out
       (shared, with its read, by the pools removed together); the platform cancels its
       waiting tasks and aborts its running ones, whose EXIT trap stops Ray. A platform that
       keeps the group gets one abort per live task instead;
    2. wait, up to ``TASK_END_GRACE_SECONDS``, until none of its tasks is left unfinished:
       one task search per poll, the first after 0.1 s;
    3. terminate the compute requirement and shut the pool down: two requests, and a read
       only for what their answers did not confirm.
    """
    if task_group_id:
        grace = min(TASK_END_GRACE_SECONDS, timeouts.delete.total_seconds())
        if not (wr_id and client.end_task_group(wr_id, task_group_id)):
            for task in client.list_tasks(task_group_id):
                client.cancel_task(task.id, abort=True)
        try:
            client.wait_until_group_ended(task_group_id, grace, stopping)
        except WaitTimeoutError:
            log.warning("task group %s: its aborted tasks did not end within %.0f s; removing the pool anyway",
                        task_group_id, grace)
    if pool_id:
        client.remove_pool(pool_id, compute_requirement_id, timeout_seconds=timeouts.delete.total_seconds(),
                           stop_event=stopping)
