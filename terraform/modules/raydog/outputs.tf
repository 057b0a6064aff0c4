output "cluster_id" {
  description = "Id of the cluster's work requirement (RayDog's work_requirement_id)."
  value       = raydog_cluster.this.id
}

output "cluster_name" {
  description = "Name of the cluster (the work requirement's name)."
  value       = raydog_cluster.this.name
}

output "head_id" {
  description = "Worker pool id of the head node (RayDog's head_node_worker_pool_id)."
  value       = raydog_head.this.id
}

output "head_private_ip" {
  description = "Private IP address of the head node (RayDog's head_node_private_ip)."
  value       = raydog_head.this.private_ip
}

output "head_public_ip" {
  description = "Public IP address of the head node, null when it has none (RayDog's head_node_public_ip)."
  value       = raydog_head.this.public_ip
}

output "ray_address" {
  description = "Ray GCS address of the head, `IP:6379` (for `ray start --address`)."
  value       = raydog_head.this.ray_address
}

output "client_address" {
  description = "Ray client address, `ray://IP:10001` (for `ray.init(address=...)` from inside the network, or through a tunnel)."
  value       = raydog_head.this.client_address
}

output "dashboard_url" {
  description = "Ray dashboard URL, `http://IP:8265`."
  value       = raydog_head.this.dashboard_url
}

output "worker_pool_ids" {
  description = "Worker pool ids by internal name (the keys of var.worker_pools)."
  value       = { for key, pool in raydog_worker_pool.this : key => pool.id }
}

output "worker_pool_names" {
  description = "YellowDog worker pool names by internal name (`<cluster>-<key>-<hash>`)."
  value       = { for key, pool in raydog_worker_pool.this : key => pool.yellowdog_name }
}

output "observability_private_ip" {
  description = "Private IP address of the observability node (OBSERVABILITY_HOST), null without one."
  value       = local.observability_host
}

output "grafana_url" {
  description = "Grafana on the observability node, `http://IP:3000`, null without one."
  value       = local.observability_enabled ? raydog_observability.this[0].grafana_url : null
}

output "prometheus_url" {
  description = "Prometheus on the observability node, `http://IP:9090`, null without one."
  value       = local.observability_enabled ? raydog_observability.this[0].prometheus_url : null
}

output "tunnel_command" {
  description = "The `raydog tunnel` command that forwards the Ray client (10001) and dashboard (8265) ports, and Grafana (3000) and Prometheus (9090) with an observability node, to localhost through the head's public IP (docs/guides/tunnels.md; add --key for a key outside the SSH agent and ~/.ssh); null when the head has no public IP."
  value = raydog_head.this.public_ip == null ? null : join(" ", compact([
    "raydog tunnel --head ${raydog_head.this.public_ip}",
    local.observability_enabled ? "--observability-host ${local.observability_host}" : "",
  ]))
}
