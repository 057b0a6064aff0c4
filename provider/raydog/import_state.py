"""``raydog import-state``: adopt a cluster that RayDog built into Terraform, from RayDog's saved state.

RayDog's builder saves a cluster as JSON (``RayDogCluster.save_state_to_json_file``)::

    {"cluster_name": ..., "cluster_namespace": ..., "cluster_tag": ...,
     "work_requirement_id": ..., "worker_pool_ids": [<worker pools>..., <head>, <observability>?]}

The file does not say which pool is which, so each id is looked up on the platform: the
pool's task group in the cluster's work requirement says what it is (RayDog's ``head-node``,
``observability-node`` and ``worker-nodes-NN``; for clusters this provider made, ``head-…``,
``observability-…`` and ``<pool>-…``). Each pool is then read exactly as ``terraform import``
will read it (the provider's own import functions), so what is written will import.

Raw-resource mode writes ``imports.tf`` (and ``versions.tf`` if the directory has no
provider requirement); ``terraform plan -generate-config-out=generated.tf`` then writes the
resources and ``terraform apply`` adopts them. ``--link`` afterwards replaces the literal ids
and IPs in ``generated.tf`` by references, so Terraform knows what depends on what.
Module mode writes ``imports.tf`` for an instance of ``terraform/modules/raydog`` plus
``cluster.tf``, the module call with the cluster's settings (scripts in ``scripts/``).
Ids that are gone (shut down, terminated, unknown) are reported and skipped.
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
from raydog.settings import DEFAULT_API_URL

IMPORTS_FILE = "imports.tf"
VERSIONS_FILE = "versions.tf"
MODULE_FILE = "cluster.tf"
GENERATED_FILE = "generated.tf"
PROVIDER_SOURCE = "yellowdog/raydog"

CLUSTER, HEAD, OBSERVABILITY, WORKER_POOL = "cluster", "head", "observability", "worker_pool"
# RayDog's fixed task group names, and the provider's "<role>-<8 hex>".
_RAYDOG_GROUPS = {"head-node": HEAD, "observability-node": OBSERVABILITY}
_PROVIDER_GROUP = re.compile(r"(?P<role>.+)-[0-9a-f]{8}")
_SCRIPT_ATTRIBUTE = {HEAD: "ray_start_script", OBSERVABILITY: "start_script", WORKER_POOL: "task_script"}


class ImportStateError(Exception):
    """The saved state or the arguments can't be used; the message says why."""


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


def take_inventory(platform, state: SavedState) -> Inventory:
    """Ask the platform what every id in the saved state is; gone ones go to ``skipped``."""
    inventory = Inventory(state)
    wr = platform.get_work_requirement(state.work_requirement_id)
    if wr is None or wr.finished:
        status = "does not exist" if wr is None else f"is {wr.status}"
        inventory.skipped.append((state.work_requirement_id, f"work requirement {status}: the cluster is gone"))
        return inventory
    inventory.cluster = Found(CLUSTER, wr.id, wr.name, f"work requirement, {wr.status}",
                              {"id": wr.id, "name": wr.name, "namespace": wr.namespace, "tag": wr.tag})
    for pool_id in state.worker_pool_ids:
        found, why = _identify_pool(platform, wr, pool_id)
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


def _identify_pool(platform, wr, pool_id: str) -> tuple[Found | None, str]:
    from tf.utils import Diagnostics

    from raydog.lifecycle.importing import import_node_pool
    from raydog.resources.worker_pool import import_worker_pool

    pool = platform.get_pool(pool_id)
    if pool is None:
        return None, "worker pool does not exist"
    if not pool.live:
        return None, f"worker pool {pool.name} is {pool.status}"
    found = platform.find_pool_group(pool.namespace or wr.namespace, pool.worker_tag or pool.name, wr.id)
    if found is None:
        return None, (f"worker pool {pool.name} has no live task group in work requirement {wr.name} "
                      f"(worker tag {pool.worker_tag})")
    group = found[1]
    role = role_of(group.name)
    import_id = f"{wr.id}/{pool.id}"
    diags = Diagnostics()
    if role == WORKER_POOL:
        attributes = import_worker_pool(platform, diags, import_id)
    else:
        suffix = names.HEAD_SUFFIX if role == HEAD else names.OBSERVABILITY_SUFFIX
        attributes = import_node_pool(platform, diags, import_id, suffix, _SCRIPT_ATTRIBUTE[role])
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


