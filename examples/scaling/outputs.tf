output "worker_pool_ids" {
  description = "Worker pool ids by pool name: an id stays the same while its pool is resized."
  value       = module.ray.worker_pool_ids
}

output "worker_pool_names" {
  description = "YellowDog worker pool names by pool name."
  value       = module.ray.worker_pool_names
}

output "ray_address" {
  description = "Ray GCS address of the head."
  value       = module.ray.ray_address
}
