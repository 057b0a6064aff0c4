"""The Terraform configuration of a cluster: a call of the raydog module, as JSON.

Written to ``main.tf.json`` in the cluster's working directory on every state-changing
call; never edited by hand. Values are literal: in Terraform's JSON syntax every string is a
template, so ``${`` and ``%{`` (common in bash scripts) are escaped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .spec import ClusterSpec, NodeSpec, WorkerNodeWorkerPool, duration

CONFIG_FILE = "main.tf.json"
MODULE_NAME = "raydog"
MODULE_SOURCE = "./modules/raydog"
PROVIDER_SOURCE = "yellowdog/raydog"
PROVIDER_VERSION = "~> 0.1"
# Root outputs the builder reads after an apply (ids of nodes come from the state).
OUTPUTS = ("cluster_id", "head_id", "head_private_ip", "head_public_ip", "client_address", "dashboard_url",
           "worker_pool_ids", "observability_private_ip")


def literal(value: Any) -> Any:
    """``value`` with every string escaped so Terraform reads it as written."""
    if isinstance(value, str):
        return value.replace("${", "$${").replace("%{", "%%{")
    if isinstance(value, dict):
        return {literal(k): literal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [literal(v) for v in value]
    return value


def terraform_block(backend: dict | None = None) -> dict:
    """``terraform { required_providers, backend }``: the provider, and where the state lives."""
    block: dict = {"required_providers": {"raydog": {"source": PROVIDER_SOURCE, "version": PROVIDER_VERSION}}}
    if backend:
        block["backend"] = literal(backend)
    return block


def provider_block(api_url: str) -> dict:
    # The key id and secret reach Terraform as YD_API_KEY_ID / YD_API_KEY_SECRET, never in a file.
    return {"raydog": {"api_url": literal(api_url)}}


def render(spec: ClusterSpec, backend: dict | None = None) -> dict:
    """The whole configuration of ``spec`` as a JSON-syntax document."""
    inputs: dict[str, Any] = {
        "source": MODULE_SOURCE,
        "name": spec.name,
        "namespace": spec.namespace,
        "tag": spec.tag,
        "lifetime": duration(spec.lifetime) if spec.lifetime else None,
        # RayDog had no cap on a cluster's size.
        "max_nodes": max(100, spec.node_count),
        "head": _node(spec.head),
        "observability": _node(spec.observability) if spec.observability else None,
        "worker_pools": {key: _pool(pool) for key, pool in spec.worker_pools.items()},
    }
    if spec.build_timeout is not None:
        # RayDog's head_node_build_timeout bounded the wait for the observability node and the head.
        inputs["create_timeout"] = duration(spec.build_timeout)
    module = {"source": MODULE_SOURCE, **{k: literal(v) for k, v in inputs.items() if v is not None and k != "source"}}
    return {
        "terraform": terraform_block(backend),
        "provider": provider_block(spec.api_url),
        "module": {MODULE_NAME: module},
        "output": {name: {"value": f"${{module.{MODULE_NAME}.{name}}}"} for name in OUTPUTS},
    }


def write(directory: Path, document: dict) -> Path:
    path = directory / CONFIG_FILE
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


def _node(node: NodeSpec) -> dict:
    return _without_none({
        "compute_requirement_template_id": node.compute_requirement_template_id,
        "script": node.script or None,  # None: the module's built-in template
        "images_id": node.images_id,
        "userdata": node.userdata,
        "instance_tags": node.instance_tags,
        "metrics_enabled": node.metrics_enabled,
    })


def _pool(pool: WorkerNodeWorkerPool) -> dict:
    return _without_none({
        "compute_requirement_template_id": pool.compute_requirement_template_id,
        "node_count": pool.node_count,
        "script": pool.task_script or None,
        "images_id": pool.images_id,
        "userdata": pool.userdata,
        "instance_tags": pool.instance_tags,
        "metrics_enabled": pool.metrics_enabled,
    })


def _without_none(values: dict) -> dict:
    return {k: v for k, v in values.items() if v is not None}
