variable "cluster_name" {
  description = "Name of the cluster."
  type        = string
  default     = "scaling"
}

variable "namespace" {
  description = "YellowDog namespace of the cluster."
  type        = string
  default     = "raydog-demo"
}

variable "pools" {
  description = "Worker pools: pool name => node count. Edit a count to resize, add or remove an entry to add or remove a pool."
  type        = map(number)
  default = {
    cpu = 2
    io  = 1
  }
}

variable "max_nodes" {
  description = "Cap on the cluster's total nodes; a plan beyond it fails before anything changes."
  type        = number
  default     = 20
}

variable "head_template_id" {
  description = "Compute requirement template of the head node."
  type        = string
  default     = "sandbox/ray-head"
}

variable "worker_template_id" {
  description = "Compute requirement template of the worker nodes."
  type        = string
  default     = "sandbox/ray-worker"
}
