"""Provisioned worker pools, their compute requirements and nodes.

A node resource owns one worker pool provisioned from a compute requirement template.
Provisioning is idempotent by the pool's unique name; removal terminates the compute
requirement first, then shuts the pool down (see ``remove_pool``).
"""

from __future__ import annotations

import threading
from collections.abc import Collection
from datetime import timedelta

from yellowdog_client.model import (
    ComputeRequirementSearch,
    AutoShutdown,
    ComputeRequirement,
    ComputeRequirementStatus,
    ComputeRequirementTemplateUsage,
    InstanceSearch,
    Node,
    NodeWorkerTarget,
    ProvisionedWorkerPoolProperties,
    WorkerPool,
    WorkerPoolSearch,
    WorkerPoolStatus,
)

from .core import ClientCore, log
from .errors import OwnedElsewhereError, PlatformError
from .models import NodeAddress, PoolInfo, PoolSpec
from .ownership import is_owner_group
from .retry import create_or_adopt, lookup_patiently
from .waits import poll_until

MAX_POOL_NODES = 10_000  # the platform's limit of nodes per pool
LIVE_POOL_STATUSES = [status for status in WorkerPoolStatus if not status.finished]
GONE_CR_STATUSES = (ComputeRequirementStatus.TERMINATING, ComputeRequirementStatus.TERMINATED)
INSTANCE_PAGE = 20


