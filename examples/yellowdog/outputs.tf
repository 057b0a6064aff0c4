output "cluster_id" {
  description = "Work requirement id of the cluster."
  value       = module.ray.cluster_id
}

output "head_public_ip" {
  description = "Public IP address of the head node."
  value       = module.ray.head_public_ip
}

output "head_private_ip" {
  description = "Private IP address of the head node."
  value       = module.ray.head_private_ip
}

output "client_address" {
  description = "Ray client address inside the cluster's network; from outside, tunnel and use ray://localhost:10001."
  value       = module.ray.client_address
}

output "dashboard_url" {
  description = "Ray dashboard inside the cluster's network; from outside, tunnel and use http://localhost:8265."
  value       = module.ray.dashboard_url
}

output "worker_pool_ids" {
  description = "Worker pool ids by pool name."
  value       = module.ray.worker_pool_ids
}

output "tunnel_command" {
  description = "Command that forwards the Ray client and dashboard ports to localhost."
  value       = module.ray.tunnel_command
}
