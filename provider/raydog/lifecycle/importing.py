"""Import of node resources: from a worker pool id back to every attribute Terraform needs.

Import ids are the worker pool id, or ``<cluster_id>/<pool_id>`` to say which work
requirement holds the pool's task group (otherwise the namespace's live work requirements
are searched). What YellowDog can't report back (a pool's ``userdata`` and ``images_id``)
imports as null, and the first plan records the configuration's values in place (see
``NodePlanning.unreadable_on_import``). A script equal to the built-in default imports as
null (the default), ``secret_environment`` is told from ``environment`` by the names the
task lists in RAYDOG_SECRET_NAMES. See the import sections of the resource docs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Optional

from tf.utils import Diagnostics

from raydog import names
from raydog.config.durations import format_duration
from raydog.config.rules import PROVIDER_SET_VARIABLES, SECRET_NAMES_VARIABLE
from raydog.lifecycle.diagnostics import report
from raydog.lifecycle.scripts import script_sha256, stored_script
from raydog.yellowdog import PlatformError, PoolInfo, TaskGroupInfo, TaskInfo, WorkRequirementInfo

if TYPE_CHECKING:
    from raydog.yellowdog import YellowDogClient


@dataclass(frozen=True)
class ImportedPool:
    """What the platform says of a pool being imported."""

    pool: PoolInfo
    cluster: WorkRequirementInfo
    group: TaskGroupInfo
    task_timeout: Optional[timedelta]
    tasks: list[TaskInfo]

    def base_state(self, script_attribute: str, template: str) -> dict:
        """The attributes every node resource shares, as the platform reports them."""
        task = self.tasks[0] if self.tasks else None
        task_environment = task.environment if task else {}
        secret_names = set(filter(None, task_environment.get(SECRET_NAMES_VARIABLE, "").split(",")))
        environment = {k: v for k, v in task_environment.items()
                       if k not in PROVIDER_SET_VARIABLES and k not in secret_names}
        secrets = {k: v for k, v in task_environment.items() if k in secret_names}
        task_data = task.task_data if task else None
        return {
            "id": self.pool.id,
            "cluster_id": self.cluster.id,
            "cluster_name": self.cluster.name,
            "compute_requirement_template_id": self.pool.template_id,
            "images_id": self.pool.images_id,
            "userdata": None,
            "instance_tags": self.pool.instance_tags or None,
            "metrics_enabled": self.pool.metrics_enabled or None,
            "environment": environment or None,
            "secret_environment": secrets or None,
            script_attribute: stored_script(task_data, template),
            "script_sha256": script_sha256(task_data) if task_data is not None else None,
            "lifetime": format_duration(self.task_timeout) if self.task_timeout else None,
            "namespace": self.cluster.namespace,
            "yellowdog_name": self.pool.name,
            "compute_requirement_id": self.pool.compute_requirement_id,
            "task_group_id": self.group.id,
        }


def parse_import_id(id: str) -> tuple[Optional[str], str]:
    if "/" in id:
        cluster_id, pool_id = id.split("/", 1)
        return cluster_id or None, pool_id
    return None, id


def read_imported_pool(client: "YellowDogClient", diags: Diagnostics, id: str) -> Optional[ImportedPool]:
    """The pool an import id names, with its cluster, task group and live tasks; None (with an error) if not."""
    cluster_id, pool_id = parse_import_id(id)
    try:
        pool = client.get_pool(pool_id)
        if pool is None or not pool.live:
            diags.add_error("Cannot import", f"Worker pool {pool_id} does not exist or has shut down.")
            return None
        found = client.find_pool_group(pool.namespace, pool.worker_tag or pool.name, cluster_id)
        if found is None:
            diags.add_error(
                "Cannot import",
                f"No live work requirement in namespace {pool.namespace} has a task group for worker pool "
                f"{pool_id} (worker tag {pool.worker_tag}). Import with <cluster_id>/<pool_id>.",
            )
            return None
        wr, group, timeout = found
        tasks = client.list_tasks(group.id)
    except PlatformError as exc:
        report(diags, f"Cannot import worker pool {pool_id}", exc)
        return None
    return ImportedPool(pool, wr, group, timeout, tasks)


def import_node_pool(client: "YellowDogClient", diags: Diagnostics, id: str, suffix: str,
                     script_attribute: str, template: str) -> Optional[dict]:
    """State of a single-node resource (head, observability) from its pool id."""
    found = read_imported_pool(client, diags, id)
    if found is None:
        return None
    if not found.tasks:
        diags.add_error("Cannot import",
                        f"Worker pool {found.pool.id} has no running task in task group {found.group.name}.")
        return None
    task = found.tasks[0]
    state = found.base_state(script_attribute, template)
    state["name_suffix"] = names.name_suffix_of(found.cluster.name, suffix, found.pool.name)
    state["observability_host"] = task.environment.get("OBSERVABILITY_HOST")
    state["task_id"] = task.id
    if task.worker_id or task.node_id:
        try:
            address = client.node_address(task.worker_id or task.node_id, found.pool.compute_requirement_id)
        except PlatformError as exc:
            report(diags, "Cannot resolve the node's addresses", exc)
            return None
        state.update(node_id=address.node_id, private_ip=address.private_ip, public_ip=address.public_ip)
    return state