class PoolOps(ClientCore):
    """Worker pool, compute requirement and node operations of ``YellowDogClient``."""

    def provision_pool(self, spec: PoolSpec, details: bool = True,
                       proven_worker_tags: Collection[str] = ()) -> PoolInfo:
        """Provision the pool ``spec.namespace/spec.name`` with ``spec.worker_tag``, its owner token.

        The provision request goes first: the platform refuses a name a live pool holds
        ("already exists"). Only then is the live pool of that name looked up, and adopted
        only when its worker tag is ``spec.worker_tag`` or one of ``proven_worker_tags``
        (a reply lost after the platform committed this create, or a killed run's pool):
        anything else is OwnedElsewhereError. ``details=False`` returns the platform's
        answer as it is (no read-back: ``template_id``, ``instance_tags`` and ``tag`` are
        None), which is all a create needs.
        """
        label = f"{spec.namespace}/{spec.name}"
        accepted = {spec.worker_tag, *proven_worker_tags}

        def create() -> PoolInfo:
            usage, properties = _provision_request(spec)
            pool = self._call("provision worker pool", label, lambda: (
                self._sdk.worker_pool_client.provision_worker_pool(usage, properties)))
            log.info("provisioned worker pool %s as %s (compute requirement %s, %d node(s))",
                     label, pool.id, getattr(pool, "computeRequirementId", None), spec.node_count)
            if details or not getattr(pool, "computeRequirementId", None):
                return self._read_back(pool)
            return self._pool_info(pool, None)

        def find_live() -> PoolInfo | None:
            found = self.find_pool(spec.namespace, spec.name)
            if found is None or not found.live:
                return None
            if found.worker_tag not in accepted:
                raise OwnedElsewhereError("provision worker pool", label, found.id, "worker pool")
            log.warning("worker pool %s already exists as %s (%s), made by this configuration: adopting it",
                        label, found.id, found.status)
            return found

        return create_or_adopt(f"provision worker pool {label}", create, find_live)

    def live_pools_serving(self, wr_id: str) -> list[PoolInfo]:
        """The live pools whose nodes the work requirement's task groups run on.

        A group names its pool in its tag (and, for groups made before owner tokens, in its
        worker tag); a pool serves the group when its worker tag is one the group runs on.
        One search of the namespace's live pools, then one read per live pool of such a name.
        """
        wr = self._read_wr(wr_id)
        if wr is None:
            return []
        tags_by_name: dict[str, set[str]] = {}
        for group in wr.taskGroups or []:
            spec = group.runSpecification
            if is_owner_group(group.name) or spec is None:
                continue
            tags = set(spec.workerTags or [])
            for name in {group.tag, *tags} - {None}:
                tags_by_name.setdefault(name, set()).update(tags)
        if not tags_by_name:
            return []
        search = WorkerPoolSearch(namespaces=[wr.namespace], statuses=LIVE_POOL_STATUSES)
        serving = []
        for summary in self._all_pages("search worker pools", wr.namespace, lambda ref: (
                self._sdk.worker_pool_client.get_worker_pools(search).slice(ref))):
            if summary.name not in tags_by_name:
                continue
            pool = self.get_pool(summary.id, details=False)
            if pool is not None and pool.live and pool.worker_tag in tags_by_name[summary.name]:
                serving.append(pool)
        return serving

    def get_pool(self, pool_id: str, details: bool = True) -> PoolInfo | None:
        """The pool (finished ones with live=False), or None if the platform has no such id.

        ``details=False`` reads the pool alone (one request): enough for ``live``, ``status``
        and the ids, as a refresh needs; the compute requirement's fields are then None.
        """
        pool = self._read_pool(pool_id)
        if pool is None:
            return None
        cr_id = getattr(pool, "computeRequirementId", None)
        return self._pool_info(pool, self._read_cr(cr_id) if cr_id and details else None)

    def find_pool(self, namespace: str, name: str) -> PoolInfo | None:
        """The pool of that name: the live one if there is one, else the last finished one."""
        label = f"{namespace}/{name}"
        pools = self._sdk.worker_pool_client
        pool = self._get_or_none("read worker pool", label,
                                 lambda: pools.get_worker_pool_by_name(namespace, name))
        if pool is None:
            return None
        if pool.status is not None and pool.status.finished:
            search = WorkerPoolSearch(namespaces=[namespace], name=name, statuses=LIVE_POOL_STATUSES)
            for summary in self._all_pages("search worker pools", label, lambda ref: (
                    self._sdk.worker_pool_client.get_worker_pools(search).slice(ref))):
                if summary.name == name and summary.namespace == namespace and summary.id != pool.id:
                    found = self.get_pool(summary.id)
                    if found is not None:
                        return found
        cr_id = getattr(pool, "computeRequirementId", None)
        return self._pool_info(pool, self._read_cr(cr_id) if cr_id else None)

    def resize_pool(self, pool_id: str, node_count: int) -> PoolInfo:
        """Set the pool's target node count (idempotent); returns the pool as the platform answered
        (``target_node_count`` is the new size; the compute requirement's fields are not read)."""
        if node_count < 0:
            raise ValueError("resize_pool: node_count must not be negative")
        log.info("resizing worker pool %s to %d node(s)", pool_id, node_count)
        pool = self._call("resize worker pool", pool_id,
                          lambda: self._sdk.worker_pool_client.resize_worker_pool_by_id(pool_id, node_count))
        return self._pool_info(pool, None)

    def set_compute_requirement_tag(self, cr_id: str, tag: str | None) -> None:
        """Set a compute requirement's tag: read it, change the tag, write it back (no reprovision)."""
        cr = self._read_cr(cr_id)
        if cr is None:
            raise PlatformError("tag compute requirement", "the compute requirement does not exist", object_id=cr_id)
        if cr.tag == tag:
            return
        cr.tag = tag
        log.info("tagging compute requirement %s %s", cr_id, tag)
        self._call("tag compute requirement", cr_id,
                   lambda: self._sdk.compute_client.update_compute_requirement(cr, False))

    def shutdown_node(self, node_id: str) -> None:
        """Shut one node down gracefully. A node already gone or missing is success.

        The shutdown is asked for at once; only when the platform refuses it is the node
        read, to tell "already gone" (success) from a real failure.
        """
        log.info("shutting down node %s", node_id)
        try:
            self._call("shut down node", node_id,
                       lambda: self._sdk.worker_pool_client.shutdown_node_by_id(node_id))
        except PlatformError:
            current = lookup_patiently(lambda: self._read_node(node_id))
            if current is not None and not (current.status is not None and current.status.gone):
                raise

    def wait_until_nodes_gone(self, node_ids: Collection[str], timeout_seconds: float,
                              stop_event: threading.Event | None = None) -> None:
        """Wait until every node is gone (DEREGISTERED, TERMINATED, LOST or missing): a node
        shutdown may take effect later than it is asked for."""
        ids = list(dict.fromkeys(node_ids))

        def check() -> tuple[bool, str | None]:
            for node_id in ids:
                node = self._read_node(node_id)
                if node is not None and not (node.status is not None and node.status.gone):
                    return False, node.status.name if node.status is not None else None
            return True, "gone"

        if ids:
            poll_until(f"waiting for {len(ids)} node(s) to go", ids[0], check, timeout_seconds, stop_event,
                       operation="wait for node shutdown")

    def wait_until_pool_matches_tasks(self, pool_id: str, task_group_id: str, timeout_seconds: float,
                                      stop_event: threading.Event | None = None) -> None:
        """Wait until the pool's target node count equals its task group's unfinished tasks: an
        autoscaler that shut nodes down resizes the pool only once they are gone."""

        def check() -> tuple[bool, str | None]:
            pool = self.get_pool(pool_id, details=False)
            if pool is None or not pool.live:
                return True, "gone"
            live = len(self.list_tasks(task_group_id))  # type: ignore[attr-defined]  # WorkOps, in the client
            return pool.target_node_count == live, f"target {pool.target_node_count}, {live} task(s)"

        poll_until(f"waiting for worker pool {pool_id} to settle", pool_id, check, timeout_seconds, stop_event,
                   operation="wait for the pool's size to settle")

    def remove_pool(self, pool_id: str, compute_requirement_id: str | None = None,
                    timeout_seconds: float = 300.0, stop_event: threading.Event | None = None) -> None:
        """Terminate the pool's compute requirement, shut the pool down, and wait until both are done.

        The compute requirement goes first: terminating it stops the instances (what runs
        and costs) at once, and a requirement once TERMINATED cannot be brought back, so if
        this is interrupted halfway nothing is left running - only a pool record with no
        nodes, which a retried delete shuts down. Anything already gone is success.
        ``timeout_seconds=0`` returns without waiting.
        """
        # With the compute requirement's id known, nothing is read first: terminate and shut
        # down are asked for at once, and a refusal is checked against what is there.
        pool = None if compute_requirement_id else self._read_pool(pool_id)
        cr_id = compute_requirement_id or (getattr(pool, "computeRequirementId", None) if pool else None)
        cr_terminated = False
        if cr_id:
            cr_terminated = self._terminate_compute_requirement(cr_id)
        pool_finished = pool is not None and pool.status is not None and pool.status.finished
        pool_shut = pool_finished
        if compute_requirement_id or (pool is not None and not pool_finished):
            pool_shut = self._shutdown_pool(pool_id, cr_terminated)
        if timeout_seconds > 0 and not (pool_shut and (cr_terminated or not cr_id)):
            # Only what the answers did not confirm is polled.
            poll_until(f"worker pool {pool_id} removed", pool_id,
                       lambda: self._removal_state(pool_id if not pool_shut else None,
                                                   cr_id if not cr_terminated else None),
                       timeout_seconds, stop_event, operation="remove worker pool")

    def wait_until_terminated(self, namespace: str, name_part: str, timeout_seconds: float,
                              stop_event: threading.Event | None = None) -> None:
        """Wait until no compute requirement of the namespace whose name contains ``name_part``
        is still TERMINATING: one search per poll, however many there are.

        A pool's removal returns once its requirement is TERMINATING (final: nothing brings it
        back, and its instances are no longer alive); a cluster's destroy, which comes after
        its pools', waits here once for all of them to have TERMINATED.
        """
        search = ComputeRequirementSearch(namespace=namespace, name=name_part,
                                          statuses=[ComputeRequirementStatus.TERMINATING])

        def check() -> tuple[bool, str | None]:
            left = next(iter(self._all_pages("search compute requirements", namespace, lambda ref: (
                self._sdk.compute_client.get_compute_requirements(search).slice(ref)))), None)
            return left is None, (None if left is None else f"{left.name} {left.status}")

        poll_until(f"compute requirements {namespace}/*{name_part}* terminated", name_part, check, timeout_seconds,
                   stop_event, operation="wait for compute requirements to terminate")

    def node_address(self, node_or_worker_id: str, compute_requirement_id: str | None = None) -> NodeAddress:
        """The private IP (from the node) and public IP (from its instance) of a node.

        Takes a node id or a worker id (``ydid:wrkr:...``, as a task reports it). The
        public IP comes from one instance search filtered by the compute requirement and
        the node's private IP, so its cost does not grow with the pool's size.
        """
        node = self._node_of(node_or_worker_id)
        details = node.details
        private_ip = details.privateIpAddress if details else None
        cr_id = compute_requirement_id or self._cr_of_pool(node.workerPoolId)
        public_ip = None
        if details is not None and cr_id:
            public_ip = self._instance_public_ip(cr_id, details.instanceId, private_ip)
        if public_ip is None and details is not None:
            public_ip = details.publicIpAddress
        return NodeAddress(node_id=node.id, private_ip=private_ip, public_ip=public_ip)

    # -- helpers ----------------------------------------------------------------------------

    def _read_back(self, pool: WorkerPool) -> PoolInfo:
        """The pool with its compute requirement's details; the change is made, so a failed
        read must not hide the pool's id from the caller: fall back to the answer we have."""
        try:
            return lookup_patiently(lambda: self.get_pool(pool.id)) or self._pool_info(pool, None)
        except PlatformError as err:
            log.warning("worker pool %s: could not read it back (%s)", pool.id, err)
            return self._pool_info(pool, None)

    def _terminate_compute_requirement(self, cr_id: str) -> bool:
        """Terminate the requirement; True when the answer shows it TERMINATING or TERMINATED
        (either is final: a requirement never comes back from TERMINATING)."""
        log.info("terminating compute requirement %s", cr_id)
        try:
            answer = self._call("terminate compute requirement", cr_id,
                                lambda: self._sdk.compute_client.terminate_compute_requirement_by_id(cr_id))
            return getattr(answer, "status", None) in GONE_CR_STATUSES
        except PlatformError:
            current = lookup_patiently(lambda: self._read_cr(cr_id))
            if current is not None and not _cr_gone(current):
                raise
            return current is None or current.status == ComputeRequirementStatus.TERMINATED

    def _shutdown_pool(self, pool_id: str, cr_terminating: bool = False) -> bool:
        """Shut the pool down; True once the platform accepted it (or the pool had already finished).

        With its compute requirement known to be terminating, the pool ends with it (reference
        §3), so a refusal (a strict platform refuses to shut down a pool that has already
        ended) is taken as that, without a read."""
        log.info("shutting down worker pool %s", pool_id)
        try:
            self._call("shut down worker pool", pool_id,
                       lambda: self._sdk.worker_pool_client.shutdown_worker_pool_by_id(pool_id))
        except PlatformError as err:
            if cr_terminating and not (err.transient or err.outcome_unknown):
                log.info("worker pool %s: shutdown refused (%s); it ends with its compute requirement", pool_id, err)
                return True
            current = lookup_patiently(lambda: self._read_pool(pool_id))
            if current is not None and not (current.status is not None and current.status.finished):
                raise
        return True

    def _removal_state(self, pool_id: str | None, cr_id: str | None) -> tuple[bool, str]:
        if pool_id is None:  # shut down already confirmed
            cr = self._read_cr(cr_id) if cr_id else None
            done = cr is None or cr.status == ComputeRequirementStatus.TERMINATED
            return done, f"compute requirement {cr.status if cr else 'gone'}"
        pool = self._read_pool(pool_id)
        cr = self._read_cr(cr_id) if cr_id else None
        pool_done = pool is None or (pool.status is not None and pool.status.finished)
        cr_done = cr is None or cr.status == ComputeRequirementStatus.TERMINATED
        status = f"pool {pool.status if pool else 'gone'}, compute requirement {cr.status if cr else 'gone'}"
        return pool_done and cr_done, status

    def _node_of(self, node_or_worker_id: str) -> Node:
        if node_or_worker_id.startswith("ydid:wrkr:"):
            return self._call("read node of worker", node_or_worker_id, lambda: (
                self._sdk.worker_pool_client.get_node_by_worker_id(node_or_worker_id)))
        return self._call("read node", node_or_worker_id,
                          lambda: self._sdk.worker_pool_client.get_node_by_id(node_or_worker_id))

    def _cr_of_pool(self, pool_id: str | None) -> str | None:
        pool = self._read_pool(pool_id) if pool_id else None
        return getattr(pool, "computeRequirementId", None) if pool else None

    def _instance_public_ip(self, cr_id: str, instance_id: str, private_ip: str | None) -> str | None:
        search = InstanceSearch(computeRequirementId=cr_id, privateIpAddress=private_ip)
        for instance in self._all_pages("search instances", cr_id, lambda ref: (
                self._sdk.compute_client.get_instances(search).slice(ref)), page_size=INSTANCE_PAGE):
            if instance.id is not None and instance.id.instanceId == instance_id:
                return instance.publicIpAddress
        return None

    def _read_pool(self, pool_id: str) -> WorkerPool | None:
        return self._get_or_none("read worker pool", pool_id,
                                 lambda: self._sdk.worker_pool_client.get_worker_pool_by_id(pool_id))

    def _read_cr(self, cr_id: str) -> ComputeRequirement | None:
        return self._get_or_none("read compute requirement", cr_id,
                                 lambda: self._sdk.compute_client.get_compute_requirement_by_id(cr_id))

    def _read_node(self, node_id: str) -> Node | None:
        return self._get_or_none("read node", node_id,
                                 lambda: self._sdk.worker_pool_client.get_node_by_id(node_id))

    @staticmethod
    def _pool_info(pool: WorkerPool, cr: ComputeRequirement | None) -> PoolInfo:
        properties = getattr(pool, "properties", None)
        target = cr.targetInstanceCount if cr is not None else getattr(pool, "expectedNodeCount", 0)
        return PoolInfo(
            id=pool.id,
            namespace=pool.namespace,
            name=pool.name,
            status=None if pool.status is None else pool.status.name,
            live=not (pool.status is not None and pool.status.finished),
            compute_requirement_id=getattr(pool, "computeRequirementId", None),
            target_node_count=target or 0,
            template_id=cr.createdFromId if cr is not None else None,
            images_id=None,
            instance_tags=_instance_tags(cr),
            metrics_enabled=getattr(properties, "metricsEnabled", None),
            worker_tag=getattr(properties, "workerTag", None),
            compute_requirement_status=None if cr is None or cr.status is None else cr.status.name,
            tag=cr.tag if cr is not None else None,
            idle_node_shutdown=_timeout_of(getattr(properties, "idleNodeShutdown", None)),
            idle_pool_shutdown=_timeout_of(getattr(properties, "idlePoolShutdown", None)),
            node_boot_timeout=getattr(properties, "nodeBootTimeout", None),
            max_nodes=getattr(properties, "maxNodes", None),
        )


