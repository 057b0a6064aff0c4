"""Import of node resources: from a worker pool id back to every attribute Terraform needs.

Import ids are the worker pool id, or ``<cluster_id>/<pool_id>`` to say which work
requirement holds the pool's task group (otherwise the namespace's live work requirements
are searched). What YellowDog can't report back — a pool's ``images_id`` and ``userdata``
— imports as null; see the import sections of the resource docs.
"""

from __future__ import annotations

from typing import Optional

from tf.utils import Diagnostics

from raydog import names
from raydog.resources.common import report
from raydog.yellowdog import PlatformError


def parse_import_id(id: str) -> tuple[Optional[str], str]:
    if "/" in id:
        cluster_id, pool_id = id.split("/", 1)
        return cluster_id or None, pool_id
    return None, id


def read_pool_and_group(platform, diags: Diagnostics, id: str):
    """(pool, work requirement, task group, task timeout, live tasks) for an import id, or None."""
    cluster_id, pool_id = parse_import_id(id)
    try:
        pool = platform.get_pool(pool_id)
        if pool is None or not pool.live:
            diags.add_error("Cannot import", f"Worker pool {pool_id} does not exist or has shut down.")
            return None
        found = platform.find_pool_group(pool.namespace, pool.worker_tag or pool.name, cluster_id)
        if found is None:
            diags.add_error(
                "Cannot import",
                f"No live work requirement in namespace {pool.namespace} has a task group for worker pool "
                f"{pool_id} (worker tag {pool.worker_tag}). Import with <cluster_id>/<pool_id>.",
            )
            return None
        wr, group, timeout = found
        tasks = platform.list_tasks(group.id)
    except PlatformError as exc:
        report(diags, f"Cannot import worker pool {pool_id}", exc)
        return None
    return pool, wr, group, timeout, tasks


def base_state(pool, wr, group, timeout, task) -> dict:
    """The attributes every node resource shares, as the platform reports them."""
    from raydog import specs

    environment = {k: v for k, v in (task.environment if task else {}).items() if k not in specs.PROVIDER_SET_VARIABLES}
    return {
        "id": pool.id,
        "cluster_id": wr.id,
        "cluster_name": wr.name,
        "compute_requirement_template_id": pool.template_id,
        "images_id": pool.images_id,
        "userdata": None,
        "instance_tags": pool.instance_tags or None,
        "metrics_enabled": pool.metrics_enabled or None,
        "environment": environment or None,
        "lifetime": specs.format_duration(timeout) if timeout else None,
        "namespace": wr.namespace,
        "yellowdog_name": pool.name,
        "compute_requirement_id": pool.compute_requirement_id,
        "task_group_id": group.id,
    }


def import_node_pool(platform, diags: Diagnostics, id: str, suffix: str, script_attribute: str) -> Optional[dict]:
    """State of a single-node resource (head, observability) from its pool id."""
    found = read_pool_and_group(platform, diags, id)
    if found is None:
        return None
    pool, wr, group, timeout, tasks = found
    if not tasks:
        diags.add_error("Cannot import", f"Worker pool {pool.id} has no running task in task group {group.name}.")
        return None
    task = tasks[0]
    state = base_state(pool, wr, group, timeout, task)
    state[script_attribute] = task.task_data
    state["name_suffix"] = names.name_suffix_of(wr.name, suffix, pool.name)
    state["observability_host"] = task.environment.get("OBSERVABILITY_HOST")
    state["task_id"] = task.id
    if task.worker_id or task.node_id:
        try:
            address = platform.node_address(task.worker_id or task.node_id, pool.compute_requirement_id)
        except PlatformError as exc:
            report(diags, "Cannot resolve the node's addresses", exc)
            return None
        state.update(node_id=address.node_id, private_ip=address.private_ip, public_ip=address.public_ip)
    return state


def import_worker_pool(platform, diags: Diagnostics, id: str) -> Optional[dict]:
    """State of a raydog_worker_pool from its pool id."""
    found = read_pool_and_group(platform, diags, id)
    if found is None:
        return None
    pool, wr, group, timeout, tasks = found
    sample = tasks[0] if tasks else None
    state = base_state(pool, wr, group, timeout, sample)
    environment = sample.environment if sample else {}
    state.update(
        name=names.internal_pool_name(wr.name, pool.name, group.name),
        head_private_ip=environment.get("RAY_HEAD_IP") or environment.get("RAY_HEAD_NODE_PRIVATE_IP"),
        observability_host=environment.get("OBSERVABILITY_HOST"),
        task_script=sample.task_data if sample else None,
        node_count=len(tasks),
        task_ids=[t.id for t in tasks],
    )
    return state
