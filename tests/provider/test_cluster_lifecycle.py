"""A Ray cluster's life through real Terraform against the sandbox (simulate mode).

Each test reads like an acceptance story: apply, check the platform, change one thing,
check the plan's actions, check the platform again, destroy, check nothing is left.
"""

from __future__ import annotations

import json

import pytest

from harness.config import (
    HEAD_TEMPLATE,
    OBSERVABILITY_TEMPLATE,
    WORKER_TEMPLATE,
    Expr,
    cluster_config,
    output,
    worker_pool,
)
from harness.platform_view import view
from harness.terraform import assert_imports_keep_values, changes

CLUSTER = "lc"
HEAD_OUTPUT = output("head", Expr(
    "{ private_ip = raydog_head.h.private_ip, public_ip = raydog_head.h.public_ip,"
    " ray_address = raydog_head.h.ray_address, client_address = raydog_head.h.client_address,"
    " dashboard_url = raydog_head.h.dashboard_url }"))


def config(pools: dict[str, int], *, observability: bool = True, head_timeout: str = "2m",
           templates: dict[str, str] | None = None, head_attrs: dict | None = None) -> str:
    """Cluster + (observability) + head + one raydog_worker_pool per entry of ``pools``, with the head's outputs."""
    t = {"head": HEAD_TEMPLATE, "worker": WORKER_TEMPLATE, "obs": OBSERVABILITY_TEMPLATE, **(templates or {})}
    return cluster_config(
        CLUSTER, pools, with_observability=observability, wait_for_nodes=True, head_timeout=head_timeout,
        observability_attrs={"compute_requirement_template_id": t["obs"]},
        head_attrs={"compute_requirement_template_id": t["head"], **(head_attrs or {})},
        pool_attrs={"compute_requirement_template_id": t["worker"]},
    ) + "\n" + HEAD_OUTPUT


def assert_no_changes(tf, *extra):
    result = tf.plan_exitcode(*extra)
    assert result.returncode == 0, f"expected an empty plan{' ' + ' '.join(extra) if extra else ''}:\n{result.output}"


def test_cluster_with_observability_head_and_two_pools_builds_and_destroys(terraform, sandbox):
    terraform.write(config({"alpha": 2, "beta": 2}))
    terraform.init()
    terraform.apply()

    resources = terraform.resources()
    head, obs = resources["raydog_head.h"], resources["raydog_observability.obs"]
    platform = view(sandbox)
    pools = platform.live_pools()
    assert set(pools) == {f"{CLUSTER}-head", f"{CLUSTER}-obs", f"{CLUSTER}-alpha", f"{CLUSTER}-beta"}
    assert all(p["status"] == "RUNNING" for p in pools.values())

    head_node = platform.node(head["node_id"])
    assert (head["private_ip"], head["public_ip"]) == (head_node["privateIp"], head_node["publicIp"])
    assert terraform.outputs()["head"] == {
        "private_ip": head_node["privateIp"],
        "public_ip": head_node["publicIp"],
        "ray_address": f"{head_node['privateIp']}:6379",
        "client_address": f"ray://{head_node['privateIp']}:10001",
        "dashboard_url": f"http://{head_node['privateIp']}:8265",
    }

    assert len(platform.node_groups(resources["raydog_cluster.c"]["id"])) == 4  # observability, head, 2 pools
    assert [t["status"] for t in platform.tasks(head["task_group_id"])] == ["EXECUTING"]
    assert [t["status"] for t in platform.tasks(obs["task_group_id"])] == ["EXECUTING"]
    assert platform.tasks(head["task_group_id"])[0]["environment"]["OBSERVABILITY_HOST"] == obs["private_ip"]
    for name in ("alpha", "beta"):
        group_id = resources[f"raydog_worker_pool.{name}"]["task_group_id"]
        assert platform.pool_tasks_know_their_peers(group_id, 2, head_node["privateIp"], obs["private_ip"]), \
            platform.tasks(group_id)

    assert_no_changes(terraform)
    assert_no_changes(terraform, "-refresh=false")

    terraform.destroy()
    assert view(sandbox).nothing_live(), view(sandbox).live


