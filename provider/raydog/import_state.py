"""``raydog import-state``: adopt a cluster that RayDog built into Terraform, from RayDog's saved state.

RayDog's builder saves a cluster as JSON (``RayDogCluster.save_state_to_json_file``)::

    {"cluster_name": ..., "cluster_namespace": ..., "cluster_tag": ...,
     "work_requirement_id": ..., "worker_pool_ids": [<worker pools>..., <head>, <observability>?]}

The file does not say which pool is which, so each id is looked up on the platform: its
task group in the cluster's work requirement says what it is (``head-node``,
``observability-node`` or ``worker-nodes-NN``; for clusters this provider made, ``head-…``,
``observability-…`` or ``<pool>-…``). The command then writes ``imports.tf``: one ``import``
block per live object, addressed to the raw resources (``raydog_head.this``, …) or to an
instance of the ``terraform/modules/raydog`` module. ``terraform plan
-generate-config-out=generated.tf`` writes the resources' configuration, ``terraform apply``
adopts them, and from then on Terraform manages the cluster. Ids that are gone (shut down,
terminated, unknown) are reported and skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from raydog import names

IMPORTS_FILE = "imports.tf"
VERSIONS_FILE = "versions.tf"
DEFAULT_API_URL = "https://api.yellowdog.ai"
PROVIDER_SOURCE = "yellowdog/raydog"

HEAD, OBSERVABILITY, WORKER_POOL = "head", "observability", "worker_pool"
# Task group names: RayDog's fixed ones, and the provider's "<role>-<8 hex>".
_RAYDOG_GROUPS = {"head-node": HEAD, "observability-node": OBSERVABILITY}
_PROVIDER_GROUP = re.compile(r"^(?P<role>.+)-[0-9a-f]{8}$")


class ImportStateError(Exception):
    """The saved state can't be used; the message says why."""


