# Plan-only checks of the module's input validation: each run breaks one rule and expects
# exactly that variable to fail. The rules are the module's own, so the provider is Terraform's
# mock of its schema here (no API, and no provider process per run, which keeps these fast);
# cluster.tftest.hcl plans and applies the same module with the real provider.

mock_provider "raydog" {
  # A script that keeps the script contract, so the provider's plan-time lint stays quiet.
  mock_data "raydog_node_script" {
    defaults = {
      content = "trap 'ray stop' EXIT\nray start --head --address=\"$RAY_HEAD_IP:6379\" --block\n"
    }
  }
}

variables {
  name      = "tftest"
  namespace = "raydog-tftest"
  head = {
    compute_requirement_template_id = "sandbox/ray-head"
  }
  worker_pools = {
    alpha = {
      compute_requirement_template_id = "sandbox/ray-worker"
    }
  }
}

run "name_must_follow_yellowdog_rule" {
  command = plan
  variables {
    name = "Bad_Name"
  }
  expect_failures = [var.name]
}

run "name_leaves_room_for_head_suffix" {
  command = plan
  variables {
    name = "a234567890123456789012345678901234567890123456789012345x"
  }
  expect_failures = [var.name]
}

run "namespace_must_follow_yellowdog_rule" {
  command = plan
  variables {
    namespace = "-raydog"
  }
  expect_failures = [var.namespace]
}

run "tag_must_follow_yellowdog_rule" {
  command = plan
  variables {
    tag = "Team A"
  }
  expect_failures = [var.tag]
}

run "lifetime_must_be_a_duration" {
  command = plan
  variables {
    lifetime = "2 hours"
  }
  expect_failures = [var.lifetime]
}

run "lifetime_must_be_positive" {
  command = plan
  variables {
    lifetime = "0s"
  }
  expect_failures = [var.lifetime]
}

run "create_timeout_must_be_a_duration" {
  command = plan
  variables {
    create_timeout = "ten minutes"
  }
  expect_failures = [var.create_timeout]
}

run "max_nodes_must_be_positive" {
  command = plan
  variables {
    max_nodes = 0
  }
  expect_failures = [var.max_nodes]
}

run "head_needs_a_template" {
  command = plan
  variables {
    head = { compute_requirement_template_id = " " }
  }
  expect_failures = [var.head]
}

run "head_script_excludes_script_vars" {
  command = plan
  variables {
    head = {
      compute_requirement_template_id = "sandbox/ray-head"
      script                          = "ray start --head --block"
      script_vars                     = { num_cpus = "1" }
    }
  }
  expect_failures = [var.head]
}

run "head_create_timeout_must_be_a_duration" {
  command = plan
  variables {
    head = {
      compute_requirement_template_id = "sandbox/ray-head"
      create_timeout                  = "5 minutes"
    }
  }
  expect_failures = [var.head]
}

run "head_environment_cannot_set_provider_variables" {
  command = plan
  variables {
    head = {
      compute_requirement_template_id = "sandbox/ray-head"
      environment                     = { OBSERVABILITY_HOST = "10.0.0.1" }
    }
  }
  expect_failures = [var.head]
}

run "observability_needs_a_template" {
  command = plan
  variables {
    observability = { compute_requirement_template_id = "" }
  }
  expect_failures = [var.observability]
}

run "observability_script_excludes_script_vars" {
  command = plan
  variables {
    observability = {
      compute_requirement_template_id = "sandbox/ray-observability"
      script                          = "prometheus"
      script_vars                     = { grafana_port = "3001" }
    }
  }
  expect_failures = [var.observability]
}

run "observability_environment_keys_must_be_bash_names" {
  command = plan
  variables {
    observability = {
      compute_requirement_template_id = "sandbox/ray-observability"
      environment                     = { "not-a-name" = "x" }
    }
  }
  expect_failures = [var.observability]
}

run "pool_key_must_follow_yellowdog_rule" {
  command = plan
  variables {
    worker_pools = {
      Alpha = { compute_requirement_template_id = "sandbox/ray-worker" }
    }
  }
  expect_failures = [var.worker_pools]
}

run "pool_key_cannot_be_reserved" {
  command = plan
  variables {
    worker_pools = {
      obs = { compute_requirement_template_id = "sandbox/ray-worker" }
    }
  }
  expect_failures = [var.worker_pools]
}

