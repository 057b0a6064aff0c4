"""Terraform configuration for the migration: written as text, read with an HCL parser.

Raw-resource mode writes ``imports.tf`` (and ``versions.tf`` if the directory has no
provider requirement); ``terraform plan -generate-config-out=generated.tf`` then writes the
resources, and ``link_generated`` replaces the literal ids and IPs there by references, so
Terraform knows what depends on what. Module mode writes ``imports.tf`` for an instance of
``terraform/modules/raydog`` plus ``cluster.tf``, the module call with the cluster's settings.

What is written is laid out as ``terraform fmt`` lays it out. Existing configuration (the
root module's provider requirement, the module's resource names, the values in
``generated.tf``) is read with python-hcl2's parser, never with patterns over the text:
``link_generated`` edits ``generated.tf`` only at the places the parser found, so its
comments and layout stay as Terraform wrote them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from raydog.migrate.inventory import (
    CLUSTER,
    HEAD,
    OBSERVABILITY,
    SCRIPT_ATTRIBUTE,
    WORKER_POOL,
    Found,
    ImportStateError,
    Inventory,
)

if TYPE_CHECKING:
    from hcl2.query.body import DocumentView
    from lark import Tree

IMPORTS_FILE = "imports.tf"
VERSIONS_FILE = "versions.tf"
MODULE_FILE = "cluster.tf"
GENERATED_FILE = "generated.tf"
PROVIDER_SOURCE = "yellowdog/raydog"

# The raydog module's resource names (terraform/modules/raydog/main.tf).
MODULE_RESOURCES = {CLUSTER: "raydog_cluster.this", HEAD: "raydog_head.this",
                    OBSERVABILITY: "raydog_observability.this[0]", WORKER_POOL: "raydog_worker_pool.this"}
_RESOURCE_TYPES = {CLUSTER: ("raydog_cluster", ""), HEAD: ("raydog_head", ""),
                   OBSERVABILITY: ("raydog_observability", "[0]"), WORKER_POOL: ("raydog_worker_pool", "")}

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


# -- addresses --------------------------------------------------------------------------------------


def resource_label(key: str) -> str:
    """A Terraform resource name for a worker pool: its internal name with '-' as '_'."""
    label = re.sub(r"[^A-Za-z0-9_]", "_", key)
    return label if re.match(r"^[A-Za-z_]", label) else f"pool_{label}"


def address(found: Found, module: str | None, module_resources: dict[str, str] = MODULE_RESOURCES) -> str:
    """Where the object goes: a raw resource (``module`` None) or the module instance ``module``."""
    if module is None:
        single = {CLUSTER: "raydog_cluster.this", HEAD: "raydog_head.this",
                  OBSERVABILITY: "raydog_observability.this"}
        return single.get(found.kind) or f"raydog_worker_pool.{resource_label(found.key)}"
    inner = module_resources[found.kind]
    return f"{module}.{inner}[{_hcl_string(found.key)}]" if found.kind == WORKER_POOL else f"{module}.{inner}"


# -- reading existing configuration ------------------------------------------------------------------


def module_resources(source: str | None, directory: Path) -> dict[str, str]:
    """The module's resource addresses, read from its files when ``source`` is a local path."""
    resources = dict(MODULE_RESOURCES)
    if not source or not source.startswith(("/", ".")):
        return resources
    module_dir = (directory / source) if not Path(source).is_absolute() else Path(source)
    declared: dict[str, str] = {}  # resource type -> the first name the module gives one
    for path in _tf_files(module_dir):
        for block in _document(path).blocks("resource"):
            type_, name = (block.name_labels + ["", ""])[:2]
            declared.setdefault(type_, name)
    for kind, (type_, suffix) in _RESOURCE_TYPES.items():
        if declared.get(type_):
            resources[kind] = f"{type_}.{declared[type_]}{suffix}"
    return resources