# -- addresses and files -------------------------------------------------------------------------


def resource_label(key: str) -> str:
    """A Terraform resource name for a worker pool: its internal name with '-' as '_'."""
    label = re.sub(r"[^A-Za-z0-9_]", "_", key)
    return label if re.match(r"^[A-Za-z_]", label) else f"pool_{label}"


# The raydog module's resource names (terraform/modules/raydog/main.tf).
MODULE_RESOURCES = {CLUSTER: "raydog_cluster.this", HEAD: "raydog_head.this",
                    OBSERVABILITY: "raydog_observability.this[0]", WORKER_POOL: "raydog_worker_pool.this"}


def address(found: Found, module: str | None, module_resources: dict[str, str] = MODULE_RESOURCES) -> str:
    """Where the object goes: a raw resource (``module`` None) or the module instance ``module``."""
    if module is None:
        single = {CLUSTER: "raydog_cluster.this", HEAD: "raydog_head.this",
                  OBSERVABILITY: "raydog_observability.this"}
        return single.get(found.kind) or f"raydog_worker_pool.{resource_label(found.key)}"
    inner = module_resources[found.kind]
    return f"{module}.{inner}[{_hcl_string(found.key)}]" if found.kind == WORKER_POOL else f"{module}.{inner}"


def module_resources(source: str | None, directory: Path) -> dict[str, str]:
    """The module's resource addresses, read from its files when ``source`` is a local path."""
    resources = dict(MODULE_RESOURCES)
    if not source or not source.startswith(("/", ".")):
        return resources
    module_dir = (directory / source) if not Path(source).is_absolute() else Path(source)
    text = "\n".join(p.read_text(errors="replace") for p in module_dir.glob("*.tf")) if module_dir.is_dir() else ""
    for kind, (type_, suffix) in {CLUSTER: ("raydog_cluster", ""), HEAD: ("raydog_head", ""),
                                  OBSERVABILITY: ("raydog_observability", "[0]"),
                                  WORKER_POOL: ("raydog_worker_pool", "")}.items():
        match = re.search(rf'resource\s+"{type_}"\s+"([A-Za-z_][A-Za-z0-9_-]*)"', text)
        if match:
            resources[kind] = f"{type_}.{match.group(1)}{suffix}"
    return resources


def render_imports(inventory: Inventory, module: str | None, source: str,
                   resources: dict[str, str] = MODULE_RESOURCES) -> str:
    state = inventory.state
    if module is None:
        how = ("# Next: `terraform plan -generate-config-out=generated.tf`, then `raydog import-state "
               f"{source} --dir . --link`,\n# review generated.tf, and `terraform apply`.")
    else:
        how = f"# The module call is in {MODULE_FILE}. Next: `terraform plan`, review, and `terraform apply`."
    lines = [
        (f"# Written by `raydog import-state {source}`: RayDog cluster {state.cluster_name} "
         f"in namespace {state.cluster_namespace}."),
        how,
        "# Once applied, this file can be deleted.",
    ]
    for found in [inventory.cluster, *inventory.nodes]:
        lines += ["", f"# {found.yellowdog_name}: {found.detail}", "import {",
                  f"  to = {address(found, module, resources)}", f"  id = {_hcl_string(found.import_id)}", "}"]
    if inventory.skipped:
        lines.append("")
    lines += [f"# skipped {skipped_id}: {why}" for skipped_id, why in inventory.skipped]
    return "\n".join(lines) + "\n"


