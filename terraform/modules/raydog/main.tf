# One Ray cluster on YellowDog: the work requirement, an optional observability node, the
# head, and one raydog_worker_pool per entry of var.worker_pools.

locals {
  observability_enabled = var.observability != null

  # The script each node runs: yours, or the built-in template rendered through
  # raydog_node_script. The hashes below name pools after it.
  head_script = var.head.script != null ? var.head.script : data.raydog_node_script.head[0].content
  observability_script = !local.observability_enabled ? null : (
    try(var.observability.script, null) != null ? var.observability.script : data.raydog_node_script.observability[0].content
  )
  worker_scripts = {
    for key, pool in var.worker_pools :
    key => pool.script != null ? pool.script : data.raydog_node_script.worker[key].content
  }
  # What the resources are given: null for the built-in template with its defaults, so the
  # plan shows its script_sha256 once per node instead of the whole script per pool.
  head_script_argument = var.head.script == null && var.head.script_vars == null ? null : local.head_script
  observability_script_argument = !local.observability_enabled ? null : (
    try(var.observability.script, null) == null && try(var.observability.script_vars, null) == null ? null : local.observability_script
  )
  worker_script_arguments = {
    for key, pool in var.worker_pools :
    key => pool.script == null && pool.script_vars == null ? null : local.worker_scripts[key]
  }

  observability_host = local.observability_enabled ? raydog_observability.this[0].private_ip : null

  # The observability node, the head and every worker pool depend on the cluster only, so
  # they all start provisioning at once (docs/guides/cluster-startup.md). A node learns the
  # head's and the observability node's addresses from the platform, naming them by their
  # name_suffix, which is known at plan time: a new head shows in the plan as a new
  # head_name_suffix on every pool, whose nodes are re-tasked in place.
  #
  # Nodes are replaced create-before-destroy. YellowDog pool names must differ while old and
  # new exist, so each pool's name carries a short hash of every input that forces its
  # replacement. The hash only names the pool; it reveals nothing of userdata.
  observability_hash = !local.observability_enabled ? null : substr(nonsensitive(sha256(jsonencode({
    cluster_id                      = raydog_cluster.this.id
    script                          = local.observability_script
    compute_requirement_template_id = var.observability.compute_requirement_template_id
    images_id                       = var.observability.images_id
    userdata                        = var.observability.userdata
    instance_tags                   = var.observability.instance_tags
    metrics_enabled                 = var.observability.metrics_enabled
    environment                     = var.observability.environment
    lifetime                        = var.lifetime
  }))), 0, 6)
  head_hash = substr(nonsensitive(sha256(jsonencode({
    cluster_id                      = raydog_cluster.this.id
    script                          = local.head_script
    compute_requirement_template_id = var.head.compute_requirement_template_id
    images_id                       = var.head.images_id
    userdata                        = var.head.userdata
    instance_tags                   = var.head.instance_tags
    metrics_enabled                 = var.head.metrics_enabled
    environment                     = var.head.environment
    lifetime                        = var.lifetime
    observability                   = local.observability_name_suffix
    observability_host              = var.head.observability_host
    # A new autoscaler key replaces the head too (the secret enters only through its hash).
    autoscaler_key = var.autoscaler_key == null ? null : [var.autoscaler_key.id, sha256(var.autoscaler_key.secret), var.autoscaler_key.api_url]
  }))), 0, 6)
  worker_pool_hashes = {
    for key, pool in var.worker_pools :
    key => substr(nonsensitive(sha256(jsonencode({
      cluster_id                      = raydog_cluster.this.id
      script                          = local.worker_scripts[key]
      compute_requirement_template_id = pool.compute_requirement_template_id
      images_id                       = pool.images_id
      userdata                        = pool.userdata
      instance_tags                   = pool.instance_tags
      metrics_enabled                 = pool.metrics_enabled
      environment                     = pool.environment
      lifetime                        = var.lifetime
      head_private_ip                 = pool.head_private_ip
      observability_host              = pool.observability_host
    }))), 0, 6)
  }
  # "" keeps the plain <cluster>-obs / <cluster>-head name (nodes adopted by raydog import-state).
  observability_name_suffix = !local.observability_enabled ? null : (
    var.observability.name_suffix == null ? local.observability_hash : var.observability.name_suffix
  )
  head_name_suffix = var.head.name_suffix == null ? local.head_hash : var.head.name_suffix
  # A pool adopted from RayDog keeps the addresses its nodes were started with (raydog
  # import-state writes them as literals); the others learn them from the platform. Never a
  # reference: one to the head would make every pool wait for it in Terraform's graph.
  pools_learning_addresses = {
    for key, pool in var.worker_pools : key => pool.head_private_ip == null && pool.observability_host == null
  }
  # A pool adopted from RayDog (raydog import-state) keeps its own name.
  worker_pool_names = {
    for key, hash in local.worker_pool_hashes :
    key => var.worker_pools[key].name != null ? var.worker_pools[key].name : "${key}-${hash}"
  }
}

data "raydog_node_script" "head" {
  count = var.head.script == null ? 1 : 0

  template = "head"
  vars     = var.head.script_vars
}