def test_node_count_changes_are_updates_in_place(terraform, sandbox):
    terraform.write(config({"alpha": 2}, observability=False))
    terraform.init()
    terraform.apply()
    pool_id = terraform.resources()["raydog_worker_pool.alpha"]["id"]

    for count in (4, 1):
        terraform.write(config({"alpha": count}, observability=False))
        plan = terraform.plan_json()
        assert changes(plan) == {"raydog_worker_pool.alpha": ["update"]}
        terraform.apply()
        pool = terraform.resources()["raydog_worker_pool.alpha"]
        assert pool["id"] == pool_id and pool["node_count"] == count and len(pool["task_ids"]) == count
        platform = view(sandbox)
        assert len(platform.live_nodes(pool_id)) == count
        assert len(platform.tasks(pool["task_group_id"], "EXECUTING")) == count
        assert platform.pool(pool_id)["targetNodeCount"] == count
        assert_no_changes(terraform)


def test_adding_and_removing_a_pool_touches_only_that_pool(terraform, sandbox):
    terraform.write(config({"alpha": 1, "beta": 1}, observability=False))
    terraform.init()
    terraform.apply()
    before = terraform.resources()

    terraform.write(config({"alpha": 1, "beta": 1, "gamma": 1}, observability=False))
    assert changes(terraform.plan_json()) == {"raydog_worker_pool.gamma": ["create"]}
    terraform.apply()

    terraform.write(config({"beta": 1, "gamma": 1}, observability=False))
    assert changes(terraform.plan_json()) == {"raydog_worker_pool.alpha": ["delete"]}
    terraform.apply()

    after = terraform.resources()
    for address in ("raydog_cluster.c", "raydog_head.h", "raydog_worker_pool.beta"):
        assert after[address]["id"] == before[address]["id"]
    platform = view(sandbox)
    assert set(platform.live_pools()) == {f"{CLUSTER}-head", f"{CLUSTER}-beta", f"{CLUSTER}-gamma"}
    assert platform.work_requirement(after["raydog_cluster.c"]["id"])["status"] == "RUNNING"
    alpha_group = before["raydog_worker_pool.alpha"]["task_group_id"]
    assert platform.live_tasks(alpha_group) == []
    assert [t["status"] for t in platform.tasks(after["raydog_head.h"]["task_group_id"])] == ["EXECUTING"]
    assert_no_changes(terraform)


@pytest.mark.sandbox(provision_delay=3.0)
def test_head_that_misses_its_create_timeout_fails_cleanly_and_a_longer_timeout_succeeds(terraform, sandbox):
    terraform.write(config({}, observability=False, head_timeout="1s"))
    terraform.init()
    result = terraform.apply(check=False)
    assert result.returncode == 1
    assert "The head node did not start" in result.output and "timed out after" in result.output
    assert f"{CLUSTER}-head" not in view(sandbox).live_pools()
    state = terraform.resources()
    assert "raydog_head.h" not in state

    terraform.write(config({}, observability=False, head_timeout="1m"))
    terraform.apply()
    assert f"{CLUSTER}-head" in view(sandbox).live_pools()
    assert_no_changes(terraform)


def test_head_whose_task_fails_reports_the_exit_code_and_leaves_nothing(terraform, sandbox):
    terraform.write(config({}, observability=False, head_attrs={"environment": {"SANDBOX_EXIT_CODE": "7"}}))
    terraform.init()
    result = terraform.apply(check=False)
    assert result.returncode == 1
    assert "head node failed" in result.output and "7" in result.output
    assert f"{CLUSTER}-head" not in view(sandbox).live_pools()
    assert "raydog_head.h" not in terraform.resources()


def test_every_resource_imports_by_id_and_the_next_plan_is_empty(terraform, terraform_factory, sandbox):
    templates = {t["name"]: t["id"] for t in _templates(sandbox)}
    ids = {"head": templates["sandbox/ray-head"], "worker": templates["sandbox/ray-worker"],
           "obs": templates["sandbox/ray-observability"]}
    hcl = config({"alpha": 2}, templates=ids)
    terraform.write(hcl)
    terraform.init()
    terraform.apply()
    built = terraform.resources()

    imported = terraform_factory("imported", sandbox=sandbox)
    import_blocks = "".join(
        f'\nimport {{\n  to = {address}\n  id = "{values["id"]}"\n}}\n' for address, values in built.items()
    )
    imported.write(hcl + import_blocks)
    imported.init()
    plan = imported.plan_json()
    for rc in plan["resource_changes"]:
        assert rc["change"]["importing"]["id"] == built[rc["address"]]["id"]
    assert_imports_keep_values(plan)
    imported.apply()
    after = imported.resources()
    for address, values in built.items():
        differing = {k for k, v in values.items() if after[address].get(k) != v and k != "timeouts"}
        assert not differing, f"{address} imported with different {sorted(differing)}"
    assert_no_changes(imported)


