"""Changes that replace nodes roll them: the new node exists before the old one is removed."""

from __future__ import annotations

from harness.platform_view import view
from harness.terraform import changes

CLUSTER = """
provider "raydog" {}

module "ray" {
  source    = "./terraform/modules/raydog"
  name      = "roll"
  namespace = "tests"
  head = {
    compute_requirement_template_id = "sandbox/ray-head"
    script_vars                     = { metrics_export_port = "%(port)s" }
  }
  worker_pools = {
    cpu = { compute_requirement_template_id = "sandbox/ray-worker", node_count = 2, wait_for_nodes = true }
  }
}
"""


def test_a_new_head_is_created_before_the_old_one_and_its_pools_are_retasked(hcl_tree, in_tree, sandbox):
    tf = in_tree(".")
    tf.write(CLUSTER % {"port": "10002"})
    tf.init()
    tf.apply()
    before = tf.resources()
    old_head = before["module.ray.raydog_head.this"]

    tf.write(CLUSTER % {"port": "10003"})
    planned = changes(tf.plan_json())
    assert planned == {
        "module.ray.raydog_head.this": ["create", "delete"],
        'module.ray.raydog_worker_pool.this["cpu"]': ["update"],  # re-tasked in place: a new head_name_suffix
    }
    tf.apply()

    after = tf.resources()
    new_head = after["module.ray.raydog_head.this"]
    assert new_head["id"] != old_head["id"] and new_head["yellowdog_name"] != old_head["yellowdog_name"]
    platform = view(sandbox)
    assert set(platform.live_pools()) == {new_head["yellowdog_name"],
                                          after['module.ray.raydog_worker_pool.this["cpu"]']["yellowdog_name"]}
    assert platform.live_tasks(new_head["task_group_id"])[0]["status"] == "EXECUTING"
    old_pool, new_pool = (state['module.ray.raydog_worker_pool.this["cpu"]'] for state in (before, after))
    assert new_pool["id"] == old_pool["id"] and new_pool["head_name_suffix"] == new_head["name_suffix"]
    new_ip = platform.node(new_head["node_id"])["privateIp"]
    assert {t["environment"]["RAY_HEAD_IP"] for t in platform.live_tasks(new_pool["task_group_id"])} == {new_ip}
    assert tf.plan_exitcode().returncode == 0
    tf.destroy()
    assert view(sandbox).nothing_live(), view(sandbox).live
