"""Saved cluster state: RayDog's JSON, plus the Terraform working directory.

RayDog's ``save_state_to_json()`` wrote ``cluster_name``, ``cluster_namespace``,
``cluster_tag``, ``work_requirement_id`` and ``worker_pool_ids`` (the worker pools, then
the head, then the observability node). The builder writes the same and ``terraform_dir``;
JSON without ``terraform_dir`` is a cluster RayDog built, which the proxy adopts.
"""

from __future__ import annotations

from pathlib import Path

CLUSTER_NAME = "cluster_name"
CLUSTER_NAMESPACE = "cluster_namespace"
CLUSTER_TAG = "cluster_tag"
WORK_REQUIREMENT_ID = "work_requirement_id"
WORKER_POOL_IDS = "worker_pool_ids"
TERRAFORM_DIR = "terraform_dir"


def saved_state(name: str, namespace: str, tag: str | None, work_requirement_id: str | None,
                worker_pool_ids: list[str | None], terraform_dir: Path) -> dict:
    return {
        CLUSTER_NAME: name,
        CLUSTER_NAMESPACE: namespace,
        CLUSTER_TAG: tag,
        WORK_REQUIREMENT_ID: work_requirement_id,
        WORKER_POOL_IDS: worker_pool_ids,
        TERRAFORM_DIR: str(terraform_dir),
    }
