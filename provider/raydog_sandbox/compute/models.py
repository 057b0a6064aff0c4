"""Compute requirements and their instances: the machines under the worker pools.

State and lifecycle, no HTTP (that is ``responses.py``). A compute requirement is made
when a worker pool is provisioned (``pools/models.py`` owns that); its instances boot
after the provisioning delay, each running instance carries one node of the pool, and
addresses and the ``--max-nodes`` quota are kept here. What happens to the pool and its
nodes when an instance runs or ends, or the requirement terminates, is the pools model's
business: this model tells it through ``PoolSide``.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Protocol, TypeVar

from yellowdog_client.model import (
    ComputeRequirement,
    ComputeRequirementStatus,
    ComputeRequirementSummarySearch,
    ComputeRequirementTemplateUsage,
    InstanceSearch,
    InstanceStatus,
    NodeStatus,
)

from ..errors import InvalidRequest, NotFound
from ..nodes.network import LOOPBACK_PLAN, AddressPlan
from ..nodes.runtime import NodeSpec
from ..records import ComputeRequirementRec, InstanceRec, NodeRec
from ..search import in_order, in_range, live_or_newest, namespaces_of
from ..service import ModelCore, as_is, check_name, utcnow
from .templates import PROVIDER, REGION, Template, TemplateCatalogue

T = TypeVar("T")


class PoolSide(Protocol):
    """What the compute model tells the worker pools above it (``pools.models.PoolsModel``)."""

    def add_node(self, instance: InstanceRec, cr: ComputeRequirementRec) -> NodeSpec:
        """The instance runs: its node joins the pool; returns what the runtime needs to boot it."""

    def end_node(self, node: NodeRec, status: NodeStatus) -> None:
        """The node's instance is going: the node leaves with this status."""

    def requirement_terminating(self, cr: ComputeRequirementRec) -> None:
        """The requirement is being terminated: its pool is shut down."""

    def requirement_terminated(self, cr: ComputeRequirementRec) -> None:
        """Every instance of the requirement is gone: its pool is terminated."""


def image_id(cr: ComputeRequirementRec) -> str:
    return cr.usage.imagesId or "sim-image"


