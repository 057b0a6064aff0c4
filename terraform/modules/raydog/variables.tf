# YellowDog's naming rule, and the Terraform-style durations the provider accepts.
# Terraform allows no shared constants in validations, so each rule is spelt out where used:
#   name:     ^[a-z](?:[a-z0-9_-]{0,58}[a-z0-9])?$
#   duration: ^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$ with a non-zero digit

variable "name" {
  description = "Cluster name: the work requirement's name and the prefix of every pool's YellowDog name (`<name>-head-<hash>`, `<name>-obs-<hash>`, `<name>-<pool>-<hash>`). Changing it replaces the cluster."
  type        = string

  validation {
    condition     = can(regex("^[a-z](?:[a-z0-9_-]{0,58}[a-z0-9])?$", var.name))
    error_message = "name must start with a lowercase letter, end with a letter or digit, and contain only lowercase letters, digits, '-' and '_' (YellowDog's naming rule)."
  }

  validation {
    condition     = length(var.name) <= 48
    error_message = "name may be at most 48 characters long, so that the head pool's YellowDog name, <name>-head-<6-character hash>, fits YellowDog's 60."
  }
}

variable "namespace" {
  description = "YellowDog namespace of the cluster and its pools. Changing it replaces the cluster."
  type        = string

  validation {
    condition     = can(regex("^[a-z](?:[a-z0-9_-]{0,58}[a-z0-9])?$", var.namespace))
    error_message = "namespace must follow YellowDog's naming rule: a lowercase letter first, a letter or digit last, only lowercase letters, digits, '-' and '_' between, at most 60 characters."
  }
}

variable "tag" {
  description = "Tag of the cluster's work requirement (null for none). Updated in place."
  type        = string
  default     = null

  validation {
    condition     = var.tag == null || can(regex("^[a-z](?:[a-z0-9_-]{0,58}[a-z0-9])?$", var.tag))
    error_message = "tag must follow YellowDog's naming rule: a lowercase letter first, a letter or digit last, only lowercase letters, digits, '-' and '_' between, at most 60 characters."
  }
}

variable "lifetime" {
  description = "How long the cluster's nodes may run, such as \"2h\" (the task timeout of every node task; RayDog's cluster_lifetime). null: until destroyed. Changing it replaces the nodes."
  type        = string
  default     = null

  validation {
    condition     = var.lifetime == null || (can(regex("^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$", var.lifetime)) && can(regex("[1-9]", var.lifetime)))
    error_message = "lifetime must be a duration longer than zero, such as \"90s\", \"45m\", \"2h\" or \"1h30m\"."
  }
}

variable "create_timeout" {
  description = "How long creating a node (head, observability, worker pool) may take, and how long growing a pool that waits for its nodes may take, such as \"20m\"."
  type        = string
  default     = "20m"

  validation {
    condition     = can(regex("^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$", var.create_timeout)) && can(regex("[1-9]", var.create_timeout))
    error_message = "create_timeout must be a duration longer than zero, such as \"90s\", \"10m\" or \"1h\"."
  }
}

variable "max_nodes" {
  description = "Cap on the cluster's total number of nodes (head + observability + every worker pool's node_count): a guard against a typo that would provision hundreds of instances."
  type        = number
  default     = 100

  validation {
    condition     = var.max_nodes >= 1 && floor(var.max_nodes) == var.max_nodes
    error_message = "max_nodes must be a whole number, at least 1."
  }
}

variable "head" {
  description = <<-EOT
    The Ray head node:
    - compute_requirement_template_id: compute requirement template (id or `namespace/name`);
    - images_id, userdata, instance_tags, metrics_enabled: as on `raydog_head`;
    - script_vars: variables of the built-in `head` script template (see docs/guides/node-scripts.md);
    - script: your own head script instead (bash text; exclusive with script_vars);
    - environment: extra environment variables of the head task;
    - create_timeout: how long the head may take to start (default: var.create_timeout);
    - name_suffix: suffix of the head pool's YellowDog name (default: a hash of the inputs
      that replace the head, so a new head is created before the old one is removed; "" for
      none, as for a head adopted with `raydog import-state`);
    - readiness: "executing" (default) or "ray": create also waits until the head's Ray GCS answers;
    - observability_host: the observability node's private IP as a literal, for a head adopted with
      `raydog import-state` (its task was started with it); unset, the head learns it from the platform.
  EOT
  type = object({
    compute_requirement_template_id = string
    images_id                       = optional(string)
    userdata                        = optional(string)
    instance_tags                   = optional(map(string))
    metrics_enabled                 = optional(bool)
    script_vars                     = optional(map(string))
    script                          = optional(string)
    environment                     = optional(map(string))
    create_timeout                  = optional(string)
    name_suffix                     = optional(string)
    readiness                       = optional(string)
    observability_host              = optional(string)
  })

  validation {
    condition     = trimspace(var.head.compute_requirement_template_id) != ""
    error_message = "head.compute_requirement_template_id must name a compute requirement template, such as \"sandbox/ray-head\"."
  }

  validation {
    condition     = var.head.script == null || var.head.script_vars == null
    error_message = "Set head.script (your own script) or head.script_vars (variables of the built-in template), not both."
  }

  validation {
    condition     = var.head.create_timeout == null || (can(regex("^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$", coalesce(var.head.create_timeout, "x"))) && can(regex("[1-9]", coalesce(var.head.create_timeout, "x"))))
    error_message = "head.create_timeout must be a duration longer than zero, such as \"5m\"."
  }

  validation {
    condition = alltrue([
      for key in keys(coalesce(var.head.environment, {})) :
      can(regex("^[A-Za-z_][A-Za-z0-9_]*$", key)) && !contains(["RAY_HEAD_IP", "RAY_HEAD_NODE_PRIVATE_IP", "OBSERVABILITY_HOST"], key)
    ])
    error_message = "head.environment keys must be bash variable names, and not RAY_HEAD_IP, RAY_HEAD_NODE_PRIVATE_IP or OBSERVABILITY_HOST (the provider sets those)."
  }
}