def declares_provider(directory: Path) -> bool:
    """Whether a ``required_providers`` block in ``directory`` already requires yellowdog/raydog."""
    for path in _tf_files(directory):
        for terraform in _document(path).blocks("terraform"):
            for required in terraform.blocks("required_providers"):
                for requirement in required.attributes():
                    value = requirement.value
                    source = _string_literal(value.get("source")) if isinstance(value, dict) else None
                    if source is not None and _is_provider_source(source):
                        return True
    return False


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
    # The literal as Terraform writes it: a quoted string with nothing interpolated.
    wanted = {(name, _hcl_string(value)): reference for (name, value), reference in references.items()}
    edits = []
    for name, start, end in _resource_attributes(_parse_tree(text, GENERATED_FILE)):
        reference = wanted.get((name, text[start:end]))
        if reference is not None:
            edits.append((start, end, reference))
    for start, end, reference in sorted(edits, reverse=True):
        text = text[:start] + reference + text[end:]
    return text, len(edits)


def _tf_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.tf")) if directory.is_dir() else []


def _document(path: Path) -> DocumentView:
    """A configuration file parsed for querying its blocks and attributes."""
    # Not hcl2.query: importing the hcl2.query package replaces that function by the package.
    from hcl2.query.body import DocumentView

    text = path.read_text(errors="replace")
    try:
        return DocumentView.parse(text)
    except Exception as exc:  # noqa: BLE001 - the parser raises lark's many error types
        raise ImportStateError(f"cannot read {path} as HCL: {_first_line(exc)}") from None


def _parse_tree(text: str, file_name: str) -> Tree:
    """The parse tree of a configuration file, with the position of every node in ``text``."""
    import hcl2

    try:
        return hcl2.parses_to_tree(text)
    except Exception as exc:  # noqa: BLE001 - the parser raises lark's many error types
        raise ImportStateError(f"cannot read {file_name} as HCL: {_first_line(exc)}") from None


def _resource_attributes(tree: Tree) -> Iterator[tuple[str, int, int]]:
    """(name, start, end) of each top-level attribute of each resource block: where its value is."""
    from lark import Tree

    def children(node: Tree, rule: str) -> list[Tree]:
        return [c for c in node.children if isinstance(c, Tree) and c.data == rule]

    for body in children(tree, "body"):
        for block in children(body, "block"):
            if _identifier(block.children[0]) != "resource":
                continue
            for block_body in children(block, "body"):
                for attribute in children(block_body, "attribute"):
                    value = attribute.children[-1]
                    yield _identifier(attribute.children[0]), value.meta.start_pos, value.meta.end_pos


def _identifier(node) -> str:
    """The name an identifier (or keyword used as a name) node holds."""
    from lark import Token

    return "".join(str(t) for t in node.scan_values(lambda v: isinstance(v, Token)))