def _provision_request(
        spec: PoolSpec) -> tuple[ComputeRequirementTemplateUsage, ProvisionedWorkerPoolProperties]:
    usage = ComputeRequirementTemplateUsage(
        templateId=spec.template_id,
        requirementNamespace=spec.namespace,
        requirementName=spec.name,
        requirementTag=spec.tag,
        targetInstanceCount=spec.node_count,
        imagesId=spec.images_id,
        userData=spec.userdata,
        instanceTags=dict(spec.instance_tags) or None,
        maintainInstanceCount=False,  # required for worker pools
    )
    properties = ProvisionedWorkerPoolProperties(
        createNodeWorkers=NodeWorkerTarget.per_node(1),  # one worker per node: one Ray node task per node
        minNodes=0,
        maxNodes=spec.max_nodes or MAX_POOL_NODES,
        workerTag=spec.worker_tag,
        metricsEnabled=spec.metrics_enabled,
        idleNodeShutdown=_auto_shutdown(spec.idle_node_shutdown),
        idlePoolShutdown=_auto_shutdown(spec.idle_pool_shutdown),
        nodeBootTimeout=spec.node_boot_timeout,
    )
    return usage, properties


def _auto_shutdown(timeout: timedelta | None) -> AutoShutdown:
    return AutoShutdown(enabled=False) if timeout is None else AutoShutdown(enabled=True, timeout=timeout)


def _timeout_of(shutdown: AutoShutdown | None) -> timedelta | None:
    return shutdown.timeout if shutdown is not None and shutdown.enabled else None


def _instance_tags(cr: ComputeRequirement | None) -> dict[str, str] | None:
    sources = getattr(getattr(cr, "provisionStrategy", None), "sources", None) if cr is not None else None
    if not sources:
        return None
    tags: dict[str, str] = {}
    for source in sources:
        tags.update(getattr(source, "instanceTags", None) or {})
    return tags


def _cr_gone(cr: ComputeRequirement) -> bool:
    return cr.status in GONE_CR_STATUSES or cr.nextStatus == ComputeRequirementStatus.TERMINATED
