"""What a reviewer sees is exact: plans without noise, imports that round-trip, mistakes
caught at plan time. Every test drives real Terraform against the sandbox (simulate mode).
"""

from __future__ import annotations

import hashlib
import json
import re

from harness.platform_view import view
from harness.terraform import changes
from raydog.lifecycle.scripts import default_script
from raydog.yellowdog import PoolSpec, YellowDogClient

CLUSTER = "ex"
DEFAULT_WORKER_SHA = hashlib.sha256(default_script("worker").encode()).hexdigest()


def cluster_block(name: str = CLUSTER) -> str:
    return f"""
provider "raydog" {{}}

resource "raydog_cluster" "c" {{
  name      = "{name}"
  namespace = "tests"
}}
"""


def head_block(extra: str = "", template: str = "sandbox/ray-head") -> str:
    return f"""
resource "raydog_head" "h" {{
  cluster_id                      = raydog_cluster.c.id
  cluster_name                    = raydog_cluster.c.name
  namespace                       = raydog_cluster.c.namespace
  compute_requirement_template_id = "{template}"
  {extra}
}}
"""


def pool_block(name: str, count: int = 1, extra: str = "", template: str = "sandbox/ray-worker") -> str:
    return f"""
resource "raydog_worker_pool" "{name}" {{
  cluster_id                      = raydog_cluster.c.id
  cluster_name                    = raydog_cluster.c.name
  namespace                       = raydog_cluster.c.namespace
  name                            = "{name}"
  compute_requirement_template_id = "{template}"
  head_private_ip                 = raydog_head.h.private_ip
  node_count                      = {count}
  {extra}
}}
"""


def platform_client(sandbox) -> YellowDogClient:
    return YellowDogClient.connect(sandbox.url, sandbox.key_id, sandbox.key_secret)


def plan_text(tf, *extra) -> str:
    return tf.run("plan", "-input=false", "-no-color", *extra).stdout


def planned(plan: dict, address: str) -> tuple[dict, dict]:
    """(after, after_unknown) of one resource change of a ``show -json`` plan."""
    rc = next(rc for rc in plan["resource_changes"] if rc["address"] == address)
    return rc["change"]["after"], rc["change"]["after_unknown"]


def test_first_plan_shows_names_namespace_and_script_hash_and_no_script_text(terraform, sandbox):
    terraform.write(cluster_block() + head_block() + pool_block("alpha") + pool_block("beta") + pool_block("gamma"))
    terraform.init()
    plan = terraform.plan_json()
    for name in ("alpha", "beta", "gamma"):
        after, unknown = planned(plan, f"raydog_worker_pool.{name}")
        assert after["yellowdog_name"] == f"{CLUSTER}-{name}" and "yellowdog_name" not in unknown
        assert after["namespace"] == "tests" and "namespace" not in unknown
        assert after["script_sha256"] == DEFAULT_WORKER_SHA
        assert after["task_script"] is None
    head, _ = planned(plan, "raydog_head.h")
    assert head["yellowdog_name"] == f"{CLUSTER}-head" and head["namespace"] == "tests"
    text = plan_text(terraform)
    assert "ray start" not in text, "the default script is not printed per pool"
    terraform.apply()
    state = terraform.resources()
    assert state["raydog_worker_pool.alpha"]["script_sha256"] == DEFAULT_WORKER_SHA
    tasks = platform_client(sandbox).list_tasks(state["raydog_worker_pool.alpha"]["task_group_id"])
    assert tasks[0].task_data == default_script("worker")
    assert terraform.plan_exitcode().returncode == 0


def test_growing_a_pool_keeps_the_listed_task_ids_and_shrinking_drops_the_newest(terraform):
    terraform.write(cluster_block() + head_block() + pool_block("alpha", 2))
    terraform.init()
    terraform.apply()
    before = terraform.resources()["raydog_worker_pool.alpha"]["task_ids"]

    terraform.write(cluster_block() + head_block() + pool_block("alpha", 4))
    plan = terraform.plan_json()
    assert changes(plan) == {"raydog_worker_pool.alpha": ["update"]}
    after, unknown = planned(plan, "raydog_worker_pool.alpha")
    assert after["task_ids"][:2] == before and unknown["task_ids"] == [False, False, True, True]
    text = plan_text(terraform)
    assert not re.search(r'^\s+- "', text, re.M), f"no task id shown as removed on growth:\n{text}"
    terraform.apply()
    grown = terraform.resources()["raydog_worker_pool.alpha"]["task_ids"]
    assert grown[:2] == before and len(grown) == 4

    terraform.write(cluster_block() + head_block() + pool_block("alpha", 3))
    after, unknown = planned(terraform.plan_json(), "raydog_worker_pool.alpha")
    assert after["task_ids"] == grown[:3] and not any(unknown.get("task_ids") or [])
    terraform.apply()
    assert terraform.resources()["raydog_worker_pool.alpha"]["task_ids"] == grown[:3]
    assert terraform.plan_exitcode().returncode == 0


def test_removing_a_custom_script_plans_the_default_back(terraform, sandbox):
    custom = 'task_script = "trap \'ray stop\' EXIT\\nray start --address=$RAY_HEAD_IP:6379 --block\\n"'
    terraform.write(cluster_block() + head_block() + pool_block("alpha", 1, custom))
    terraform.init()
    terraform.apply()
    pool = terraform.resources()["raydog_worker_pool.alpha"]
    assert pool["script_sha256"] != DEFAULT_WORKER_SHA

    terraform.write(cluster_block() + head_block() + pool_block("alpha", 1))
    plan = terraform.plan_json()
    assert changes(plan) == {"raydog_worker_pool.alpha": ["delete", "create"]}
    after, _ = planned(plan, "raydog_worker_pool.alpha")
    assert after["task_script"] is None and after["script_sha256"] == DEFAULT_WORKER_SHA
    terraform.apply()
    pool = terraform.resources()["raydog_worker_pool.alpha"]
    assert pool["task_script"] is None and pool["script_sha256"] == DEFAULT_WORKER_SHA
    task = platform_client(sandbox).list_tasks(pool["task_group_id"])[0]
    assert task.task_data == default_script("worker")
    assert terraform.plan_exitcode().returncode == 0
