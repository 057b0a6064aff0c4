"""Provisioned worker pools, their nodes and the workers on the nodes.

State and lifecycle, no HTTP (that is ``responses.py``). Provisioning makes a pool and
its compute requirement (``compute/models.py``); each instance that runs brings one node
with one worker. A pool's status derives from its workers; idle nodes and idle pools
shut down on their timers. When a node goes, the task its worker held is lost: the work
model hears of it through ``TaskSide``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, Protocol, TypeVar

from yellowdog_client.model import (
    ComputeRequirementTemplateUsage,
    InstanceStatus,
    NodeSearch,
    NodeStatus,
    ProvisionedWorkerPoolProperties,
    WorkerPoolSearch,
    WorkerPoolStatus,
    WorkerStatus,
)

from ..compute.models import ComputeModel
from ..compute.templates import PROVIDER, REGION
from ..errors import InvalidRequest, NotFound
from ..nodes.runtime import NodeSpec
from ..records import ComputeRequirementRec, InstanceRec, NodeRec, PoolRec, TaskRec, WorkerRec
from ..search import in_order, in_range, live_or_newest, namespaces_of
from ..service import ModelCore, as_is, check_name, utcnow

log = logging.getLogger("raydog_sandbox")

T = TypeVar("T")
PROVISIONED_POOL_TYPE = "co.yellowdog.platform.model.ProvisionedWorkerPool"
IDLE = (WorkerPoolStatus.EMPTY, WorkerPoolStatus.IDLE)


class TaskSide(Protocol):
    """What the pools model tells the work model above it (``work.models.WorkModel``)."""

    def task_lost(self, task: TaskRec, process_gone: bool) -> None:
        """The node running the task has gone; process_gone: its process has ended too."""


def check_node_limits(properties: ProvisionedWorkerPoolProperties, size: int) -> None:
    low, high = properties.minNodes, properties.maxNodes
    if low is not None and high is not None and low > high:
        raise InvalidRequest("provisionedProperties.minNodes must not exceed maxNodes")
    if high is not None and size > high:
        raise InvalidRequest(f"the node count {size} exceeds the worker pool's maxNodes {high}")
    if low is not None and size < low:
        raise InvalidRequest(f"the node count {size} is below the worker pool's minNodes {low}")


def _enabled(shutdown: Any) -> bool:
    return shutdown is not None and shutdown.enabled is not False and shutdown.timeout is not None


class PoolsModel:
    """Worker pools, nodes and workers; also the free workers the allocation hands out."""

    def __init__(self, core: ModelCore, compute: ComputeModel) -> None:
        self.core = core
        self.lock = core.lock
        self.compute = compute
        compute.pools = self
        self.work: TaskSide | None = None  # the work model sets itself here
        self.pools: dict[str, PoolRec] = {}
        self.pools_by_name: dict[tuple[str, str], list[PoolRec]] = {}
        self.nodes: dict[str, NodeRec] = {}
        self.workers: dict[str, WorkerRec] = {}
        # Free workers, all and per worker tag (the allocation's index).
        self.free_workers: dict[str, WorkerRec] = {}
        self.free_by_tag: dict[str | None, dict[str, WorkerRec]] = {}

    # ── provisioning ──

    def provision_pool(self, usage: ComputeRequirementTemplateUsage | None,
                       properties: ProvisionedWorkerPoolProperties | None,
                       view: Callable[[PoolRec], T] = as_is) -> T:
        with self.lock:
            template, target = self.compute.check_usage(usage)
            if properties is not None:
                check_name("provisionedProperties.workerTag", properties.workerTag, required=False)
                check_node_limits(properties, target)
            key = (usage.requirementNamespace, usage.requirementName)
            reserved = self.core.strictness.reserve_finished_names
            if any(reserved or not p.status.finished for p in self.pools_by_name.get(key, ())):
                raise InvalidRequest(f"worker pool '{key[0]}/{key[1]}' already exists in namespace '{key[0]}'")
            self.compute.check_name_free(*key)
            self.compute.check_quota(target)
            now = utcnow()
            pool_id = self.core.new_id("wrkrpool")
            cr = self.compute.create_requirement(usage, template, target, pool_id, now)
            pool = PoolRec(
                id=pool_id, seq=self.core.next_seq(), namespace=key[0], name=key[1], cr_id=cr.id,
                template=template, properties=properties, worker_tag=properties.workerTag if properties else None,
                created=now, target=target, status_changed=now)
            self.pools[pool.id] = pool
            self.pools_by_name.setdefault(key, []).append(pool)
            self.compute.add_instances(cr, target)
            self.compute.update_requirement(cr)
            self._refresh_pool(pool)
            return view(pool)

    def requirement_of(self, pool: PoolRec) -> ComputeRequirementRec:
        return self.compute.compute_requirements[pool.cr_id]

    # ── what the compute model tells (PoolSide) ──

    def add_node(self, instance: InstanceRec, cr: ComputeRequirementRec) -> NodeSpec:
        pool = self.pools[instance.pool_id]
        node = NodeRec(id=self.core.new_id("node"), seq=self.core.next_seq(), pool_id=pool.id, instance=instance,
                       created=utcnow())
        instance.node = node
        pool.nodes.append(node)
        self.nodes[node.id] = node
        boot_timeout = pool.properties.nodeBootTimeout if pool.properties is not None else None
        if boot_timeout is not None:
            self.core.sched().later(boot_timeout.total_seconds(), self.node_boot_timeout_due, node.id)
        return NodeSpec(node_id=node.id, instance_id=instance.id, hostname=instance.hostname,
                        private_ip=instance.private_ip, public_ip=instance.public_ip, pool_name=pool.name,
                        userdata=cr.usage.userData)

    def end_node(self, node: NodeRec, status: NodeStatus) -> None:
        """The node leaves: its worker stops, its tasks fail as ALLOCATION_LOST, its processes are stopped."""
        if node.status is not None and not node.live:
            return
        registered = node.live
        now = utcnow()
        node.status = status
        node.status_changed = node.deregistered = now
        self.compute.set_instance_status(node.instance, InstanceStatus.TERMINATING)
        pool = self.pools[node.pool_id]
        worker = node.worker
        if worker is not None:
            self._make_busy(worker)
            worker.status = WorkerStatus.LOST if status is NodeStatus.LOST else WorkerStatus.SHUTDOWN
            task = worker.task
            if task is not None and not task.status.finished:
                # Without a process it ends now; else its on_exit, from runtime.stop_node, ends it.
                self._work().task_lost(task, process_gone=False)
        if registered:
            pool.registered -= 1
        self._refresh_pool(pool)
        self.core.sched().stop_node(node.id)

    def requirement_terminating(self, cr: ComputeRequirementRec) -> None:
        pool = self.pools[cr.pool_id]
        if not pool.status.finished:
            pool.status = WorkerPoolStatus.SHUTDOWN
            pool.status_changed = utcnow()

    def requirement_terminated(self, cr: ComputeRequirementRec) -> None:
        pool = self.pools[cr.pool_id]
        pool.status = WorkerPoolStatus.TERMINATED
        pool.status_changed = utcnow()

    def _work(self) -> TaskSide:
        if self.work is None:
            raise RuntimeError("the pools model has no work model attached")
        return self.work

    # ── what the runtime reports (through the scheduler) ──

    def node_booted(self, node_id: str) -> None:
        """The node is up; it registers with one worker."""
        with self.lock:
            node = self.nodes.get(node_id)
            if node is None or node.status is not None:
                return
            now = utcnow()
            node.status = NodeStatus.RUNNING
            node.status_changed = node.registered = now
            worker = WorkerRec(id=self.core.new_id("wrkr"), node=node, status=WorkerStatus.STOPPED, registered=now)
            node.worker = worker
            self.workers[worker.id] = worker
            pool = self.pools[node.pool_id]
            pool.registered += 1
            pool.ever_registered = True
            self._make_free(worker)
            self._refresh_pool(pool)
            self._start_node_idle_timer(node)
            self.core.sched().allocate_soon()

    def node_boot_timeout_due(self, node_id: str) -> None:
        """Timer: nodeBootTimeout has passed; a node that has not registered yet is terminated."""
        with self.lock:
            node = self.nodes.get(node_id)
            if node is not None and node.status is None and node.instance.status.alive:
                log.warning("node %s did not register within the pool's nodeBootTimeout; terminated", node_id)
                self.end_node(node, NodeStatus.TERMINATED)
                self.compute.update_requirement(self.compute.compute_requirements[node.instance.cr_id])

    def node_boot_failed(self, node_id: str, message: str) -> None:
        with self.lock:
            node = self.nodes.get(node_id)
            if node is None or node.status is not None:
                return
            log.error("node %s failed to boot: %s", node_id, message)
            node.status = NodeStatus.TERMINATED
            node.status_changed = node.deregistered = utcnow()
            self.compute.set_instance_status(node.instance, InstanceStatus.TERMINATED)
            self._refresh_pool(self.pools[node.pool_id])
            self.compute.update_requirement(self.compute.compute_requirements[node.instance.cr_id])

    def node_stopped(self, node_id: str) -> None:
        """Every process of the node has ended; its instance is gone."""
        with self.lock:
            node = self.nodes.get(node_id)
            if node is None:
                return
            worker = node.worker
            if worker is not None and worker.task is not None:
                self._work().task_lost(worker.task, process_gone=True)
            self.compute.instance_gone(node.instance)

    # ── workers (the work model claims and releases them; the lock is held) ──

    def free_workers_for(self, worker_tags: list[str] | None) -> list[WorkerRec]:
        """Free workers carrying one of the tags, or every free worker when no tag is asked for."""
        if worker_tags:
            found: list[WorkerRec] = []
            for tag in worker_tags:
                found.extend(self.free_by_tag.get(tag, {}).values())
            return found
        return list(self.free_workers.values())

    def claim_worker(self, worker: WorkerRec, task: TaskRec) -> None:
        self._make_busy(worker)
        worker.task = task
        worker.status = WorkerStatus.RUNNING
        worker.node.idle_token += 1
        pool = self.pools[worker.node.pool_id]
        pool.claimed += 1
        pool.last_claimed = utcnow()
        self._refresh_pool(pool)

    def release_worker(self, worker: WorkerRec) -> None:
        worker.task = None
        pool = self.pools[worker.node.pool_id]
        pool.claimed -= 1
        pool.last_released = utcnow()
        if worker.node.live:
            worker.status = WorkerStatus.STOPPED
            self._make_free(worker)
            self._start_node_idle_timer(worker.node)
            self.core.sched().allocate_soon()
        self._refresh_pool(pool)

    def _make_free(self, worker: WorkerRec) -> None:
        if worker.node.shutting_down:
            return
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

    # ── pool status and idle shutdown ──

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
        if status in IDLE and before not in IDLE:
            pool.idle_token += 1
            shutdown = pool.properties.idlePoolShutdown if pool.properties else None
            if _enabled(shutdown):
                self.core.sched().later(shutdown.timeout.total_seconds(), self.pool_idle_due, pool.id,
                                        pool.idle_token)
        elif status not in IDLE:
            pool.idle_token += 1

    def _pending_instances(self, pool: PoolRec) -> bool:
        return any(i.status is InstanceStatus.PENDING or (i.node is not None and i.node.status is None)
                   for i in self.requirement_of(pool).instances if i.status.alive)

    def _start_node_idle_timer(self, node: NodeRec) -> None:
        node.idle_token += 1
        pool = self.pools[node.pool_id]
        shutdown = pool.properties.idleNodeShutdown if pool.properties else None
        if _enabled(shutdown):
            self.core.sched().later(shutdown.timeout.total_seconds(), self.node_idle_due, node.id, node.idle_token)

    def node_idle_due(self, node_id: str, token: int) -> None:
        with self.lock:
            node = self.nodes.get(node_id)
            if node is None or not node.live or node.idle_token != token or node.worker.task is not None:
                return
            self._shutdown_node(node)

    def pool_idle_due(self, pool_id: str, token: int) -> None:
        with self.lock:
            pool = self.pools.get(pool_id)
            if pool is None or pool.idle_token != token or pool.status not in IDLE:
                return
            self._shutdown_pool(pool)

    # ── pools: what the API asks ──

    def get_pool(self, pool_id: str, view: Callable[[PoolRec], T] = as_is) -> T:
        with self.lock:
            return view(self._pool(pool_id))

    def _pool(self, pool_id: str) -> PoolRec:
        pool = self.pools.get(pool_id)
        if pool is None:
            raise NotFound(f"worker pool {pool_id} not found")
        return pool

    def get_pool_by_name(self, namespace: str, name: str, view: Callable[[PoolRec], T] = as_is) -> T:
        with self.lock:
            return view(live_or_newest(self.pools_by_name.get((namespace, name)), lambda p: not p.status.finished,
                                       f"worker pool '{namespace}/{name}' not found"))

    def shutdown_pool(self, pool_id: str) -> PoolRec:
        """Shut a pool down; a pool already shut down or terminated is left as it is (strict: refused)."""
        with self.lock:
            pool = self._pool(pool_id)
            if pool.status.finished and self.core.strictness.refuse_finished:
                raise InvalidRequest(f"worker pool {pool.id} is {pool.status.name} and cannot be shut down")
            self._shutdown_pool(pool)
            return pool

    def _shutdown_pool(self, pool: PoolRec) -> None:
        if pool.status.finished:
            return
        pool.status = WorkerPoolStatus.SHUTDOWN
        pool.status_changed = utcnow()
        self.compute.terminate_requirement(self.requirement_of(pool))

    def terminate_pool(self, pool_id: str) -> PoolRec:
        """Out of band: the pool and its compute requirement are terminated at once."""
        with self.lock:
            pool = self._pool(pool_id)
            self.compute.terminate_requirement(self.requirement_of(pool))
            return pool

    def resize_pool(self, pool_id: str, size: int, view: Callable[[PoolRec], T] = as_is) -> T:
        with self.lock:
            pool = self._pool(pool_id)
            if pool.status.finished:
                raise InvalidRequest(f"worker pool {pool.id} is {pool.status.name} and cannot be resized")
            if size < 0:
                raise InvalidRequest("size must not be negative")
            if pool.properties is not None:
                check_node_limits(pool.properties, size)
            cr = self.requirement_of(pool)
            alive = [i for i in cr.instances if i.status.alive]
            self.compute.check_quota(size - len(alive))
            pool.target = cr.target = size
            if size > len(alive):
                self.compute.add_instances(cr, size - len(alive))
            for instance in _removal_order(alive)[:max(len(alive) - size, 0)]:
                self.compute.terminate_instance(instance, NodeStatus.DEREGISTERED)
            self.compute.update_requirement(cr)
            self._refresh_pool(pool)
            return view(pool)

    # ── nodes: what the API asks ──

    def get_node(self, node_id: str, view: Callable[[NodeRec], T] = as_is) -> T:
        with self.lock:
            return view(self._node(node_id))

    def _node(self, node_id: str) -> NodeRec:
        node = self.nodes.get(node_id)
        if node is None or node.status is None:
            raise NotFound(f"node {node_id} not found")
        return node

    def get_node_by_worker(self, worker_id: str, view: Callable[[NodeRec], T] = as_is) -> T:
        with self.lock:
            worker = self.workers.get(worker_id)
            if worker is None:
                raise NotFound(f"worker {worker_id} not found")
            return view(worker.node)

    def shutdown_node(self, node_id: str, view: Callable[[NodeRec], T] = as_is) -> T:
        """DELETE nodes/{id}: the node is deregistered, its instance terminated, the pool's target lowered.

        Strict mode: the node stops taking tasks and ends after the node shutdown delay; the
        pool's target is left alone; a node that is gone is refused."""
        with self.lock:
            node = self._node(node_id)
            delay = self.core.strictness.node_shutdown_delay
            if not node.live and self.core.strictness.refuse_finished:
                raise InvalidRequest(f"node {node.id} is {node.status.name} and cannot be shut down")
            if delay is None:
                self._shutdown_node(node)
            elif node.live and not node.shutting_down:
                node.shutting_down = True
                if node.worker is not None:
                    self._make_busy(node.worker)
                self.core.sched().later(delay, self.node_shutdown_due, node.id)
            return view(node)

    def node_shutdown_due(self, node_id: str) -> None:
        """Timer (strict mode): a node asked to shut down goes; the pool's target stays."""
        with self.lock:
            node = self.nodes.get(node_id)
            if node is not None and node.live:
                self.end_node(node, NodeStatus.DEREGISTERED)
                self.compute.update_requirement(self.requirement_of(self.pools[node.pool_id]))

    def _shutdown_node(self, node: NodeRec) -> None:
        if not node.live:
            return
        pool = self.pools[node.pool_id]
        cr = self.requirement_of(pool)
        pool.target = cr.target = max(pool.target - 1, 0)
        self.end_node(node, NodeStatus.DEREGISTERED)
        self.compute.update_requirement(cr)

    def kill_node(self, node_id: str) -> NodeRec:
        """Out of band: the node is LOST, its instance terminated, its tasks fail; nothing replaces it."""
        with self.lock:
            node = self._node(node_id)
            self.end_node(node, NodeStatus.LOST)
            return node

    # ── searches ──

    def search_pools(self, search: WorkerPoolSearch, view: Callable[[list[PoolRec]], T] = as_is) -> T:
        with self.lock:
            namespaces = namespaces_of(search.namespace, search.namespaces)
            found = [
                p for p in self.pools.values()
                if (namespaces is None or p.namespace in namespaces)
                and (search.name is None or search.name in p.name)
                and (search.type is None or PROVISIONED_POOL_TYPE.endswith(search.type))
                and (not search.statuses or p.status in search.statuses)
                and search.isHealthy is not False
                and in_range(p.created, search.createdTime)
            ]
            return view(in_order(found, search.sortField, search.sortDirection))

    def search_nodes(self, search: NodeSearch, view: Callable[[list[NodeRec]], T] = as_is) -> T:
        with self.lock:
            if search.workerPoolId:
                pool = self.pools.get(search.workerPoolId)
                candidates: Iterable[NodeRec] = pool.nodes if pool else ()
            elif search.instanceId:
                instance = self.compute.instances.get(search.instanceId)
                candidates = [instance.node] if instance and instance.node else ()
            else:
                candidates = self.nodes.values()
            found = [n for n in candidates if n.status is not None and self._node_matches(n, search)]
            return view(in_order(found, search.sortField, search.sortDirection))

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
                and in_range(pool.template.ram, search.ram)
                and in_range(pool.template.vcpus, search.vcpus)
                and in_range(worker.registered if worker else None, search.workerRegisteredTime)
                and in_range(node.registered, search.registeredTime)
                and in_range(node.deregistered, search.deregisteredTime)
                and in_range(None, search.preemptionWarningTime)
                and (search.workerTaskGroupId is None or task_group == search.workerTaskGroupId)
                and (search.workerTag is None or pool.worker_tag == search.workerTag)
                and (not search.workerStatuses or (worker is not None and worker.status in search.workerStatuses)))


def _removal_order(alive: list[InstanceRec]) -> list[InstanceRec]:
    """Scale down takes instances not yet booted first, then idle nodes, then busy ones; newest first."""
    def rank(instance: InstanceRec) -> tuple[int, int]:
        node = instance.node
        if node is None or not node.live:
            return 0, -instance.seq
        return (1 if node.worker is None or node.worker.task is None else 2), -instance.seq
    return sorted(alive, key=rank)