@dataclass(frozen=True)
class SavedState:
    """RayDog's saved cluster state (the keys of ``RayDogCluster._save_state``)."""

    cluster_name: str
    cluster_namespace: str
    cluster_tag: str | None
    work_requirement_id: str
    worker_pool_ids: tuple[str, ...]

    @classmethod
    def load(cls, path: Path) -> "SavedState":
        try:
            data = json.loads(Path(path).read_text())
        except OSError as exc:
            raise ImportStateError(f"cannot read {path}: {exc.strerror or exc}") from exc
        except json.JSONDecodeError as exc:
            raise ImportStateError(f"{path} is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ImportStateError(f"{path} holds {type(data).__name__}, not RayDog's saved-state object")
        missing = [k for k in ("cluster_name", "cluster_namespace", "work_requirement_id") if not data.get(k)]
        if missing:
            raise ImportStateError(f"{path} is not RayDog saved state: {', '.join(missing)} missing "
                                   "(expected the output of RayDogCluster.save_state_to_json_file)")
        pool_ids = data.get("worker_pool_ids") or []
        if not isinstance(pool_ids, list) or not all(isinstance(i, str) for i in pool_ids):
            raise ImportStateError(f"{path}: worker_pool_ids must be a list of worker pool ids")
        return cls(data["cluster_name"], data["cluster_namespace"], data.get("cluster_tag"),
                   data["work_requirement_id"], tuple(i for i in pool_ids if i))


@dataclass
class Found:
    """One live object to adopt."""

    kind: str  # "cluster", HEAD, OBSERVABILITY or WORKER_POOL
    import_id: str
    yellowdog_name: str
    key: str | None = None  # a worker pool's internal name
    detail: str = ""


@dataclass
class Inventory:
    """What the platform says each saved id is."""

    state: SavedState
    cluster: Found | None = None
    nodes: list[Found] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (id, why)


def worker_pool_key(cluster_name: str, pool_name: str | None, group_name: str) -> str | None:
    """The internal name (``raydog_worker_pool.name``, the module's map key) of an adopted pool.

    ``<cluster>-<name>`` gives ``<name>`` when that is a valid pool name (pools this provider
    made). RayDog names pools ``<cluster>-NN-wrkrs``, and ``NN-wrkrs`` starts with a digit,
    which YellowDog's naming rule forbids; those take the task group's name instead
    (``worker-nodes-NN``, which is also RayDog's own default internal name for the pool).
    Must match what the provider's import of ``raydog_worker_pool`` sets as ``name``.
    """
    prefix = f"{cluster_name}-"
    if pool_name and pool_name.startswith(prefix):
        suffix = pool_name[len(prefix):]
        if names.name_problem(suffix) is None and suffix not in names.RESERVED_POOL_NAMES:
            return suffix
    match = _PROVIDER_GROUP.match(group_name)
    candidate = group_name if group_name.startswith("worker-nodes-") or not match else match.group("role")
    return candidate if names.name_problem(candidate) is None else None


def role_of(group_name: str) -> str:
    """head, observability or worker_pool, from the name of the pool's task group."""
    if group_name in _RAYDOG_GROUPS:
        return _RAYDOG_GROUPS[group_name]
    match = _PROVIDER_GROUP.match(group_name)
    role = match.group("role") if match else group_name
    return {names.HEAD_GROUP_ROLE: HEAD, names.OBSERVABILITY_GROUP_ROLE: OBSERVABILITY}.get(role, WORKER_POOL)


def take_inventory(platform, state: SavedState) -> Inventory:
    """Ask the platform what every id in the saved state is; gone ones go to ``skipped``."""
    inventory = Inventory(state)
    wr = platform.get_work_requirement(state.work_requirement_id)
    if wr is None or wr.finished:
        status = "does not exist" if wr is None else f"is {wr.status}"
        inventory.skipped.append((state.work_requirement_id, f"work requirement {status}: the cluster is gone"))
        return inventory
    inventory.cluster = Found("cluster", wr.id, wr.name, detail=f"work requirement {wr.namespace}/{wr.name}")
    for pool_id in state.worker_pool_ids:
        found, why = _identify_pool(platform, wr, pool_id)
        if found is None:
            inventory.skipped.append((pool_id, why))
        elif found.kind != WORKER_POOL and any(n.kind == found.kind for n in inventory.nodes):
            inventory.skipped.append((pool_id, f"a second {found.kind} pool ({found.yellowdog_name}); only one "
                                               "can be adopted"))
        elif found.key and any(n.key == found.key for n in inventory.nodes):
            inventory.skipped.append((pool_id, f"internal name {found.key} is already taken by another pool"))
        else:
            inventory.nodes.append(found)
    return inventory


def _identify_pool(platform, wr, pool_id: str) -> tuple[Found | None, str]:
    pool = platform.get_pool(pool_id)
    if pool is None:
        return None, "worker pool does not exist"
    if not pool.live:
        return None, f"worker pool {pool.name} is {pool.status}"
    found = platform.find_pool_group(pool.namespace or wr.namespace, pool.worker_tag or pool.name, wr.id)
    if found is None:
        return None, (f"worker pool {pool.name} has no live task group in work requirement {wr.name} "
                      f"(worker tag {pool.worker_tag})")
    _, group, _ = found
    tasks = platform.list_tasks(group.id)
    if not tasks:
        return None, f"worker pool {pool.name}: task group {group.name} has no live task (its nodes have ended)"
    import_id = f"{wr.id}/{pool.id}"
    role = role_of(group.name)
    if role != WORKER_POOL:
        return Found(role, import_id, pool.name, detail=f"task group {group.name}"), ""
    key = worker_pool_key(wr.name, pool.name, group.name)
    if key is None:
        return None, (f"worker pool {pool.name} (task group {group.name}) has no name usable as a "
                      "raydog_worker_pool name")
    nodes = f"{len(tasks)} node{'s' if len(tasks) != 1 else ''}"
    return Found(WORKER_POOL, import_id, pool.name, key=key, detail=f"task group {group.name}, {nodes}"), ""


# -- addresses and files -------------------------------------------------------------------------


def resource_label(key: str) -> str:
    """A Terraform resource name for a worker pool: its internal name with '-' as '_'."""
    label = key.replace("-", "_")
    return label if re.match(r"^[A-Za-z_]", label) else f"pool_{label}"


def address(found: Found, module: str | None) -> str:
    """Where the object goes: a raw resource (``module`` None) or the module instance ``module``."""
    if module is None:
        return {
            "cluster": "raydog_cluster.this",
            HEAD: "raydog_head.this",
            OBSERVABILITY: "raydog_observability.this",
        }.get(found.kind) or f"raydog_worker_pool.{resource_label(found.key)}"
    inner = {
        "cluster": "raydog_cluster.this",
        HEAD: "raydog_head.this",
        OBSERVABILITY: "raydog_observability.this[0]",
    }.get(found.kind) or f'raydog_worker_pool.pool["{found.key}"]'
    return f"{module}.{inner}"


def render_imports(inventory: Inventory, module: str | None, source: str) -> str:
    state = inventory.state
    lines = [
        f"# Written by `raydog import-state {source}`: RayDog cluster {state.cluster_name!r} in namespace "
        f"{state.cluster_namespace!r}.",
        "# Run `terraform plan -generate-config-out=generated.tf`, review, then `terraform apply` to adopt it."
        if module is None else
        "# The module block is in cluster.tf; run `terraform plan`, review, then `terraform apply` to adopt it.",
        "# Once applied, these blocks may be deleted.",
    ]
    for found in [inventory.cluster, *inventory.nodes]:
        lines += ["", f"# {found.yellowdog_name}: {found.detail}", "import {",
                  f"  to = {address(found, module)}", f'  id = "{found.import_id}"', "}"]
    for skipped_id, why in inventory.skipped:
        lines.append(f"# skipped {skipped_id}: {why}")
    return "\n".join(lines) + "\n"


VERSIONS_TF = """terraform {
  required_providers {
    raydog = {
      source = "yellowdog/raydog"
    }
  }
}

# Credentials from YD_API_URL, YD_API_KEY_ID and YD_API_KEY_SECRET.
provider "raydog" {}
"""


def declares_provider(directory: Path) -> bool:
    return any(PROVIDER_SOURCE in p.read_text(errors="replace") for p in directory.glob("*.tf"))


# -- the command ------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("state_file", type=Path, metavar="STATE.json", help="RayDog's saved cluster state")
    parser.add_argument("--dir", type=Path, required=True, help="Terraform root module directory to write into")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--resources", action="store_true",
                      help="import into raw resources: raydog_cluster.this, raydog_head.this, ... (the default)")
    mode.add_argument("--module", metavar="ADDRESS", default=None,
                      help="import into an instance of the raydog module, such as module.raydog")
    parser.add_argument("--api-url", default=None, help="YellowDog API URL (default: $YD_API_URL or "
                        f"{DEFAULT_API_URL})")
    parser.add_argument("--key-id", default=None, help="application key id (default: $YD_API_KEY_ID)")
    parser.add_argument("--key-secret", default=None,
                        help="application key secret (default: $YD_API_KEY_SECRET, which keeps it out of ps)")
    parser.add_argument("--force", action="store_true", help=f"overwrite an existing {IMPORTS_FILE}")


