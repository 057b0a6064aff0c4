variable "cluster_name" {
  description = "Name of the cluster."
  type        = string
  default     = "observed"
}

variable "namespace" {
  description = "YellowDog namespace of the cluster."
  type        = string
  default     = "raydog-demo"
}

variable "head_template_id" {
  description = "Compute requirement template of the head node."
  type        = string
  default     = "sandbox/ray-head"
}

variable "observability_template_id" {
  description = "Compute requirement template of the observability node."
  type        = string
  default     = "sandbox/ray-observability"
}

variable "worker_template_id" {
  description = "Compute requirement template of the worker nodes."
  type        = string
  default     = "sandbox/ray-worker"
}

variable "worker_count" {
  description = "Number of worker nodes."
  type        = number
  default     = 2
}

variable "prometheus_retention" {
  description = "How long Prometheus keeps samples."
  type        = string
  default     = "15d"
}

variable "grafana_iframe_host" {
  description = "URL your browser uses to reach Grafana from the Ray dashboard; empty means http://localhost:3000 (a tunnel)."
  type        = string
  default     = ""
}
