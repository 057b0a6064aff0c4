# Runs against a YellowDog API (tests/module/test_module.py points the provider at a
# sandbox): plan a cluster and check what each resource gets, then create one with
# observability and two pools, resize a pool in place, roll a pool's script without a gap,
# and remove a pool. `terraform test` destroys what the runs created at the end.

variables {
  name      = "tftest"
  namespace = "raydog-tftest"
  tag       = "tftest"
  lifetime  = "2h"
  head = {
    compute_requirement_template_id = "sandbox/ray-head"
    create_timeout                  = "2m"
  }
  observability = {
    compute_requirement_template_id = "sandbox/ray-observability"
  }
  worker_pools = {
    alpha = {
      compute_requirement_template_id = "sandbox/ray-worker"
      script_vars                     = { num_cpus = "1" }
      wait_for_nodes                  = true
    }
    beta = {
      compute_requirement_template_id = "sandbox/ray-worker"
      node_count                      = 2
    }
  }
}

run "valid_configuration_plans" {
  command = plan

  variables {
    lifetime = "1h30m"
    head = {
      compute_requirement_template_id = "sandbox/ray-head"
    }
    worker_pools = {
      alpha = {
        compute_requirement_template_id = "sandbox/ray-worker"
        node_count                      = 2
        script_vars                     = { num_cpus = "1" }
      }
      beta = {
        compute_requirement_template_id = "sandbox/ray-worker"
        script                          = "#!/bin/bash\ntrap 'ray stop' EXIT\nray start --address=\"$RAY_HEAD_IP:6379\" --block\n"
      }
    }
  }

  assert {
    condition     = length(raydog_worker_pool.this) == 2 && length(raydog_observability.this) == 1
    error_message = "expected two worker pools and an observability node"
  }

  assert {
    condition     = raydog_worker_pool.this["alpha"].node_count == 2 && raydog_worker_pool.this["beta"].node_count == 1
    error_message = "node_count should default to 1 and pass through otherwise"
  }

  assert {
    condition     = strcontains(raydog_worker_pool.this["alpha"].task_script, "--num-cpus=1")
    error_message = "script_vars should render into the built-in worker script"
  }

  assert {
    condition     = startswith(raydog_worker_pool.this["beta"].task_script, "#!/bin/bash\ntrap 'ray stop' EXIT")
    error_message = "a pool's own script should be used as it is"
  }

  assert {
    condition     = raydog_head.this.lifetime == "1h30m" && raydog_worker_pool.this["alpha"].lifetime == "1h30m"
    error_message = "lifetime should reach every node resource"
  }

  assert {
    condition     = raydog_head.this.timeouts.create == "20m"
    error_message = "the head's create timeout should default to var.create_timeout"
  }
}

run "create" {
  assert {
    condition     = raydog_head.this.timeouts.create == "2m" && raydog_worker_pool.this["alpha"].timeouts.create == "20m"
    error_message = "head.create_timeout should override var.create_timeout for the head only"
  }

  assert {
    condition     = startswith(output.cluster_id, "ydid:workreq:") && output.cluster_name == "tftest"
    error_message = "cluster_id should be the work requirement id"
  }

  assert {
    condition     = output.ray_address == "${output.head_private_ip}:6379"
    error_message = "ray_address should be the head's private IP and port 6379"
  }

  assert {
    condition     = output.client_address == "ray://${output.head_private_ip}:10001"
    error_message = "client_address should be ray://<head private IP>:10001"
  }

  assert {
    condition     = output.dashboard_url == "http://${output.head_private_ip}:8265"
    error_message = "dashboard_url should be http://<head private IP>:8265"
  }

  assert {
    condition     = output.head_public_ip != null && output.tunnel_command == "raydog tunnel --head ${output.head_public_ip} --observability-host ${output.observability_private_ip}"
    error_message = "tunnel_command should reach the head's public IP"
  }

  assert {
    condition     = keys(output.worker_pool_ids) == ["alpha", "beta"] && alltrue([for id in values(output.worker_pool_ids) : startswith(id, "ydid:wrkrpool:")])
    error_message = "worker_pool_ids should map each pool key to its worker pool id"
  }

  assert {
    condition     = can(regex("^tftest-alpha-[0-9a-f]{6}$", output.worker_pool_names["alpha"]))
    error_message = "a pool's YellowDog name should be <cluster>-<key>-<hash>"
  }

  assert {
    condition     = output.grafana_url == "http://${output.observability_private_ip}:3000" && raydog_head.this.observability_name_suffix == raydog_observability.this[0].name_suffix
    error_message = "the observability node should be up and known to the head"
  }

  assert {
    condition     = length(raydog_worker_pool.this["beta"].task_ids) == 2 && raydog_worker_pool.this["beta"].observability_name_suffix == raydog_observability.this[0].name_suffix && raydog_worker_pool.this["beta"].head_name_suffix == raydog_head.this.name_suffix
    error_message = "beta should run two node tasks that know the observability host"
  }
}