def run(args: argparse.Namespace) -> int:
    from raydog.yellowdog import Platform, PlatformError

    module = args.module
    if module is not None and not re.fullmatch(r"module\.[A-Za-z_][A-Za-z0-9_-]*(\[[^\]]+\])?", module):
        return _fail(f'--module must be a module address such as module.raydog, not "{module}"')
    url = args.api_url or os.environ.get("YD_API_URL") or DEFAULT_API_URL
    key_id = args.key_id or os.environ.get("YD_API_KEY_ID")
    key_secret = args.key_secret or os.environ.get("YD_API_KEY_SECRET")
    if not key_id or not key_secret:
        return _fail("no application key: set YD_API_KEY_ID and YD_API_KEY_SECRET (or --key-id / --key-secret)")
    directory = args.dir
    target = directory / IMPORTS_FILE
    if target.exists() and not args.force:
        return _fail(f"{target} exists; use --force to overwrite it")
    try:
        state = SavedState.load(args.state_file)
        platform = Platform.connect(url, key_id, key_secret)
        try:
            inventory = take_inventory(platform, state)
            module_tf = None
            if module is not None and inventory.cluster is not None:
                from raydog.import_module import render_module_call

                module_tf = render_module_call(platform, inventory, module)
        finally:
            platform.close()
    except ImportStateError as exc:
        return _fail(str(exc))
    except PlatformError as exc:
        return _fail(f"YellowDog at {url}: {exc}")

    for skipped_id, why in inventory.skipped:
        print(f"skipped {skipped_id}: {why}")
    if inventory.cluster is None:
        return _fail(f"nothing to import: RayDog cluster {state.cluster_name!r} is gone")
    directory.mkdir(parents=True, exist_ok=True)
    target.write_text(render_imports(inventory, module, args.state_file.name))
    written = [target]
    if not declares_provider(directory):
        (directory / VERSIONS_FILE).write_text(VERSIONS_TF)
        written.append(directory / VERSIONS_FILE)
    if module_tf is not None:
        (directory / "cluster.tf").write_text(module_tf)
        written.append(directory / "cluster.tf")
    for found in [inventory.cluster, *inventory.nodes]:
        print(f"import {address(found, module):<45} {found.import_id}  ({found.yellowdog_name}; {found.detail})")
    print(f"wrote {', '.join(str(p) for p in written)}")
    if module is None:
        print(f"next: cd {directory} && terraform init && terraform plan -generate-config-out=generated.tf "
              "&& terraform apply")
    else:
        print(f"next: cd {directory} && terraform init && terraform plan && terraform apply")
    return 0


def _fail(message: str) -> int:
    print(f"raydog import-state: {message}", file=sys.stderr)
    return 1
