"""The sandbox's model: one ``SandboxBackend`` composed of the per-service models around one lock.

    compute.models.ComputeModel     compute requirements, instances, addresses, quota
    pools.models.PoolsModel         worker pools, nodes, workers      (above compute)
    work.models.WorkModel           work requirements, groups, tasks  (above pools)
    work.allocation.TaskAllocation  READY tasks to free workers, then EXECUTING

A lower model tells the one above it what happens through a small protocol
(``compute.models.PoolSide``, ``pools.models.TaskSide``) instead of importing it, so imports
go one way: work -> pools -> compute. The scheduler calls back into these models; the HTTP
layer (``*/responses.py``, ``introspection.py``) calls their public methods. Neither takes
the lock: the models do.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from yellowdog_client.model import ComputeRequirementStatus

from .compute.models import ComputeModel
from .compute.templates import TemplateCatalogue
from .nodes.network import AddressPlan
from .pools.models import PoolsModel
from .records import ComputeRequirementRec, GroupRec, InstanceRec, NodeRec, PoolRec, TaskRec, WorkRequirementRec
from .service import ModelCore, Scheduling
from .strictness import Strictness
from .work.allocation import TaskAllocation
from .work.models import WorkModel


class SandboxBackend:
    """All sandbox state and the rules by which it changes, one model per service."""

    def __init__(
        self,
        catalogue: TemplateCatalogue | None = None,
        provision_delay: float = 0.0,
        task_start_delay: float = 0.0,
        max_nodes: int | None = None,
        simulate_exits: bool = True,
        address_plan: AddressPlan | None = None,
        strictness: Strictness | None = None,
    ) -> None:
        self.core = ModelCore(strictness)
        self.compute = ComputeModel(self.core, catalogue, provision_delay, max_nodes, address_plan)
        self.pools = PoolsModel(self.core, self.compute)
        self.work = WorkModel(self.core, self.pools)
        self.allocation = TaskAllocation(self.work, self.pools, task_start_delay, simulate_exits)
        self.work.upload_delay = task_start_delay

    def attach(self, scheduler: Scheduling) -> None:
        """The scheduler the models ask for timers and runtime calls."""
        self.core.scheduler = scheduler

    @property
    def catalogue(self) -> TemplateCatalogue:
        return self.compute.catalogue

    @property
    def provision_delay(self) -> float:
        """Seconds from provisioning to instances running; may be changed while the sandbox runs."""
        return self.compute.provision_delay

    @provision_delay.setter
    def provision_delay(self, seconds: float) -> None:
        self.compute.provision_delay = seconds

    # ── out of band (tests and operators, through /sandbox/v1 or RunningSandbox) ──

    def kill_node(self, node_id: str) -> NodeRec:
        return self.pools.kill_node(node_id)

    def terminate_pool(self, pool_id: str) -> PoolRec:
        return self.pools.terminate_pool(pool_id)

    def abort_task(self, task_id: str) -> TaskRec:
        return self.work.abort_task(task_id)

    def cancel_work_requirement(self, wr_id: str) -> WorkRequirementRec:
        return self.work.cancel_work_requirement(wr_id)

    # ── introspection ──

    def snapshot(self) -> dict:
        """Every object with its status, for GET /sandbox/v1/state."""
        with self.core.lock:
            return {
                "workRequirements": [_wr_state(wr, self.work.groups.values()) for wr in self.work.work_requirements.values()],
                "workerPools": [_pool_state(p) for p in self.pools.pools.values()],
                "computeRequirements": [_cr_state(c) for c in self.compute.compute_requirements.values()],
                "instances": [_instance_state(i) for i in self.compute.instances.values()],
                "nodes": [_node_state(n) for n in self.pools.nodes.values() if n.status is not None],
                "live": self.live_counts(),
            }

    def live_counts(self) -> dict:
        with self.core.lock:
            return {
                "workRequirements": sum(1 for w in self.work.work_requirements.values() if not w.status.finished),
                "workerPools": sum(1 for p in self.pools.pools.values() if not p.status.finished),
                "computeRequirements": sum(1 for c in self.compute.compute_requirements.values()
                                           if c.status is not ComputeRequirementStatus.TERMINATED),
                "instances": self.compute.alive_instances,
                "nodes": sum(1 for n in self.pools.nodes.values() if n.live),
                "tasks": sum(1 for t in self.work.tasks.values() if not t.status.finished),
            }


# ── the shapes of GET /sandbox/v1/state ──


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


def _wr_state(wr: WorkRequirementRec, every_group: Iterable[GroupRec]) -> dict:
    """The requirement with its groups; groups an update left out are under removedTaskGroups."""
    return {
        "id": wr.id, "namespace": wr.namespace, "name": wr.name, "status": wr.status.name,
        "taskGroups": [_group_state(g) for g in wr.groups], **_created(wr),
        "removedTaskGroups": [_group_state(g) for g in every_group if g.wr_id == wr.id and g.removed],
    }


def _group_state(group: GroupRec) -> dict:
    return {"id": group.id, "name": group.name, "status": group.status.name,
            "tasks": [_task_state(t) for t in group.tasks]}


def _pool_state(pool: PoolRec) -> dict:
    return {
        "id": pool.id, "namespace": pool.namespace, "name": pool.name, "status": pool.status.name,
        "computeRequirementId": pool.cr_id, "targetNodeCount": pool.target, "workerTag": pool.worker_tag,
        "nodeIds": [n.id for n in pool.nodes if n.status is not None], **_created(pool),
    }


def _cr_state(cr: ComputeRequirementRec) -> dict:
    return {
        "id": cr.id, "namespace": cr.namespace, "name": cr.name, "status": cr.status.name,
        "targetInstanceCount": cr.target, "workerPoolId": cr.pool_id, "templateId": cr.template.id, "tag": cr.tag,
        **_created(cr),
    }


def _instance_state(instance: InstanceRec) -> dict:
    return {
        "id": instance.id, "computeRequirementId": instance.cr_id, "status": instance.status.name,
        "privateIp": instance.private_ip, "publicIp": instance.public_ip, "hostname": instance.hostname,
        "nodeId": instance.node.id if instance.node else None, **_created(instance),
    }


def _node_state(node: NodeRec) -> dict:
    worker = node.worker
    return {
        "id": node.id, "status": node.status.name if node.status else None, "workerPoolId": node.pool_id,
        "instanceId": node.instance.id, "privateIp": node.instance.private_ip,
        "publicIp": node.instance.public_ip, "hostname": node.instance.hostname,
        "workerId": worker.id if worker else None,
        "taskId": worker.task.id if worker and worker.task else None, **_created(node),
        "registered": node.registered.isoformat() if node.registered else None,
    }


def _created(record) -> dict:
    """When a record was made, and its place in the order of creation (tests read how things overlapped)."""
    return {"seq": record.seq, "created": record.created.isoformat()}