VERSIONS_TF = """terraform {
  required_version = ">= 1.9"

  required_providers {
    raydog = {
      source  = "yellowdog/raydog"
      version = "~> 0.1"
    }
  }
}

# URL and credentials come from YD_API_URL, YD_API_KEY_ID and YD_API_KEY_SECRET.
provider "raydog" {}
"""


def declares_provider(directory: Path) -> bool:
    return any(PROVIDER_SOURCE in p.read_text(errors="replace") for p in directory.glob("*.tf"))


def link_generated(text: str, inventory: Inventory) -> tuple[str, int]:
    """Replace literal ids and IPs in generated configuration by references to the other resources.

    Only values equal to the adopted objects' own are replaced, so the plan stays the same;
    Terraform then orders changes correctly (a new head replaces the workers that use its IP).
    """
    references: dict[tuple[str, str], str] = {}
    if inventory.cluster is not None:
        references[("cluster_id", inventory.cluster.import_id)] = "raydog_cluster.this.id"
        references[("cluster_name", inventory.cluster.yellowdog_name)] = "raydog_cluster.this.name"
    head, observability = inventory.node(HEAD), inventory.node(OBSERVABILITY)
    if head is not None and head.attributes.get("private_ip"):
        references[("head_private_ip", head.attributes["private_ip"])] = "raydog_head.this.private_ip"
    if observability is not None and observability.attributes.get("private_ip"):
        references[("observability_host", observability.attributes["private_ip"])] = (
            "raydog_observability.this.private_ip")
    count = 0

    def replace(match: re.Match) -> str:
        nonlocal count
        reference = references.get((match.group("attr"), match.group("value")))
        if reference is None:
            return match.group(0)
        count += 1
        return f"{match.group('lead')}{reference}"

    pattern = re.compile(r'^(?P<lead>\s*(?P<attr>[a-z_]+)\s*=\s*)"(?P<value>[^"\\]*)"[ \t]*$', re.MULTILINE)
    return pattern.sub(replace, text), count


def render_module_call(inventory: Inventory, module: str, source: str) -> tuple[str, dict[str, str]]:
    """The module block (cluster.tf) for module mode, and the script files it reads."""
    name = module.split(".", 1)[1].split("[", 1)[0]
    cluster = inventory.cluster.attributes
    head, observability = inventory.node(HEAD), inventory.node(OBSERVABILITY)
    scripts: dict[str, str] = {}
    lifetimes = {n.attributes.get("lifetime") for n in inventory.nodes}
    if len(lifetimes) > 1:
        inventory.warnings.append(f"the nodes have different lifetimes ({', '.join(sorted(map(str, lifetimes)))}); "
                                  "the module gives every node one lifetime")
    lifetime = head.attributes.get("lifetime") if head else next(iter(lifetimes), None)
    lines = [f'module "{name}" {{', f"  source = {_hcl_string(source)}", "",
             f"  name      = {_hcl_string(cluster['name'])}", f"  namespace = {_hcl_string(cluster['namespace'])}"]
    if cluster.get("tag"):
        lines.append(f"  tag       = {_hcl_string(cluster['tag'])}")
    if lifetime:
        lines.append(f"  lifetime  = {_hcl_string(lifetime)}")

    def node_object(found: Found, script_file: str, indent: str, extra: dict | None = None) -> list[str]:
        attrs = found.attributes
        scripts[script_file] = attrs.get(_SCRIPT_ATTRIBUTE[found.kind]) or ""
        values = {"compute_requirement_template_id": attrs.get("compute_requirement_template_id"), **(extra or {}),
                  "images_id": attrs.get("images_id"), "instance_tags": attrs.get("instance_tags"),
                  "metrics_enabled": attrs.get("metrics_enabled"), "environment": attrs.get("environment")}
        body = [f"{indent}  {key} = {_hcl_value(value, indent + '  ')}" for key, value in values.items()
                if value is not None]
        body.append(f'{indent}  script = file("${{path.module}}/scripts/{script_file}")')
        return body

    def suffix_of(found: Found) -> dict:
        # The module names new heads <cluster>-head-<hash>; an adopted node keeps its name ("" = none).
        return {"name_suffix": found.attributes.get("name_suffix") or ""}

    if head is not None:
        lines += ["", "  head = {", *node_object(head, "head.sh", "  ", suffix_of(head)), "  }"]
    if observability is not None:
        lines += ["", "  observability = {",
                  *node_object(observability, "observability.sh", "  ", suffix_of(observability)), "  }"]
    lines += ["", "  worker_pools = {"]
    for pool in inventory.worker_pools:
        extra = {"node_count": int(pool.attributes["node_count"]),
                 # Keeps the adopted pool's name (the module otherwise names pools <key>-<hash>).
                 "name": pool.attributes.get("name")}
        lines += [f"    {_hcl_string(pool.key)} = {{", *node_object(pool, f"{pool.key}.sh", "    ", extra), "    }"]
    lines += ["  }", "}", ""]
    header = (f"# Written by `raydog import-state`: the RayDog cluster {cluster['name']} as a raydog module call.\n"
              "# Scripts are the ones the nodes run now, saved in scripts/.\n\n")
    return header + "\n".join(lines), scripts


