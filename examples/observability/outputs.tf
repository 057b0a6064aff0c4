output "dashboard_url" {
  description = "Ray dashboard URL (its Metrics tab embeds Grafana)."
  value       = module.ray.dashboard_url
}

output "grafana_url" {
  description = "Grafana on the observability node."
  value       = module.ray.grafana_url
}

output "prometheus_url" {
  description = "Prometheus on the observability node."
  value       = module.ray.prometheus_url
}

output "observability_private_ip" {
  description = "Private IP of the observability node (OBSERVABILITY_HOST on the head and workers)."
  value       = module.ray.observability_private_ip
}

output "tunnel_command" {
  description = "Command that forwards the Ray ports (and Grafana and Prometheus) to localhost."
  value       = module.ray.tunnel_command
}
