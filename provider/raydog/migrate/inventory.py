"""What a RayDog cluster is on the platform: its saved JSON state read, each id looked up.

RayDog's builder saves a cluster as JSON (``RayDogCluster.save_state_to_json_file``)::

    {"cluster_name": ..., "cluster_namespace": ..., "cluster_tag": ...,
     "work_requirement_id": ..., "worker_pool_ids": [<worker pools>..., <head>, <observability>?]}

The file does not say which pool is which, so each id is looked up on the platform: the
pool's task group in the cluster's work requirement says what it is (RayDog's ``head-node``,
``observability-node`` and ``worker-nodes-NN``; for clusters this provider made, ``head-…``,
``observability-…`` and ``<pool>-…``). Each pool is then read exactly as ``terraform import``
will read it (the provider's own import functions), so what is written will import.
Ids that are gone (shut down, terminated, unknown) go to ``Inventory.skipped`` with the reason.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from raydog import names

if TYPE_CHECKING:
    from tf.utils import Diagnostics

    from raydog.yellowdog import WorkRequirementInfo, YellowDogClient

CLUSTER, HEAD, OBSERVABILITY, WORKER_POOL = "cluster", "head", "observability", "worker_pool"
# The attribute holding each node resource's script.
SCRIPT_ATTRIBUTE = {HEAD: "ray_start_script", OBSERVABILITY: "start_script", WORKER_POOL: "task_script"}
# RayDog's fixed task group names, and the provider's "<role>-<8 hex>".
_RAYDOG_GROUPS = {"head-node": HEAD, "observability-node": OBSERVABILITY}
_PROVIDER_GROUP = re.compile(r"(?P<role>.+)-[0-9a-f]{8}")


class ImportStateError(Exception):
    """The saved state, the arguments or an existing file can't be used; the message says why."""