run "node_count_changes_in_place" {
  variables {
    worker_pools = {
      alpha = {
        compute_requirement_template_id = "sandbox/ray-worker"
        script_vars                     = { num_cpus = "1" }
        wait_for_nodes                  = true
        node_count                      = 3
      }
      beta = {
        compute_requirement_template_id = "sandbox/ray-worker"
        node_count                      = 1
      }
    }
  }

  assert {
    condition     = output.worker_pool_ids == run.create.worker_pool_ids
    error_message = "changing node_count must not replace a pool"
  }

  assert {
    condition     = length(raydog_worker_pool.this["alpha"].task_ids) == 3 && length(raydog_worker_pool.this["beta"].task_ids) == 1
    error_message = "alpha should have grown to 3 tasks and beta shrunk to 1"
  }
}

run "changed_script_rolls_the_pool" {
  variables {
    worker_pools = {
      alpha = {
        compute_requirement_template_id = "sandbox/ray-worker"
        script_vars                     = { num_cpus = "2" }
        wait_for_nodes                  = true
        node_count                      = 3
      }
      beta = {
        compute_requirement_template_id = "sandbox/ray-worker"
        node_count                      = 1
      }
    }
  }

  assert {
    condition     = output.worker_pool_ids["alpha"] != run.node_count_changes_in_place.worker_pool_ids["alpha"]
    error_message = "a changed script should replace the pool"
  }

  assert {
    condition     = output.worker_pool_names["alpha"] != run.node_count_changes_in_place.worker_pool_names["alpha"]
    error_message = "the replacement pool needs a new YellowDog name (it exists beside the old one)"
  }

  assert {
    condition     = output.worker_pool_ids["beta"] == run.node_count_changes_in_place.worker_pool_ids["beta"] && output.head_id == run.create.head_id
    error_message = "the head and the other pool should stay"
  }

  assert {
    condition     = length(raydog_worker_pool.this["alpha"].task_ids) == 3 && strcontains(raydog_worker_pool.this["alpha"].task_script, "--num-cpus=2")
    error_message = "the new pool should run the new script on every node"
  }
}

run "removing_a_key_removes_the_pool" {
  variables {
    worker_pools = {
      alpha = {
        compute_requirement_template_id = "sandbox/ray-worker"
        script_vars                     = { num_cpus = "2" }
        wait_for_nodes                  = true
        node_count                      = 3
      }
    }
  }

  assert {
    condition     = keys(output.worker_pool_ids) == ["alpha"] && output.worker_pool_ids["alpha"] == run.changed_script_rolls_the_pool.worker_pool_ids["alpha"]
    error_message = "only alpha should remain, unchanged"
  }

  assert {
    condition     = output.head_id == run.create.head_id && output.cluster_id == run.create.cluster_id
    error_message = "removing a pool should leave the head and the cluster"
  }
}
