"""The root modules the bench applies: a RayDog cluster, and the same graph made of terraform_data.

Both read ``node_count`` from terraform.tfvars, so "change node_count on every pool" is one
rewrite of that file and the configuration itself never changes between commands.
"""

from __future__ import annotations

from pathlib import Path

from harness.terraform import PROVIDER_BLOCK

NAMESPACE = "bench"
CLUSTER = "bench"


def pool_names(pools: int) -> list[str]:
    return [f"p{index:03d}" for index in range(pools)]


def _pools_local(pools: int) -> str:
    return "[" + ", ".join(f'"{name}"' for name in pool_names(pools)) + "]"


def _cluster_root(pools: int) -> str:
    """The pool names, the provider and the cluster: what both RayDog graphs start with."""
    return f"""locals {{
  pools = {_pools_local(pools)}
}}

provider "raydog" {{}}

resource "raydog_cluster" "c" {{
  name      = "{CLUSTER}"
  namespace = "{NAMESPACE}"
}}
"""


def raydog_cluster(pools: int, head_timeout: str = "5m") -> str:
    """raydog_cluster + raydog_head + ``pools`` raydog_worker_pool (for_each), each of var.node_count nodes."""
    worker_pools = (
        """
resource "raydog_worker_pool" "w" {
  for_each = toset(local.pools)

  cluster_id                      = raydog_cluster.c.id
  cluster_name                    = raydog_cluster.c.name
  name                            = each.key
  compute_requirement_template_id = "sandbox/ray-worker"
  head_private_ip                 = raydog_head.h.private_ip
  node_count                      = var.node_count
  wait_for_nodes                  = true
}
"""
        if pools
        else ""
    )
    return (
        PROVIDER_BLOCK
        + f"""
variable "node_count" {{
  description = "Nodes in every worker pool."
  type        = number
  default     = 10
}}

{_cluster_root(pools)}
resource "raydog_head" "h" {{
  cluster_id                      = raydog_cluster.c.id
  cluster_name                    = raydog_cluster.c.name
  compute_requirement_template_id = "sandbox/ray-head"

  timeouts {{
    create = "{head_timeout}"
  }}
}}
{worker_pools}"""
    )


def floor_graph(pools: int) -> str:
    """The same shape with terraform_data: cluster -> head -> pools, node_count in each pool's input."""
    worker_pools = (
        """
resource "terraform_data" "pool" {
  for_each = toset(local.pools)

  input = {
    cluster_id      = terraform_data.cluster.id
    name            = each.key
    head_private_ip = terraform_data.head.output.private_ip
    node_count      = var.node_count
  }
}
"""
        if pools
        else ""
    )
    return f"""
variable "node_count" {{
  description = "Nodes in every worker pool."
  type        = number
  default     = 10
}}

locals {{
  pools = {_pools_local(pools)}
}}

resource "terraform_data" "cluster" {{
  input = {{
    name      = "{CLUSTER}"
    namespace = "{NAMESPACE}"
  }}
}}

resource "terraform_data" "head" {{
  input = {{
    cluster_id = terraform_data.cluster.id
    private_ip = "10.0.0.1"
  }}
}}
{worker_pools}"""


def set_node_count(workdir: Path, node_count: int) -> None:
    (workdir / "terraform.tfvars").write_text(f"node_count = {node_count}\n")


def versus_cluster(pools: int, nodes: int) -> str:
    """The side-by-side topology: cluster + observability + head + ``pools`` pools of ``nodes`` nodes,
    every node depending on the cluster only (as the raydog module builds it), no wait for workers
    (RayDog's build() does not wait for them either)."""
    return (
        PROVIDER_BLOCK
        + f"""
{_cluster_root(pools)}
resource "raydog_observability" "o" {{
  cluster_id                      = raydog_cluster.c.id
  cluster_name                    = raydog_cluster.c.name
  compute_requirement_template_id = "sandbox/ray-observability"
}}

resource "raydog_head" "h" {{
  cluster_id                      = raydog_cluster.c.id
  cluster_name                    = raydog_cluster.c.name
  compute_requirement_template_id = "sandbox/ray-head"
  observability_name_suffix       = ""
}}

resource "raydog_worker_pool" "w" {{
  for_each = toset(local.pools)

  cluster_id                      = raydog_cluster.c.id
  cluster_name                    = raydog_cluster.c.name
  name                            = each.key
  compute_requirement_template_id = "sandbox/ray-worker"
  observability_name_suffix       = ""
  node_count                      = {nodes}
}}
"""
    )


def growth_floor(pools: int) -> str:
    """The versus shape in terraform_data: cluster -> (observability, head, pools) side by side."""
    return f"""
locals {{
  pools = {_pools_local(pools)}
}}

resource "terraform_data" "cluster" {{
  input = "{CLUSTER}"
}}

resource "terraform_data" "node" {{
  for_each = toset(concat(["head", "obs"], local.pools))

  input = {{
    cluster_id = terraform_data.cluster.id
    name       = each.key
    node_count = 2
  }}
}}
"""
