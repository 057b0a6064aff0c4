# Quickstart: a Ray cluster (a head and two worker pools of one node each) on the local
# YellowDog sandbox, built with the raydog module. `make demo` runs it end to end against
# the sandbox in exec mode; README.md here says how to run it by hand.

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

module "ray" {
  source = "../../terraform/modules/raydog"

  name      = var.cluster_name
  namespace = var.namespace

  head = {
    compute_requirement_template_id = "sandbox/ray-head"
    create_timeout                  = "5m"
  }

  worker_pools = {
    alpha = {
      compute_requirement_template_id = "sandbox/ray-worker"
      node_count                      = 1
      script_vars                     = { num_cpus = "1" }
      wait_for_nodes                  = true
    }
    beta = {
      compute_requirement_template_id = "sandbox/ray-worker"
      node_count                      = 1
      script_vars                     = { num_cpus = "1" }
      wait_for_nodes                  = true
    }
  }
}

output "ray_address" {
  description = "Ray GCS address of the head (for `ray start --address`)."
  value       = module.ray.ray_address
}

output "client_address" {
  description = "Ray client address (`ray.init(address=...)`)."
  value       = module.ray.client_address
}

output "dashboard_url" {
  description = "Ray dashboard URL."
  value       = module.ray.dashboard_url
}

output "worker_pool_ids" {
  description = "Worker pool ids by pool name."
  value       = module.ray.worker_pool_ids
}

output "head_private_ip" {
  description = "Private IP address of the head node."
  value       = module.ray.head_private_ip
}

output "head_public_ip" {
  description = "Public IP address of the head node."
  value       = module.ray.head_public_ip
}
