terraform {
  required_providers {
    raydog = { source = "yellowdog/raydog" }
  }
}
variable "cpus" {
  type    = string
  default = "0"
}
module "ray" {
  source    = "../../terraform/modules/raydog"
  name      = "swap"
  namespace = "raydog-demo"
  head = {
    template_id = "sandbox/ray-head"
    script_vars = { num_cpus = var.cpus }
  }
  worker_pools = {
    alpha = { template_id = "sandbox/ray-worker", wait_for_nodes = true }
  }
}
output "ids" { value = [module.ray.head_id, module.ray.worker_pool_ids] }
