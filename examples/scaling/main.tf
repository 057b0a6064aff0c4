# Scaling a Ray cluster by editing numbers: each entry of var.pools is a worker pool and
# its node count. Changing a count resizes that pool in place; adding an entry adds a pool
# and removing one removes only that pool (RayDog's add_worker_pool after build() and
# remove_worker_pool_by_internal_name); the head and the other pools keep running.

terraform {
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

module "ray" {
  source = "../../terraform/modules/raydog"

  name      = var.cluster_name
  namespace = var.namespace
  max_nodes = var.max_nodes

  head = {
    compute_requirement_template_id = var.head_template_id
  }

  worker_pools = {
    for name, count in var.pools : name => {
      compute_requirement_template_id = var.worker_template_id
      node_count                      = count
      wait_for_nodes                  = true
      # Ray resources named after the pool, so jobs can target one: {"pool_<name>": 1}.
      script_vars = { resources = jsonencode({ "pool_${name}" = 1 }) }
    }
  }
}