@dataclass(frozen=True)
class SavedState:
    """RayDog's saved cluster state (the keys of ``RayDogCluster._save_state``)."""

    cluster_name: str
    cluster_namespace: str
    cluster_tag: str | None
    work_requirement_id: str
    worker_pool_ids: tuple[str, ...]

    @classmethod
    def load(cls, path: Path) -> SavedState:
        try:
            data = json.loads(Path(path).read_text())
        except OSError as exc:
            raise ImportStateError(f"cannot read {path}: {exc.strerror or exc}") from exc
        except json.JSONDecodeError as exc:
            raise ImportStateError(f"{path} is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ImportStateError(f"{path} holds a JSON {type(data).__name__}, not RayDog's saved-state object")
        missing = [k for k in ("cluster_name", "cluster_namespace", "work_requirement_id") if not data.get(k)]
        if missing:
            raise ImportStateError(f"{path} is not RayDog saved state: {', '.join(missing)} missing "
                                   "(expected what RayDogCluster.save_state_to_json_file writes)")
        pool_ids = data.get("worker_pool_ids") or []
        if not isinstance(pool_ids, list) or not all(isinstance(i, str) for i in pool_ids):
            raise ImportStateError(f"{path}: worker_pool_ids must be a list of worker pool ids")
        return cls(data["cluster_name"], data["cluster_namespace"], data.get("cluster_tag"),
                   data["work_requirement_id"], tuple(i for i in pool_ids if i))


@dataclass
class Found:
    """One live object to adopt, with the attributes ``terraform import`` will give it."""

    kind: str  # CLUSTER, HEAD, OBSERVABILITY or WORKER_POOL
    import_id: str
    yellowdog_name: str
    detail: str
    attributes: dict = field(default_factory=dict, repr=False)

    key: str | None = None  # a worker pool's internal name: its resource label or module map key


@dataclass
class Inventory:
    """What the platform says each saved id is."""

    state: SavedState
    cluster: Found | None = None
    nodes: list[Found] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (id, why)
    warnings: list[str] = field(default_factory=list)

    def node(self, kind: str) -> Found | None:
        return next((n for n in self.nodes if n.kind == kind), None)

    @property
    def worker_pools(self) -> list[Found]:
        return [n for n in self.nodes if n.kind == WORKER_POOL]


def role_of(group_name: str) -> str:
    """HEAD, OBSERVABILITY or WORKER_POOL, from the name of the pool's task group."""
    if group_name in _RAYDOG_GROUPS:
        return _RAYDOG_GROUPS[group_name]
    match = _PROVIDER_GROUP.fullmatch(group_name)
    role = match.group("role") if match else group_name
    return {names.HEAD_GROUP_ROLE: HEAD, names.OBSERVABILITY_GROUP_ROLE: OBSERVABILITY}.get(role, WORKER_POOL)


def take_inventory(client: YellowDogClient, state: SavedState) -> Inventory:
    """Ask the platform what every id in the saved state is; gone ones go to ``skipped``."""
    inventory = Inventory(state)
    wr = client.get_work_requirement(state.work_requirement_id)
    if wr is None or wr.finished:
        status = "does not exist" if wr is None else f"is {wr.status}"
        inventory.skipped.append((state.work_requirement_id, f"work requirement {status}: the cluster is gone"))
        return inventory
    inventory.cluster = Found(CLUSTER, wr.id, wr.name, f"work requirement, {wr.status}",
                              {"id": wr.id, "name": names.base_name(wr.name), "namespace": wr.namespace, "tag": wr.tag})
    for pool_id in state.worker_pool_ids:
        found, why = _identify_pool(client, wr, pool_id)
        if found is None:
            inventory.skipped.append((pool_id, why))
        elif found.kind != WORKER_POOL and inventory.node(found.kind) is not None:
            why = f"a second {found.kind} pool ({found.yellowdog_name}); a cluster has one"
            inventory.skipped.append((pool_id, why))
        elif found.key and any(n.key == found.key for n in inventory.worker_pools):
            inventory.skipped.append((pool_id, f"its name {found.key} is taken by another pool of the cluster"))
        else:
            inventory.nodes.append(found)
            imported = found.attributes.get("name")
            problem = names.name_problem(imported or "") if found.kind == WORKER_POOL else None
            if problem:
                inventory.warnings.append(
                    f'worker pool {found.yellowdog_name}: this provider version imports its name as "{imported}", '
                    f"which {problem.split(',')[0]}; terraform plan will reject it until the provider names it "
                    f'"{found.key}" (see docs/guides/migrating-from-json-state.md)')
    return inventory


def _identify_pool(client: YellowDogClient, wr: WorkRequirementInfo, pool_id: str) -> tuple[Found | None, str]:
    from tf.utils import Diagnostics

    pool = client.get_pool(pool_id)
    if pool is None:
        return None, "worker pool does not exist"
    if not pool.live:
        return None, f"worker pool {pool.name} is {pool.status}"
    found = client.find_pool_group(pool.namespace or wr.namespace, pool.worker_tag or pool.name, wr.id)
    if found is None:
        return None, (f"worker pool {pool.name} has no live task group in work requirement {wr.name} "
                      f"(worker tag {pool.worker_tag})")
    group = found[1]
    role = role_of(group.name)
    import_id = f"{wr.id}/{pool.id}"
    diags = Diagnostics()
    attributes = _imported_state(role, client, diags, import_id)
    if attributes is None or diags.has_errors():
        why = "; ".join(f"{d.summary}: {d.detail}" for d in diags.diagnostics) or "cannot be imported"
        return None, f"worker pool {pool.name} (task group {group.name}): {why}"
    detail = f"task group {group.name}"
    if role == WORKER_POOL:
        count = int(attributes.get("node_count") or 0)
        if count < 1:
            return None, f"worker pool {pool.name} (task group {group.name}) has no live node task"
        detail += f", {count} node{'s' if count != 1 else ''}"
    key = names.internal_pool_name(wr.name, pool.name, group.name) if role == WORKER_POOL else None
    if key is not None and names.name_problem(key):
        return None, f"worker pool {pool.name} (task group {group.name}) has no usable name: {key!r}"
    return Found(role, import_id, pool.name, detail, attributes, key), ""


def _imported_state(kind: str, client: YellowDogClient, diags: Diagnostics, import_id: str) -> dict | None:
    """The state ``terraform import <import_id>`` gives a HEAD, OBSERVABILITY or WORKER_POOL.

    The one call into the provider's resources: the migration writes only what the
    resources' own import will accept."""
    from raydog.lifecycle.importing import import_node_pool
    from raydog.resources.head import HeadResource
    from raydog.resources.observability import ObservabilityResource
    from raydog.resources.worker_pool import import_worker_pool

    if kind == WORKER_POOL:
        return import_worker_pool(client, diags, import_id)
    resource = HeadResource if kind == HEAD else ObservabilityResource
    return import_node_pool(client, diags, import_id, resource.suffix, resource.script_attribute,
                            resource.script_template)