def default_module_source(directory: Path) -> str | None:
    """The module's path relative to ``directory``, when running from a repository checkout."""
    module_dir = Path(__file__).resolve().parents[2] / "terraform" / "modules" / "raydog"
    if not (module_dir / "main.tf").is_file():
        return None
    relative = os.path.relpath(module_dir, directory.resolve())
    return relative if relative.startswith(".") else f"./{relative}"


def _hcl_string(value: str) -> str:
    return json.dumps(value).replace("${", "$${").replace("%{", "%%{")


def _hcl_value(value, indent: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(int(value)) if float(value).is_integer() else str(value)
    if isinstance(value, dict):
        inner = [f"{indent}  {_hcl_string(k)} = {_hcl_value(v, indent + '  ')}" for k, v in sorted(value.items())]
        return "{\n" + "\n".join(inner) + f"\n{indent}}}" if inner else "{}"
    return _hcl_string(str(value))


# -- the command ------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("state_file", type=Path, metavar="STATE.json", help="RayDog's saved cluster state")
    parser.add_argument("--dir", type=Path, required=True, help="the Terraform root module directory to write into")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--resources", action="store_true",
                      help="import into raw resources: raydog_cluster.this, raydog_head.this, ... (the default)")
    mode.add_argument("--module", metavar="ADDRESS", default=None,
                      help="import into an instance of the raydog module, such as module.raydog, and write its call")
    mode.add_argument("--link", action="store_true",
                      help=f"after `terraform plan -generate-config-out={GENERATED_FILE}`: replace literal ids and "
                      f"IPs in {GENERATED_FILE} by references between the resources")
    parser.add_argument("--module-source", default=None,
                        help="source of the raydog module for --module (default: this checkout's terraform/modules/"
                        "raydog, relative to --dir)")
    parser.add_argument("--api-url", default=None, help=f"YellowDog API URL (default: $YD_API_URL or {DEFAULT_API_URL})")
    parser.add_argument("--key-id", default=None, help="application key id (default: $YD_API_KEY_ID)")
    parser.add_argument("--key-secret", default=None,
                        help="application key secret (default: $YD_API_KEY_SECRET, which keeps it out of ps)")
    parser.add_argument("--force", action="store_true", help="overwrite files written before")