def _templates(sandbox) -> list[dict]:
    import urllib.request

    with urllib.request.urlopen(f"{sandbox.url}/sandbox/v1/templates") as response:
        return json.load(response)["templates"]


def test_pool_terminated_out_of_band_is_planned_for_creation(terraform, sandbox):
    terraform.write(config({"alpha": 1}, observability=False))
    terraform.init()
    terraform.apply()
    sandbox.terminate_pool(terraform.resources()["raydog_worker_pool.alpha"]["id"])

    assert changes(terraform.plan_json()) == {"raydog_worker_pool.alpha": ["create"]}
    terraform.apply()
    assert f"{CLUSTER}-alpha" in view(sandbox).live_pools()
    assert_no_changes(terraform)


def test_work_requirement_cancelled_out_of_band_recreates_the_cluster(terraform, sandbox):
    terraform.write(config({"alpha": 1}, observability=False))
    terraform.init()
    terraform.apply()
    old = terraform.resources()
    sandbox.cancel_work_requirement(old["raydog_cluster.c"]["id"])

    planned = changes(terraform.plan_json())
    assert planned["raydog_cluster.c"] == ["create"]
    assert planned["raydog_head.h"] in (["create"], ["delete", "create"])
    assert planned["raydog_worker_pool.alpha"] in (["create"], ["delete", "create"])
    terraform.apply()
    new = terraform.resources()
    assert new["raydog_cluster.c"]["id"] != old["raydog_cluster.c"]["id"]
    platform = view(sandbox)
    assert len(platform.live_work_requirements()) == 1
    assert set(platform.live_pools()) == {f"{CLUSTER}-head", f"{CLUSTER}-alpha"}
    assert_no_changes(terraform)
    terraform.destroy()
    assert view(sandbox).nothing_live(), view(sandbox).live


def test_twelve_pools_created_at_parallelism_ten_all_have_task_groups(terraform, sandbox):
    terraform.write(config({f"p{i:02d}": 1 for i in range(12)}, observability=False))
    terraform.init()
    terraform.apply("-parallelism=10")
    resources = terraform.resources()
    groups = {g["id"] for g in view(sandbox).node_groups(resources["raydog_cluster.c"]["id"])}
    for i in range(12):
        assert resources[f"raydog_worker_pool.p{i:02d}"]["task_group_id"] in groups
    assert len(groups) == 13
    terraform.destroy("-parallelism=10")
    assert view(sandbox).nothing_live(), view(sandbox).live


REFRESH_ROUTES = "GET /workerPools/{id}+GET /work/tasks/{id}+GET /work/tasks+GET /work/requirements/{id}"


def test_transient_errors_during_refresh_remove_nothing_from_state(terraform, sandbox):
    terraform.write(config({"alpha": 1}, observability=False))
    terraform.init()
    terraform.apply()
    before = terraform.resources()

    sandbox.set_faults(f"5xx=1.0,routes={REFRESH_ROUTES}")
    result = terraform.run("apply", "-refresh-only", "-auto-approve", "-no-color", check=False)
    assert result.returncode == 1
    assert "keeping it in state" in result.output
    sandbox.set_faults("none")

    assert {a: v["id"] for a, v in terraform.resources().items()} == {a: v["id"] for a, v in before.items()}
    assert_no_changes(terraform)


def test_two_pools_with_the_same_name_fail_instead_of_sharing_one_yellowdog_pool(terraform, sandbox):
    twin = worker_pool("cpu", 1, label="cpu_again", wait_for_nodes=True)
    terraform.write(config({"cpu": 1}, observability=False) + "\n" + twin)
    terraform.init()
    result = terraform.apply(check=False)
    assert result.returncode == 1
    assert "Duplicate worker pool name" in result.output
    resources = terraform.resources()
    created = [a for a in ("raydog_worker_pool.cpu", "raydog_worker_pool.cpu_again") if a in resources]
    assert len(created) == 1
    pools = view(sandbox).live_pools()
    assert pools[f"{CLUSTER}-cpu"]["id"] == resources[created[0]]["id"]
    assert pools[f"{CLUSTER}-cpu"]["targetNodeCount"] == 1
