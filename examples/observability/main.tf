# A Ray cluster with an observability node: Prometheus and Grafana on their own node, with
# the head and every worker told where it is (OBSERVABILITY_HOST), as RayDog's
# enable_observability=True does. Runs on the sandbox as it is; set the template variables
# (and images/userdata, see examples/yellowdog) for the real platform.

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

  head = {
    compute_requirement_template_id = var.head_template_id
    # Where your browser reaches Grafana, for the Ray dashboard's embedded graphs
    # ("" = http://localhost:3000, through `raydog tunnel`).
    script_vars = { grafana_iframe_host = var.grafana_iframe_host }
  }

  observability = {
    compute_requirement_template_id = var.observability_template_id
    script_vars                     = { prometheus_retention = var.prometheus_retention }
  }

  worker_pools = {
    workers = {
      compute_requirement_template_id = var.worker_template_id
      node_count                      = var.worker_count
    }
  }
}