def run(args: argparse.Namespace) -> int:
    from raydog.redaction import redact_url
    from raydog.yellowdog import PlatformError, YellowDogClient

    module = args.module
    if module is not None and not re.fullmatch(r"module\.[A-Za-z_][A-Za-z0-9_-]*", module):
        return _fail(f'--module takes a module address such as module.raydog, not "{module}"')
    url = args.api_url or os.environ.get("YD_API_URL") or DEFAULT_API_URL
    key_id = args.key_id or os.environ.get("YD_API_KEY_ID")
    key_secret = args.key_secret or os.environ.get("YD_API_KEY_SECRET")
    if not key_id or not key_secret:
        return _fail("no application key: set YD_API_KEY_ID and YD_API_KEY_SECRET (or --key-id and --key-secret)")
    directory: Path = args.dir
    module_source = args.module_source or (default_module_source(directory) if module else None)
    if module and not module_source:
        return _fail("--module needs --module-source (where the raydog module is, such as a git URL or a path)")
    try:
        state = SavedState.load(args.state_file)
        outputs = _outputs(args, module)
        if not args.force:
            existing = [directory / name for name in outputs if (directory / name).exists()]
            if existing:
                return _fail(f"{existing[0]} exists; use --force to overwrite it")
        if args.link and not (directory / GENERATED_FILE).is_file():
            return _fail(f"{directory / GENERATED_FILE} does not exist: run `terraform plan "
                         f"-generate-config-out={GENERATED_FILE}` in {directory} first")
        platform = YellowDogClient.connect(url, key_id, key_secret)
        try:
            inventory = take_inventory(platform, state)
        finally:
            platform.close()
    except ImportStateError as exc:
        return _fail(str(exc))
    except PlatformError as exc:
        return _fail(f"YellowDog at {redact_url(url)}: {exc}")

    for skipped_id, why in inventory.skipped:
        print(f"skipped {skipped_id}: {why}")
    if inventory.cluster is None:
        return _fail(f"nothing to import: the RayDog cluster {state.cluster_name} is gone")
    if args.link:
        return _link(directory / GENERATED_FILE, inventory)
    if module is not None and inventory.node(HEAD) is None:
        return _fail("the cluster has no live head, which the raydog module needs; import it as raw resources "
                     "(without --module) instead")
    resources = module_resources(module_source, directory)
    written = _write(directory, inventory, module, module_source, args.state_file.name, resources)
    for found in [inventory.cluster, *inventory.nodes]:
        print(f"import {address(found, module, resources):<48} {found.yellowdog_name} ({found.detail})")
    print(f"wrote {', '.join(str(p) for p in written)}")
    steps = ["terraform init"]
    if module is None:
        steps += [f"terraform plan -generate-config-out={GENERATED_FILE}",
                  f"raydog import-state {args.state_file} --dir . --link"]
    steps += ["terraform plan", "terraform apply"]
    print(f"next, in {directory}: " + "; ".join(steps))
    sys.stdout.flush()
    for warning in inventory.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def _outputs(args: argparse.Namespace, module: str | None) -> list[str]:
    if args.link:
        return []
    return [IMPORTS_FILE] + ([MODULE_FILE] if module else [])


def _write(directory: Path, inventory: Inventory, module: str | None, module_source: str | None,
           source: str, resources: dict[str, str]) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    if module is not None:
        text, scripts = render_module_call(inventory, module, module_source)
        (directory / "scripts").mkdir(exist_ok=True)
        for file_name, content in scripts.items():
            (directory / "scripts" / file_name).write_text(content)
            written.append(directory / "scripts" / file_name)
        (directory / MODULE_FILE).write_text(text)
        written.append(directory / MODULE_FILE)
    (directory / IMPORTS_FILE).write_text(render_imports(inventory, module, source, resources))
    written.insert(0, directory / IMPORTS_FILE)
    if not declares_provider(directory):
        (directory / VERSIONS_FILE).write_text(VERSIONS_TF)
        written.append(directory / VERSIONS_FILE)
    _format(directory)
    return written


def _format(directory: Path) -> None:
    """``terraform fmt`` the directory (best effort: the files are valid either way)."""
    import subprocess

    from raydog.tunnel_cli import terraform_command

    try:
        subprocess.run([*terraform_command(), "fmt", "-no-color", "."], cwd=directory, capture_output=True,
                       stdin=subprocess.DEVNULL, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        pass


def _link(path: Path, inventory: Inventory) -> int:
    text, count = link_generated(path.read_text(), inventory)
    path.write_text(text)
    print(f"linked {path}: {count} literal value{'s' if count != 1 else ''} replaced by references")
    return 0


def _fail(message: str) -> int:
    print(f"raydog import-state: {message}", file=sys.stderr)
    return 1