run "pool_key_leaves_room_for_hash" {
  command = plan
  variables {
    name = "t"
    worker_pools = {
      a23456789012345678901234567890123456789012345 = { compute_requirement_template_id = "sandbox/ray-worker" }
    }
  }
  expect_failures = [var.worker_pools]
}

run "pool_yellowdog_name_must_fit" {
  command = plan
  variables {
    name = "a23456789012345678901234567890"
    worker_pools = {
      a2345678901234567890123 = { compute_requirement_template_id = "sandbox/ray-worker" }
    }
  }
  expect_failures = [var.worker_pools]
}

run "node_count_must_be_at_least_one" {
  command = plan
  variables {
    worker_pools = {
      alpha = { compute_requirement_template_id = "sandbox/ray-worker", node_count = 0 }
    }
  }
  expect_failures = [var.worker_pools]
}

run "node_count_must_be_whole" {
  command = plan
  variables {
    worker_pools = {
      alpha = { compute_requirement_template_id = "sandbox/ray-worker", node_count = 1.5 }
    }
  }
  expect_failures = [var.worker_pools]
}

run "total_nodes_are_capped" {
  command = plan
  variables {
    max_nodes = 10
    worker_pools = {
      alpha = { compute_requirement_template_id = "sandbox/ray-worker", node_count = 5 }
      beta  = { compute_requirement_template_id = "sandbox/ray-worker", node_count = 5 }
    }
  }
  expect_failures = [var.worker_pools]
}

run "pool_needs_a_template" {
  command = plan
  variables {
    worker_pools = {
      alpha = { compute_requirement_template_id = "" }
    }
  }
  expect_failures = [var.worker_pools]
}

run "pool_script_excludes_script_vars" {
  command = plan
  variables {
    worker_pools = {
      alpha = {
        compute_requirement_template_id = "sandbox/ray-worker"
        script                          = "ray start --block"
        script_vars                     = { num_cpus = "1" }
      }
    }
  }
  expect_failures = [var.worker_pools]
}

run "pool_environment_cannot_set_provider_variables" {
  command = plan
  variables {
    worker_pools = {
      alpha = {
        compute_requirement_template_id = "sandbox/ray-worker"
        environment                     = { RAY_HEAD_IP = "10.0.0.1" }
      }
    }
  }
  expect_failures = [var.worker_pools]
}

run "autoscaling_needs_the_autoscaler_key" {
  command = plan
  variables {
    worker_pools = {
      alpha = {
        compute_requirement_template_id = "sandbox/ray-worker"
        autoscaling                     = { min_nodes = 0, max_nodes = 3 }
      }
    }
  }
  expect_failures = [var.worker_pools]
}

run "autoscaling_bounds_in_order" {
  command = plan
  variables {
    autoscaler_key = { id = "autoscaler", secret = "autoscaler-secret" }
    worker_pools = {
      alpha = {
        compute_requirement_template_id = "sandbox/ray-worker"
        autoscaling                     = { min_nodes = 3, max_nodes = 2 }
      }
    }
  }
  expect_failures = [var.worker_pools]
}

run "autoscaling_initial_size_inside_bounds" {
  command = plan
  variables {
    autoscaler_key = { id = "autoscaler", secret = "autoscaler-secret" }
    worker_pools = {
      alpha = {
        compute_requirement_template_id = "sandbox/ray-worker"
        node_count                      = 5
        autoscaling                     = { min_nodes = 1, max_nodes = 3 }
      }
    }
  }
  expect_failures = [var.worker_pools]
}

run "autoscaling_pool_plans_with_the_key" {
  command = plan
  variables {
    autoscaler_key = { id = "autoscaler", secret = "autoscaler-secret" }
    worker_pools = {
      alpha = {
        compute_requirement_template_id = "sandbox/ray-worker"
        autoscaling                     = { min_nodes = 0, max_nodes = 3, idle_timeout = "2m" }
      }
    }
  }
  assert {
    condition     = raydog_worker_pool.this["alpha"].autoscaling.max_nodes == 3 && raydog_head.this.autoscaler_application_key_id == "autoscaler"
    error_message = "the pool gets its autoscaling block and the head the autoscaler's key"
  }
}
