# RayDog's usage example on the real YellowDog platform: a Ray head and two worker pools
# of two nodes each, every node set up at boot by the default userdata (uv, Python and
# Ray installed on a plain Ubuntu image), with a cluster lifetime as a safety net.

terraform {
  required_version = ">= 1.9"

  required_providers {
    raydog = {
      source  = "yellowdog/raydog"
      version = "~> 0.1"
    }
  }
}

# The application key comes from YD_API_KEY_ID and YD_API_KEY_SECRET (and the URL, if not
# https://api.yellowdog.ai, from YD_API_URL): nothing secret lives in the configuration.
provider "raydog" {}

# The built-in node setup: YellowDog agent, uv, Python and Ray in /opt/yellowdog/agent/venv,
# and the SSH key `raydog tunnel` uses (RayDog's node-setup-userdata.sh).
data "raydog_node_script" "userdata" {
  template = "userdata"
  vars = {
    ray_version    = var.ray_version
    ssh_public_key = var.ssh_public_key
  }
}

module "ray" {
  source = "../../terraform/modules/raydog"

  name      = var.cluster_name
  namespace = var.namespace
  tag       = var.tag
  lifetime  = var.lifetime

  head = {
    compute_requirement_template_id = var.head_template_id
    images_id                       = var.images_id
    userdata                        = data.raydog_node_script.userdata.content
    metrics_enabled                 = true
    create_timeout                  = "10m"
  }

  worker_pools = {
    for index in range(var.worker_pool_count) : "workers-${index + 1}" => {
      compute_requirement_template_id = var.worker_template_id
      node_count                      = var.nodes_per_pool
      images_id                       = var.images_id
      userdata                        = data.raydog_node_script.userdata.content
      metrics_enabled                 = true
    }
  }
}
