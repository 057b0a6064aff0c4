variable "cluster_name" {
  description = "Name of the cluster: the work requirement and the prefix of every pool name."
  type        = string
  default     = "raytest"
}

variable "namespace" {
  description = "YellowDog namespace of the cluster."
  type        = string
  default     = "ray"
}

variable "tag" {
  description = "Tag of the cluster's work requirement."
  type        = string
  default     = "my-ray-tag"
}

variable "lifetime" {
  description = "How long the nodes may run before YellowDog ends their tasks (RayDog's cluster_lifetime)."
  type        = string
  default     = "1h"
}

variable "head_template_id" {
  description = "Compute requirement template of the head node, such as \"yd-demo/yd-demo-aws-eu-west-2-split-ondemand-rayhead\"."
  type        = string
}

variable "worker_template_id" {
  description = "Compute requirement template of the worker nodes, such as \"yd-demo/yd-demo-aws-eu-west-2-split-ondemand\"."
  type        = string
}

variable "images_id" {
  description = "Image for every node: a plain Ubuntu 22.04 image the userdata sets up, such as \"ami-0fef583e486727263\" (AMD64, eu-west-2)."
  type        = string
}

variable "worker_pool_count" {
  description = "Number of worker pools."
  type        = number
  default     = 2
}

variable "nodes_per_pool" {
  description = "Number of worker nodes in each pool."
  type        = number
  default     = 2
}

variable "ray_version" {
  description = "Ray version the userdata installs on every node; match the Ray you connect with."
  type        = string
  default     = "2.60.0"
}

variable "ssh_public_key" {
  description = "Public key authorised for SSH as yd-agent on every node (for `raydog tunnel`); empty for none."
  type        = string
  default     = ""
}
