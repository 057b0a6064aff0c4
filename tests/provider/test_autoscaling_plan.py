"""What Terraform sees of an autoscaled pool, against the sandbox (simulate mode: no Ray runs, so
nothing moves the pool but the test): the plan-time error for a head without an autoscaler key,
the bounds on the compute requirement, in-place bound changes, the size kept inside the bounds,
and a size outside new bounds moved to the nearest one.
"""

from __future__ import annotations

import json
import urllib.request

from harness.config import cluster_config
from harness.platform_view import view
from harness.terraform import assert_imports_keep_values


def config(*, head_key: bool, bounds: tuple[int, int] | None, node_count: int | None = None) -> str:
    head = {"autoscaler_application_key_id": "autoscaler", "autoscaler_application_key_secret": "autoscaler-s3cret"} \
        if head_key else {}
    pools = {} if bounds is None else {"elastic": node_count}
    pool_attrs = {} if bounds is None else {"autoscaling": {"min_nodes": bounds[0], "max_nodes": bounds[1],
                                                            "idle_timeout": "30s"}}
    return cluster_config("asplan", pools, head_attrs=head, pool_attrs=pool_attrs)


def compute_requirement_tag(sandbox, cr_id: str) -> str | None:
    return next(c for c in view(sandbox).state["computeRequirements"] if c["id"] == cr_id)["tag"]


def test_a_pool_with_autoscaling_needs_a_head_with_an_autoscaler_key(terraform, sandbox):
    terraform.write(config(head_key=False, bounds=None))
    terraform.init()
    terraform.apply()
    terraform.write(config(head_key=False, bounds=(0, 2)))
    result = terraform.run("plan", "-input=false", "-no-color", check=False)
    assert result.returncode == 1
    assert "The cluster runs no autoscaler" in result.output and "autoscaler_application_key_id" in result.output
    assert "asplan-elastic" not in view(sandbox).live_pools(), "nothing created"
    terraform.write(config(head_key=False, bounds=None))  # destroy plans the configuration first
    terraform.destroy()
    assert view(sandbox).nothing_live(), view(sandbox).live


def test_bounds_live_on_the_platform_and_change_in_place(terraform, sandbox):
    terraform.write(config(head_key=True, bounds=(0, 3)))
    terraform.init()
    terraform.apply()
    pool = terraform.resources()["raydog_worker_pool.elastic"]
    head_id = terraform.resources()["raydog_head.h"]["id"]
    assert pool["node_count"] == 0 and view(sandbox).live_tasks(pool["task_group_id"]) == [], "starts at min_nodes"
    assert compute_requirement_tag(sandbox, pool["compute_requirement_id"]) == "raydog-autoscaling-0-3-30"
    group = view(sandbox).group(pool["task_group_id"])
    assert group["name"].startswith("elastic-")
    assert terraform.plan_exitcode().returncode == 0

    terraform.write(config(head_key=True, bounds=(2, 4)))
    changes = {c["address"]: c["change"]["actions"] for c in terraform.plan_json()["resource_changes"]}
    assert changes == {"raydog_cluster.c": ["no-op"], "raydog_head.h": ["no-op"],
                       "raydog_worker_pool.elastic": ["update"]}
    terraform.apply()
    pool = terraform.resources()["raydog_worker_pool.elastic"]
    assert terraform.resources()["raydog_head.h"]["id"] == head_id
    assert compute_requirement_tag(sandbox, pool["compute_requirement_id"]) == "raydog-autoscaling-2-4-30"
    assert len(view(sandbox).live_tasks(pool["task_group_id"])) == 2, "below the new min_nodes: raised to it"
    assert pool["node_count"] == 2
    assert terraform.plan_exitcode().returncode == 0

    terraform.write(config(head_key=True, bounds=(1, 1)))
    terraform.apply()
    pool = terraform.resources()["raydog_worker_pool.elastic"]
    assert len(view(sandbox).live_tasks(pool["task_group_id"])) == 1, "above the new max_nodes: lowered to it"
    assert terraform.plan_exitcode().returncode == 0

    terraform.destroy()
    assert view(sandbox).nothing_live(), view(sandbox).live


def test_an_autoscaled_pool_and_its_head_import_with_their_bounds_and_key(terraform, terraform_factory, sandbox):
    with urllib.request.urlopen(f"{sandbox.url}/sandbox/v1/templates") as response:
        templates = {t["name"]: t["id"] for t in json.load(response)["templates"]}
    hcl = config(head_key=True, bounds=(1, 3)).replace('"sandbox/ray-head"', f'"{templates["sandbox/ray-head"]}"') \
        .replace('"sandbox/ray-worker"', f'"{templates["sandbox/ray-worker"]}"')
    terraform.write(hcl)
    terraform.init()
    terraform.apply()
    built = terraform.resources()

    imported = terraform_factory("imported", sandbox=sandbox)
    imported.write(hcl + "".join(f'\nimport {{\n  to = {address}\n  id = "{values["id"]}"\n}}\n'
                                 for address, values in built.items()))
    imported.init()
    assert_imports_keep_values(imported.plan_json())
    imported.apply()
    after = imported.resources()
    assert after["raydog_worker_pool.elastic"]["autoscaling"] == {"min_nodes": 1, "max_nodes": 3,
                                                                  "idle_timeout": "30s"}
    assert after["raydog_head.h"]["autoscaler_application_key_id"] == "autoscaler"
    assert imported.plan_exitcode().returncode == 0
    imported.destroy()
    assert view(sandbox).nothing_live(), view(sandbox).live


def test_bounds_left_held_or_changed_outside_terraform_are_written_again(terraform, sandbox):
    """An update holds the pool (tag ``raydog-autoscaling-held``) while it sizes it; killed in
    between, the pool would stay out of the autoscaler's hands. A refresh compares the tag with
    the state's bounds, so the next plan shows the difference and the apply writes them again;
    so does a tag changed outside Terraform."""
    from raydog.autoscaler.shipping import HELD_TAG
    from raydog.yellowdog import YellowDogClient

    terraform.write(config(head_key=True, bounds=(1, 3)))
    terraform.init()
    terraform.apply()
    pool = terraform.resources()["raydog_worker_pool.elastic"]
    client = YellowDogClient.connect(sandbox.url, "sandbox", "sandbox-secret")
    for outside in (HELD_TAG, "raydog-autoscaling-0-9-30"):
        client.set_compute_requirement_tag(pool["compute_requirement_id"], outside)
        plan = terraform.plan_json()
        change = next(c for c in plan["resource_changes"] if c["address"] == "raydog_worker_pool.elastic")
        assert change["change"]["actions"] == ["update"], outside
        assert change["change"]["after"]["autoscaling"] == {"min_nodes": 1, "max_nodes": 3, "idle_timeout": "30s"}
        terraform.apply()
        assert compute_requirement_tag(sandbox, pool["compute_requirement_id"]) == "raydog-autoscaling-1-3-30"
        assert len(view(sandbox).live_tasks(pool["task_group_id"])) == 1
        assert terraform.plan_exitcode().returncode == 0, outside
    terraform.destroy()
    assert view(sandbox).nothing_live(), view(sandbox).live
