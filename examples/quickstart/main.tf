# Quickstart: a Ray cluster (head + two worker pools of one node each) on the local
# YellowDog sandbox. `make demo` runs this end to end; see README.md here to run it by hand.

terraform {
  required_version = ">= 1.5"
  required_providers {
    raydog = {
      source  = "yellowdog/raydog"
      version = "~> 0.1"
    }
  }
}

# Credentials and URL come from YD_API_URL, YD_API_KEY_ID and YD_API_KEY_SECRET.
provider "raydog" {}

variable "cluster_name" {
  description = "Name of the cluster (the work requirement and the prefix of every pool)."
  type        = string
  default     = "quickstart"
}

variable "namespace" {
  description = "YellowDog namespace to create the cluster in."
  type        = string
  default     = "raydog-demo"
}

data "raydog_node_script" "head" {
  template = "head"
}

data "raydog_node_script" "worker" {
  template = "worker"
  vars = {
    num_cpus = "1"
  }
}

resource "raydog_cluster" "this" {
  name      = var.cluster_name
  namespace = var.namespace
}

resource "raydog_head" "this" {
  cluster_id                      = raydog_cluster.this.id
  cluster_name                    = raydog_cluster.this.name
  compute_requirement_template_id = "sandbox/ray-head"
  ray_start_script                = data.raydog_node_script.head.content

  timeouts {
    create = "5m"
  }
}

resource "raydog_worker_pool" "pool" {
  for_each = toset(["alpha", "beta"])

  cluster_id                      = raydog_cluster.this.id
  cluster_name                    = raydog_cluster.this.name
  name                            = each.key
  compute_requirement_template_id = "sandbox/ray-worker"
  head_private_ip                 = raydog_head.this.private_ip
  task_script                     = data.raydog_node_script.worker.content
  node_count                      = 1
  wait_for_nodes                  = true
}

output "ray_address" {
  description = "Ray GCS address of the head (for `ray start --address`)."
  value       = raydog_head.this.ray_address
}

output "client_address" {
  description = "Ray client address (`ray.init(address=...)`)."
  value       = raydog_head.this.client_address
}

output "dashboard_url" {
  description = "Ray dashboard URL."
  value       = raydog_head.this.dashboard_url
}

output "worker_pool_ids" {
  description = "Worker pool ids by pool name."
  value       = { for name, pool in raydog_worker_pool.pool : name => pool.id }
}