variable "observability" {
  description = <<-EOT
    The optional observability node (Prometheus + Grafana; RayDog's enable_observability). null: none.
    - compute_requirement_template_id: compute requirement template (id or `namespace/name`);
    - images_id, userdata, instance_tags, metrics_enabled: as on `raydog_observability`;
    - script_vars: variables of the built-in `observability` script template;
    - script: your own start script instead (exclusive with script_vars);
    - environment: extra environment variables of its task;
    - name_suffix: suffix of its pool's YellowDog name (default: a hash of its inputs; "" for none).
    When set, the head and every worker get OBSERVABILITY_HOST.
  EOT
  type = object({
    compute_requirement_template_id = string
    images_id                       = optional(string)
    userdata                        = optional(string)
    instance_tags                   = optional(map(string))
    metrics_enabled                 = optional(bool)
    script_vars                     = optional(map(string))
    script                          = optional(string)
    environment                     = optional(map(string))
    name_suffix                     = optional(string)
  })
  default = null

  validation {
    condition     = var.observability == null || try(trimspace(var.observability.compute_requirement_template_id) != "", false)
    error_message = "observability.compute_requirement_template_id must name a compute requirement template, such as \"sandbox/ray-observability\"."
  }

  validation {
    condition     = var.observability == null || try(var.observability.script == null || var.observability.script_vars == null, true)
    error_message = "Set observability.script or observability.script_vars, not both."
  }

  validation {
    condition = var.observability == null || alltrue([
      for key in keys(try(coalesce(var.observability.environment, {}), {})) :
      can(regex("^[A-Za-z_][A-Za-z0-9_]*$", key)) && !contains(["RAY_HEAD_IP", "RAY_HEAD_NODE_PRIVATE_IP", "OBSERVABILITY_HOST"], key)
    ])
    error_message = "observability.environment keys must be bash variable names, and not RAY_HEAD_IP, RAY_HEAD_NODE_PRIVATE_IP or OBSERVABILITY_HOST."
  }
}

variable "autoscaler_key" {
  description = <<-EOT
    Application key of Ray's autoscaler on the head ({ id, secret }), which sizes the pools that
    have autoscaling; null (the default) runs no autoscaler. See docs/guides/autoscaling.md for the
    least privileges it needs. api_url: the API URL as the head reaches it (default: the provider's).
  EOT
  type = object({
    id      = string
    secret  = string
    api_url = optional(string)
  })
  default   = null
  sensitive = true
}

variable "worker_pools" {
  description = <<-EOT
    Worker pools by internal name (RayDog's worker_pool_internal_name). Adding a key adds a pool,
    removing one removes it; the others keep running.
    - compute_requirement_template_id: compute requirement template (id or `namespace/name`);
    - node_count: number of worker nodes (default 1); changed in place; with autoscaling, the
      initial size (default min_nodes);
    - autoscaling: { min_nodes, max_nodes, idle_timeout } to let Ray's autoscaler on the head
      size the pool by demand (needs autoscaler_key); changing the bounds is in place;
    - images_id, userdata, instance_tags, metrics_enabled: as on `raydog_worker_pool`;
    - script_vars: variables of the built-in `worker` script template;
    - script: your own worker script instead (exclusive with script_vars);
    - environment: extra environment variables of the pool's tasks;
    - wait_for_nodes: whether apply waits until every node's task is executing (default false);
    - readiness: "executing" (default) or "ray": the waits also wait until the nodes have joined Ray;
    - drain_timeout: how long Ray may drain the nodes a lower node_count or the pool's removal
      ends (default "5m"; "0s": no drain, the newest nodes go);
    - ray_gcs_address: where the provider reaches the head's Ray GCS (default <head private IP>:6379);
    - name: the pool's name in the cluster (default: the key and a hash of the inputs that
      replace the pool; set it to keep the name of a pool adopted with `raydog import-state`);
    - head_private_ip, observability_host: the head's (and observability node's) private IP as
      literals, for a pool adopted with `raydog import-state` whose nodes were started with them;
      unset (the default), the pool learns both from the platform and provisions with the head.
    A change that replaces a pool (its script, template, image, ...) creates the new pool before
    the old one is removed, so the cluster keeps its workers through the change.
  EOT
  type = map(object({
    compute_requirement_template_id = string
    node_count                      = optional(number)
    images_id                       = optional(string)
    userdata                        = optional(string)
    instance_tags                   = optional(map(string))
    metrics_enabled                 = optional(bool)
    script_vars                     = optional(map(string))
    script                          = optional(string)
    environment                     = optional(map(string))
    wait_for_nodes                  = optional(bool, false)
    readiness                       = optional(string)
    drain_timeout                   = optional(string)
    ray_gcs_address                 = optional(string)
    name                            = optional(string)
    head_private_ip                 = optional(string)
    observability_host              = optional(string)
    autoscaling = optional(object({
      min_nodes    = number
      max_nodes    = number
      idle_timeout = optional(string)
    }))
  }))
  default = {}

  validation {
    condition     = alltrue([for key in keys(var.worker_pools) : can(regex("^[a-z](?:[a-z0-9_-]{0,58}[a-z0-9])?$", key))])
    error_message = "worker_pools keys are pool names: a lowercase letter first, a letter or digit last, only lowercase letters, digits, '-' and '_' between."
  }

  validation {
    condition     = alltrue([for key in keys(var.worker_pools) : !contains(["head", "obs"], key)])
    error_message = "worker_pools keys may not be \"head\" or \"obs\": those names belong to the cluster's own pools."
  }

  validation {
    condition     = alltrue([for key in keys(var.worker_pools) : length(key) <= 44])
    error_message = "worker_pools keys may be at most 44 characters long: the module appends a 7-character hash (<key>-<hash>) and the provider allows pool names of at most 51."
  }

  validation {
    condition     = alltrue([for key in keys(var.worker_pools) : length("${var.name}-${key}-000000") <= 60])
    error_message = "A worker pool's YellowDog name, <name>-<key>-<6 hex>, must fit YellowDog's 60 characters: shorten the cluster name or the pool key."
  }

  validation {
    condition     = alltrue([for pool in values(var.worker_pools) : pool.node_count == null || try(pool.node_count >= (pool.autoscaling == null ? 1 : 0) && floor(pool.node_count) == pool.node_count, false)])
    error_message = "Every worker pool's node_count must be a whole number, at least 1 (remove the pool to have no nodes; 0 only with autoscaling)."
  }

  validation {
    condition = alltrue([for pool in values(var.worker_pools) : pool.autoscaling == null || try(
      pool.autoscaling.min_nodes >= 0 && pool.autoscaling.max_nodes >= 1 && pool.autoscaling.min_nodes <= pool.autoscaling.max_nodes
      && floor(pool.autoscaling.min_nodes) == pool.autoscaling.min_nodes && floor(pool.autoscaling.max_nodes) == pool.autoscaling.max_nodes
    && (pool.node_count == null || (pool.node_count >= pool.autoscaling.min_nodes && pool.node_count <= pool.autoscaling.max_nodes)), false)])
    error_message = "A worker pool's autoscaling needs whole numbers 0 <= min_nodes <= max_nodes (max_nodes at least 1), and its node_count, when set, between them."
  }

  validation {
    condition     = var.autoscaler_key != null || alltrue([for pool in values(var.worker_pools) : pool.autoscaling == null])
    error_message = "A worker pool with autoscaling needs autoscaler_key: the head's autoscaler is what sizes the pool."
  }

  validation {
    condition     = sum(concat([1, var.observability == null ? 0 : 1], [for pool in values(var.worker_pools) : pool.autoscaling != null ? pool.autoscaling.max_nodes : coalesce(pool.node_count, 1)])) <= var.max_nodes
    error_message = "The cluster would have more nodes (head + observability + every pool's node_count, or max_nodes when it autoscales) than max_nodes allows; raise max_nodes if you mean it."
  }

  validation {
    condition     = alltrue([for pool in values(var.worker_pools) : trimspace(pool.compute_requirement_template_id) != ""])
    error_message = "Every worker pool needs a compute_requirement_template_id naming a compute requirement template, such as \"sandbox/ray-worker\"."
  }

  validation {
    condition     = alltrue([for pool in values(var.worker_pools) : pool.script == null || pool.script_vars == null])
    error_message = "Set a worker pool's script or its script_vars, not both."
  }

  validation {
    condition = alltrue(flatten([
      for pool in values(var.worker_pools) : [
        for key in keys(coalesce(pool.environment, {})) :
        can(regex("^[A-Za-z_][A-Za-z0-9_]*$", key)) && !contains(["RAY_HEAD_IP", "RAY_HEAD_NODE_PRIVATE_IP", "OBSERVABILITY_HOST"], key)
      ]
    ]))
    error_message = "Worker pool environment keys must be bash variable names, and not RAY_HEAD_IP, RAY_HEAD_NODE_PRIVATE_IP or OBSERVABILITY_HOST (the provider sets those)."
  }
}