data "raydog_node_script" "observability" {
  count = local.observability_enabled && try(var.observability.script == null, false) ? 1 : 0

  template = "observability"
  vars     = var.observability.script_vars
}

data "raydog_node_script" "worker" {
  # Keys only: a sensitive userdata in a pool must not make the for_each value sensitive.
  for_each = toset([for key in keys(var.worker_pools) : key if var.worker_pools[key].script == null])

  template = "worker"
  vars     = var.worker_pools[each.key].script_vars
}

resource "raydog_cluster" "this" {
  name      = var.name
  namespace = var.namespace
  tag       = var.tag
}

resource "raydog_observability" "this" {
  count = local.observability_enabled ? 1 : 0

  cluster_id                      = raydog_cluster.this.id
  cluster_name                    = raydog_cluster.this.name
  namespace                       = raydog_cluster.this.namespace
  compute_requirement_template_id = var.observability.compute_requirement_template_id
  images_id                       = var.observability.images_id
  userdata                        = var.observability.userdata
  instance_tags                   = var.observability.instance_tags
  metrics_enabled                 = var.observability.metrics_enabled
  environment                     = var.observability.environment
  lifetime                        = var.lifetime
  start_script                    = local.observability_script_argument
  name_suffix                     = local.observability_name_suffix == "" ? null : local.observability_name_suffix

  lifecycle {
    create_before_destroy = true
  }

  timeouts {
    create = var.create_timeout
  }
}

resource "raydog_head" "this" {
  cluster_id                      = raydog_cluster.this.id
  cluster_name                    = raydog_cluster.this.name
  namespace                       = raydog_cluster.this.namespace
  compute_requirement_template_id = var.head.compute_requirement_template_id
  images_id                       = var.head.images_id
  userdata                        = var.head.userdata
  instance_tags                   = var.head.instance_tags
  metrics_enabled                 = var.head.metrics_enabled
  environment                     = var.head.environment
  lifetime                        = var.lifetime
  ray_start_script                = local.head_script_argument
  # An adopted head keeps the address it was started with (raydog import-state); others learn it.
  observability_host        = var.head.observability_host
  observability_name_suffix = var.head.observability_host == null ? local.observability_name_suffix : null
  readiness                 = var.head.readiness
  # nonsensitive on the id and URL only: the secret stays sensitive.
  autoscaler_application_key_id     = var.autoscaler_key == null ? null : nonsensitive(var.autoscaler_key.id)
  autoscaler_application_key_secret = var.autoscaler_key == null ? null : var.autoscaler_key.secret
  autoscaler_api_url                = var.autoscaler_key == null ? null : nonsensitive(var.autoscaler_key.api_url)
  # "" keeps the plain <cluster>-head name (a head adopted by raydog import-state).
  name_suffix = local.head_name_suffix == "" ? null : local.head_name_suffix

  lifecycle {
    create_before_destroy = true
  }

  timeouts {
    create = var.head.create_timeout != null ? var.head.create_timeout : var.create_timeout
  }
}

resource "raydog_worker_pool" "this" {
  for_each = toset(keys(var.worker_pools))

  cluster_id                      = raydog_cluster.this.id
  cluster_name                    = raydog_cluster.this.name
  namespace                       = raydog_cluster.this.namespace
  name                            = local.worker_pool_names[each.key]
  compute_requirement_template_id = var.worker_pools[each.key].compute_requirement_template_id
  node_count                      = var.worker_pools[each.key].autoscaling == null ? coalesce(var.worker_pools[each.key].node_count, 1) : var.worker_pools[each.key].node_count
  images_id                       = var.worker_pools[each.key].images_id
  userdata                        = var.worker_pools[each.key].userdata
  instance_tags                   = var.worker_pools[each.key].instance_tags
  metrics_enabled                 = var.worker_pools[each.key].metrics_enabled
  environment                     = var.worker_pools[each.key].environment
  wait_for_nodes                  = var.worker_pools[each.key].wait_for_nodes
  readiness                       = var.worker_pools[each.key].readiness
  drain_timeout                   = var.worker_pools[each.key].drain_timeout
  ray_gcs_address                 = var.worker_pools[each.key].ray_gcs_address
  lifetime                        = var.lifetime
  task_script                     = local.worker_script_arguments[each.key]
  # Literal addresses (a pool adopted by raydog import-state) or learnt from the platform.
  head_private_ip           = var.worker_pools[each.key].head_private_ip
  head_name_suffix          = var.worker_pools[each.key].head_private_ip == null ? local.head_name_suffix : null
  observability_host        = var.worker_pools[each.key].observability_host
  observability_name_suffix = local.pools_learning_addresses[each.key] ? local.observability_name_suffix : null

  dynamic "autoscaling" {
    for_each = var.worker_pools[each.key].autoscaling == null ? [] : [var.worker_pools[each.key].autoscaling]
    content {
      min_nodes    = autoscaling.value.min_nodes
      max_nodes    = autoscaling.value.max_nodes
      idle_timeout = autoscaling.value.idle_timeout
    }
  }

  timeouts {
    create = var.create_timeout
    update = var.create_timeout
  }

  lifecycle {
    create_before_destroy = true
  }
}
