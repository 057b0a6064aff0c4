"""The one builder of test configurations: raydog blocks written from Python values.

    cluster_config("lc", {"alpha": 2}, with_observability=True, head_timeout="2m", wait_for_nodes=True)

is a provider block, ``raydog_cluster.c``, ``raydog_observability.obs``, ``raydog_head.h``
and one ``raydog_worker_pool.<name>`` per entry of the pools map (name -> node_count), wired
to each other the way users wire them. The block builders (``provider``, ``cluster``,
``head``, ``observability``, ``worker_pool``, ``node_script``, ``output``) take any
attribute as a keyword: a Python value becomes its HCL literal, an ``Expr`` is written as
it is (a reference, a function call), ``None`` leaves the attribute out, and ``timeouts``
becomes a nested block. Attributes are written ``name = value``, one per line, so a test
can find an attribute's line in the text (Terraform's diagnostics point at it).

``Terraform.write`` adds the ``required_providers`` block (harness/terraform.py).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

HEAD_TEMPLATE = "sandbox/ray-head"
WORKER_TEMPLATE = "sandbox/ray-worker"
OBSERVABILITY_TEMPLATE = "sandbox/ray-observability"
NAMESPACE = "tests"

NESTED_BLOCKS = frozenset({"timeouts", "autoscaling"})


@dataclass(frozen=True)
class Expr:
    """An HCL expression written as it is: ``Expr("raydog_head.h.private_ip")``."""

    text: str


def literal(value: Any) -> str:
    """``value`` as an HCL expression: strings quoted (templates escaped), maps as objects."""
    if isinstance(value, Expr):
        return value.text
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, Mapping):
        items = "".join(f"    {json.dumps(str(k))} = {literal(v)}\n" for k, v in value.items())
        return "{\n" + items + "  }"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    # A quoted HCL string: JSON escapes, plus HCL's own template sequences escaped.
    return json.dumps(value).replace("${", "$${").replace("%{", "%%{")


def block(kind: str, labels: tuple[str, ...], attrs: Mapping[str, Any]) -> str:
    """``kind "label" ... { attrs }``; ``None`` leaves an attribute out, a timeouts map nests."""
    header = " ".join([kind, *(f'"{label}"' for label in labels)])
    lines = [header + " {"]
    for key, value in attrs.items():
        if value is None:
            continue
        if key in NESTED_BLOCKS:
            lines += [f"  {key} {{", *(f"    {k} = {literal(v)}" for k, v in value.items()), "  }"]
        else:
            lines.append(f"  {key} = {literal(value)}")
    if len(lines) == 1:
        return header + " {}\n"
    return "\n".join([*lines, "}", ""])


def provider(**attrs: Any) -> str:
    """The ``provider "raydog"`` block (empty: the YD_* variables configure it)."""
    return block("provider", ("raydog",), attrs)


def cluster(name: str, *, label: str = "c", namespace: str = NAMESPACE, **attrs: Any) -> str:
    return block("resource", ("raydog_cluster", label), {"name": name, "namespace": namespace, **attrs})


def _node(cluster_label: str, template: str, attrs: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "cluster_id": Expr(f"raydog_cluster.{cluster_label}.id"),
        "cluster_name": Expr(f"raydog_cluster.{cluster_label}.name"),
        "compute_requirement_template_id": template,
        **attrs,
    }


def head(*, label: str = "h", cluster: str = "c", **attrs: Any) -> str:
    """A raydog_head in ``raydog_cluster.<cluster>``."""
    return block("resource", ("raydog_head", label), _node(cluster, HEAD_TEMPLATE, attrs))


def observability(*, label: str = "obs", cluster: str = "c", **attrs: Any) -> str:
    return block("resource", ("raydog_observability", label), _node(cluster, OBSERVABILITY_TEMPLATE, attrs))


def worker_pool(name: str, node_count: int = 1, *, label: str | None = None, cluster: str = "c",
                head: str = "h", **attrs: Any) -> str:
    """A raydog_worker_pool named ``name`` (labelled so unless ``label``) that joins ``raydog_head.<head>``."""
    defaults = {"name": name, "head_private_ip": Expr(f"raydog_head.{head}.private_ip"), "node_count": node_count}
    return block("resource", ("raydog_worker_pool", label or name),
                 _node(cluster, WORKER_TEMPLATE, {**defaults, **attrs}))


def node_script(label: str, **attrs: Any) -> str:
    return block("data", ("raydog_node_script", label), attrs)


def output(name: str, value: Any, description: str | None = None) -> str:
    return block("output", (name,), {"description": description, "value": value})


def cluster_config(
    name: str,
    pools: Mapping[str, int] | None = None,
    *,
    with_observability: bool = False,
    wait_for_nodes: bool | None = None,
    head_timeout: str | None = None,
    provider_attrs: Mapping[str, Any] | None = None,
    observability_attrs: Mapping[str, Any] | None = None,
    head_attrs: Mapping[str, Any] | None = None,
    pool_attrs: Mapping[str, Any] | None = None,
    per_pool: Mapping[str, Mapping[str, Any]] | None = None,
) -> str:
    """A whole cluster: provider, ``raydog_cluster.c``, (``raydog_observability.obs``),
    ``raydog_head.h`` and one ``raydog_worker_pool`` per entry of ``pools`` (name -> node_count).

    ``head_attrs`` go to the head, ``observability_attrs`` to the observability node,
    ``pool_attrs`` to every pool and ``per_pool[name]`` to one pool; they win over the
    settings here. ``wait_for_nodes`` and ``head_timeout`` (its create timeout) are left to
    the provider's defaults when None. With ``with_observability`` the head and the pools
    get the observability node's address.
    """
    shared = {"observability_host": Expr("raydog_observability.obs.private_ip")} if with_observability else {}
    timeouts = {"timeouts": {"create": head_timeout}} if head_timeout else {}
    parts = [provider(**(provider_attrs or {})), cluster(name)]
    if with_observability:
        parts.append(observability(**(observability_attrs or {})))
    parts.append(head(**{**shared, **timeouts, **(head_attrs or {})}))
    for pool, count in (pools or {}).items():
        attrs = {**shared, "wait_for_nodes": wait_for_nodes, **(pool_attrs or {}), **(per_pool or {}).get(pool, {})}
        parts.append(worker_pool(pool, count, **attrs))
    return "\n".join(parts)