class ComputeModel:
    """Compute requirements, instances, addresses and the quota."""

    def template(self, key: str, view: Callable[[Template], T]) -> T:
        """The compute requirement template of that id or ``namespace/name``; NotFound if none."""
        template = self.catalogue.find(key)
        if template is None:
            raise NotFound(f"compute requirement template {key} not found")
        return view(template)

    def __init__(self, core: ModelCore, catalogue: TemplateCatalogue | None = None,
                 provision_delay: float = 0.0, max_nodes: int | None = None,
                 address_plan: AddressPlan | None = None) -> None:
        self.core = core
        self.lock = core.lock
        self.catalogue = catalogue or TemplateCatalogue()
        self.provision_delay = provision_delay
        self.max_nodes = max_nodes
        # Loopback addresses (127.0.x.y private, 127.1.x.y public) unless the runtime gives
        # its nodes a network of their own.
        self.address_plan = address_plan or LOOPBACK_PLAN
        self.pools: PoolSide | None = None  # the pools model sets itself here
        self.compute_requirements: dict[str, ComputeRequirementRec] = {}
        self.crs_by_name: dict[tuple[str, str], list[ComputeRequirementRec]] = {}
        self.instances: dict[str, InstanceRec] = {}
        self.instances_by_address: dict[str, list[InstanceRec]] = {}
        self.alive_instances = 0
        self._address = itertools.count(0)
        self._addresses_in_use: set[int] = set()

    # ── making requirements (the pools model provisions; the lock is held) ──

    def check_usage(self, usage: ComputeRequirementTemplateUsage | None) -> tuple[Template, int]:
        """The template and the instance count a provisioning request asks for; InvalidRequest if wrong."""
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
        return template, target

    def check_name_free(self, namespace: str, name: str) -> None:
        reserved = self.core.strictness.reserve_finished_names
        if any(reserved or c.status is not ComputeRequirementStatus.TERMINATED
               for c in self.crs_by_name.get((namespace, name), ())):
            raise InvalidRequest(f"compute requirement '{namespace}/{name}' already exists in namespace '{namespace}'")

    def check_quota(self, extra: int) -> None:
        if self.max_nodes is not None and extra > 0 and self.alive_instances + extra > self.max_nodes:
            raise InvalidRequest(
                f"quota exceeded: {self.alive_instances} nodes are live or provisioning and {extra} more were "
                f"requested, but the sandbox allows at most {self.max_nodes} (--max-nodes)")

    def create_requirement(self, usage: ComputeRequirementTemplateUsage, template: Template, target: int,
                           pool_id: str, now: datetime) -> ComputeRequirementRec:
        """A new requirement for the pool, with no instances yet (``add_instances`` adds them)."""
        key = (usage.requirementNamespace, usage.requirementName)
        cr = ComputeRequirementRec(
            id=self.core.new_id("compreq"), seq=self.core.next_seq(), namespace=key[0], name=key[1],
            tag=usage.requirementTag, template=template, usage=usage, source_id=self.core.new_id("compsrc"),
            pool_id=pool_id, created=now, target=target, status_changed=now)
        self.compute_requirements[cr.id] = cr
        self.crs_by_name.setdefault(key, []).append(cr)
        return cr

    # ── instances ──

    def add_instances(self, cr: ComputeRequirementRec, count: int) -> None:
        """New PENDING instances; each runs after the provisioning delay."""
        for _ in range(count):
            index = self._allocate_address()
            private_ip, public_ip = self.address_plan.addresses(index)
            instance = InstanceRec(
                id=f"i-{secrets.token_hex(8)}", seq=self.core.next_seq(), cr_id=cr.id, pool_id=cr.pool_id,
                hostname="ip-" + private_ip.replace(".", "-"), private_ip=private_ip, public_ip=public_ip,
                created=utcnow(), status_changed=utcnow(), address_index=index)
            cr.instances.append(instance)
            self.instances[instance.id] = instance
            for key in (private_ip, public_ip, instance.hostname):
                self.instances_by_address.setdefault(key, []).append(instance)
            self.alive_instances += 1
            self.core.sched().later(self.provision_delay, self.instance_boot_due, instance.id)

    def _allocate_address(self) -> int:
        """An index into the node addresses, never one in use."""
        for _ in range(self.address_plan.count):
            index = next(self._address) % self.address_plan.count
            if index not in self._addresses_in_use:
                self._addresses_in_use.add(index)
                return index
        raise InvalidRequest("quota exceeded: the sandbox has no free node addresses left")

    def set_instance_status(self, instance: InstanceRec, status: InstanceStatus) -> None:
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
            self.set_instance_status(instance, InstanceStatus.RUNNING)
            cr = self.compute_requirements[instance.cr_id]
            spec = self._pools().add_node(instance, cr)
            self.update_requirement(cr)
            self.core.sched().boot_node(spec)

    def terminate_instance(self, instance: InstanceRec, node_status: NodeStatus) -> None:
        """The instance goes; its node, if it has one, leaves with node_status."""
        if not instance.status.alive:
            return
        if instance.node is not None:
            self._pools().end_node(instance.node, node_status)
        else:
            self.set_instance_status(instance, InstanceStatus.TERMINATING)
            self.instance_gone(instance)

    def instance_gone(self, instance: InstanceRec) -> None:
        """Nothing runs on the instance any more: TERMINATED, after the terminate delay (strict mode)."""
        delay = self.core.strictness.terminate_delay
        if delay > 0:
            self.core.sched().later(delay, self.instance_terminated_due, instance.id)
        else:
            self.instance_terminated_due(instance.id)

    def instance_terminated_due(self, instance_id: str) -> None:
        with self.lock:
            instance = self.instances.get(instance_id)
            if instance is None or instance.status is InstanceStatus.TERMINATED:
                return
            self.set_instance_status(instance, InstanceStatus.TERMINATED)
            self.update_requirement(self.compute_requirements[instance.cr_id])

    # ── requirement status ──

    def terminate_requirement(self, cr: ComputeRequirementRec) -> None:
        if cr.status in (ComputeRequirementStatus.TERMINATING, ComputeRequirementStatus.TERMINATED):
            return
        cr.status = ComputeRequirementStatus.TERMINATING
        cr.next_status = ComputeRequirementStatus.TERMINATED
        cr.status_changed = utcnow()
        self._pools().requirement_terminating(cr)
        for instance in cr.instances:
            self.terminate_instance(instance, NodeStatus.TERMINATED)
        self.update_requirement(cr)

    def update_requirement(self, cr: ComputeRequirementRec) -> None:
        """Derive the requirement's status from its instances."""
        if cr.status is ComputeRequirementStatus.TERMINATING:
            if all(i.status is InstanceStatus.TERMINATED for i in cr.instances):
                cr.status, cr.next_status = ComputeRequirementStatus.TERMINATED, None
                cr.status_changed = utcnow()
                self._pools().requirement_terminated(cr)
            return
        if cr.status is ComputeRequirementStatus.TERMINATED:
            return
        pending = any(i.status is InstanceStatus.PENDING for i in cr.instances)
        status = ComputeRequirementStatus.PROVISIONING if pending else ComputeRequirementStatus.RUNNING
        if cr.status is not status:
            cr.status = status
            cr.status_changed = utcnow()
        cr.next_status = ComputeRequirementStatus.RUNNING if pending else None

    def _pools(self) -> PoolSide:
        if self.pools is None:
            raise RuntimeError("the compute model has no pools model attached")
        return self.pools

    # ── what the API asks ──

    def transition_compute_requirement(self, cr_id: str, status_name: str,
                                       view: Callable[[ComputeRequirementRec], T] = as_is) -> T:
        with self.lock:
            cr = self._requirement(cr_id)
            if cr.status is ComputeRequirementStatus.TERMINATED and self.core.strictness.refuse_finished:
                raise InvalidRequest(f"compute requirement {cr.id} is TERMINATED and cannot be terminated again")
            if status_name != ComputeRequirementStatus.TERMINATED.value:
                if status_name not in ComputeRequirementStatus.__members__:
                    raise InvalidRequest(f"unknown compute requirement status {status_name!r}")
                raise InvalidRequest(
                    f"compute requirement {cr.id} cannot transition to {status_name}: the sandbox's simulated "
                    "compute source supports only TERMINATED")
            self.terminate_requirement(cr)
            return view(cr)

    def update_compute_requirement(self, body: ComputeRequirement,
                                   view: Callable[[ComputeRequirementRec], T] = as_is) -> T:
        """PUT /compute/requirements: the sandbox takes a new tag; a requirement's identity and size
        are not changed this way (a pool's size changes through its pool), so a body that changes
        them is refused rather than silently ignored."""
        with self.lock:
            if not body.id:
                raise InvalidRequest("id is required to update a compute requirement")
            cr = self._requirement(body.id)
            if (body.namespace, body.name) != (cr.namespace, cr.name):
                raise InvalidRequest("the namespace and name of a compute requirement cannot be changed")
            if body.targetInstanceCount is not None and body.targetInstanceCount != cr.target:
                raise InvalidRequest(f"compute requirement {cr.id} serves a worker pool: resize the pool instead "
                                     "of changing targetInstanceCount")
            if cr.status is ComputeRequirementStatus.TERMINATED and self.core.strictness.refuse_finished:
                raise InvalidRequest(f"compute requirement {cr.id} is TERMINATED and cannot be updated")
            check_name("tag", body.tag, required=False)
            cr.tag = body.tag
            return view(cr)

    def get_compute_requirement(self, cr_id: str, view: Callable[[ComputeRequirementRec], T] = as_is) -> T:
        with self.lock:
            return view(self._requirement(cr_id))

    def get_compute_requirement_by_name(self, namespace: str, name: str,
                                        view: Callable[[ComputeRequirementRec], T] = as_is) -> T:
        with self.lock:
            return view(live_or_newest(
                self.crs_by_name.get((namespace, name)),
                lambda c: c.status is not ComputeRequirementStatus.TERMINATED,
                f"compute requirement '{namespace}/{name}' not found"))

    def compute_requirement_updating(self, cr_id: str) -> bool:
        with self.lock:
            return self._requirement(cr_id).next_status is not None

    def _requirement(self, cr_id: str) -> ComputeRequirementRec:
        cr = self.compute_requirements.get(cr_id)
        if cr is None:
            raise NotFound(f"compute requirement {cr_id} not found")
        return cr

    def search_compute_requirements(self, search: ComputeRequirementSummarySearch,
                                    view: Callable[[list[ComputeRequirementRec]], T] = as_is) -> T:
        with self.lock:
            namespaces = namespaces_of(search.namespace, search.namespaces)
            found = [
                c for c in self.compute_requirements.values()
                if (namespaces is None or c.namespace in namespaces)
                and (search.name is None or search.name in c.name)
                and (search.tag is None or c.tag == search.tag)
                and (not search.statuses or c.status in search.statuses)
                and search.isHealthy is not False
                and in_range(c.created, search.createdTime)
            ]
            return view(in_order(found, search.sortField, search.sortDirection))

    def search_instances(self, search: InstanceSearch, view: Callable[[list[InstanceRec]], T] = as_is) -> T:
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
                and (not search.imageIds or image_id(self.compute_requirements[i.cr_id]) in search.imageIds)
                and (search.publicIpAddress is None or i.public_ip == search.publicIpAddress)
                and (search.privateIpAddress is None or i.private_ip == search.privateIpAddress)
                and (search.hostname is None or i.hostname == search.hostname)
            ]
            return view(in_order(found, search.sortField, search.sortDirection))