def _string_literal(value) -> str | None:
    """A parsed value's text if it is a plain quoted string (python-hcl2 keeps the quotes)."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"' and "${" not in value:
        return value[1:-1]
    return None


def _is_provider_source(source: str) -> bool:
    """Whether a provider source address names yellowdog/raydog (on any registry host)."""
    parts = source.lower().split("/")
    return len(parts) in (2, 3) and "/".join(parts[-2:]) == PROVIDER_SOURCE


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


# -- writing --------------------------------------------------------------------------------------


def render_imports(inventory: Inventory, module: str | None, source: str,
                   resources: dict[str, str] = MODULE_RESOURCES) -> str:
    """imports.tf: one import block per live object, the skipped ids as comments."""
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
                  *_attributes([("to", address(found, module, resources)),
                                ("id", _hcl_string(found.import_id))], "  "),
                  "}"]
    if inventory.skipped:
        lines.append("")
    lines += [f"# skipped {skipped_id}: {why}" for skipped_id, why in inventory.skipped]
    return "\n".join(lines) + "\n"


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
    settings = [("name", _hcl_string(cluster["name"])), ("namespace", _hcl_string(cluster["namespace"]))]
    if cluster.get("tag"):
        settings.append(("tag", _hcl_string(cluster["tag"])))
    if lifetime:
        settings.append(("lifetime", _hcl_string(lifetime)))
    lines = [f'module "{name}" {{', *_attributes([("source", _hcl_string(source))], "  "), "",
             *_attributes(settings, "  ")]

    def node_object(found: Found, script_file: str, indent: str, extra: dict | None = None) -> list[str]:
        attrs = found.attributes
        scripts[script_file] = attrs.get(SCRIPT_ATTRIBUTE[found.kind]) or ""
        values = {"compute_requirement_template_id": attrs.get("compute_requirement_template_id"), **(extra or {}),
                  "images_id": attrs.get("images_id"), "instance_tags": attrs.get("instance_tags"),
                  "metrics_enabled": attrs.get("metrics_enabled"), "environment": attrs.get("environment")}
        body = [(key, _hcl_value(value, indent + "  ")) for key, value in values.items() if value is not None]
        body.append(("script", f'file("${{path.module}}/scripts/{script_file}")'))
        return _attributes(body, indent + "  ")

    def suffix_of(found: Found) -> dict:
        # The module names new heads <cluster>-head-<hash>; an adopted node keeps its name ("" = none).
        return {"name_suffix": found.attributes.get("name_suffix") or ""}

    def addresses_of(found: Found, names: tuple[str, ...]) -> dict:
        # The addresses its tasks were started with, as literals: the module would otherwise have the
        # node learn them from the platform, a change that replaces it (and RayDog's own pool names are
        # not the ones that lookup knows).
        return {name: found.attributes[name] for name in names if found.attributes.get(name)}

    if head is not None:
        lines += ["", "  head = {", *node_object(head, "head.sh", "  ", {
            **suffix_of(head), **addresses_of(head, ("observability_host",))}), "  }"]
    if observability is not None:
        lines += ["", "  observability = {",
                  *node_object(observability, "observability.sh", "  ", suffix_of(observability)), "  }"]
    lines += ["", "  worker_pools = {"]
    for pool in inventory.worker_pools:
        extra = {"node_count": int(pool.attributes["node_count"]),
                 # Keeps the adopted pool's name (the module otherwise names pools <key>-<hash>).
                 "name": pool.attributes.get("name"),
                 **addresses_of(pool, ("head_private_ip", "observability_host"))}
        lines += [f"    {_hcl_string(pool.key)} = {{", *node_object(pool, f"{pool.key}.sh", "    ", extra), "    }"]
    lines += ["  }", "}", ""]
    header = (f"# Written by `raydog import-state`: the RayDog cluster {cluster['name']} as a raydog module call.\n"
              "# Scripts are the ones the nodes run now, saved in scripts/.\n\n")
    return header + "\n".join(lines), scripts


def _attributes(pairs: list[tuple[str, str]], indent: str) -> list[str]:
    """``name = value`` lines laid out as terraform fmt does: the ``=`` of consecutive one-line
    attributes aligned; an attribute whose value spans lines stands alone and ends the run."""
    lines: list[str] = []
    run: list[tuple[str, str]] = []

    def end_run() -> None:
        width = max((len(name) for name, _ in run), default=0)
        lines.extend(f"{indent}{name.ljust(width)} = {value}" for name, value in run)
        run.clear()

    for name, value in pairs:
        if "\n" in value:
            end_run()
            lines.append(f"{indent}{name} = {value}")
        else:
            run.append((name, value))
    end_run()
    return lines


def _hcl_string(value: str) -> str:
    return json.dumps(value).replace("${", "$${").replace("%{", "%%{")


def _hcl_value(value, indent: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(int(value)) if float(value).is_integer() else str(value)
    if isinstance(value, dict):
        if not value:
            return "{}"
        inner = [(_hcl_string(k), _hcl_value(v, indent + "  ")) for k, v in sorted(value.items())]
        return "{\n" + "\n".join(_attributes(inner, indent + "  ")) + f"\n{indent}}}"
    return _hcl_string(str(value))
