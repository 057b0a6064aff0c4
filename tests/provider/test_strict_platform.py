"""The provider on a strict platform: finished names stay taken, node shutdowns take time and
leave the pool's target, a cluster holds at most 1000 task groups (docs/sandbox.md, "Strict mode").

The suite's sandboxes are strict by default (tests/conftest.py); these tests prove what the
provider changed for it: name generations, a shrink that waits for what it ends, the
task-group budget.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from harness.platform_view import view
from harness.terraform import changes
from yellowdog_client import PlatformClient
from yellowdog_client.model import ApiKey, RetryProperties, RunSpecification, ServicesSchema, TaskGroup

CLUSTER = "st"


def config(pools: dict[str, int], cluster: str = CLUSTER) -> str:
    blocks = "".join(f"""
resource "raydog_worker_pool" "{name}" {{
  cluster_id                      = raydog_cluster.c.id
  cluster_name                    = raydog_cluster.c.name
  name                            = "{name}"
  compute_requirement_template_id = "sandbox/ray-worker"
  head_private_ip                 = raydog_head.h.private_ip
  node_count                      = {count}
  wait_for_nodes                  = true
}}
""" for name, count in pools.items())
    return f"""
provider "raydog" {{}}

resource "raydog_cluster" "c" {{
  name      = "{cluster}"
  namespace = "tests"
}}

resource "raydog_head" "h" {{
  cluster_id                      = raydog_cluster.c.id
  cluster_name                    = raydog_cluster.c.name
  compute_requirement_template_id = "sandbox/ray-head"
}}
{blocks}"""


def live_names(sandbox) -> set[str]:
    platform = view(sandbox)
    return {p["name"] for p in platform.state["workerPools"] if p["status"] not in ("SHUTDOWN", "TERMINATED")} | {
        w["name"] for w in platform.live_work_requirements()}


def test_destroy_then_apply_of_the_same_configuration_takes_the_next_generation_of_each_name(terraform, sandbox):
    terraform.write(config({"alpha": 1}))
    terraform.init()
    terraform.apply()
    assert live_names(sandbox) == {"st", "st-head", "st-alpha"}
    terraform.destroy()
    assert view(sandbox).nothing_live()

    terraform.apply()
    assert live_names(sandbox) == {"st--2", "st-head--2", "st-alpha--2"}
    resources = terraform.resources()
    assert resources["raydog_cluster.c"]["name"] == "st", "the configured name, not the generation's"
    assert resources["raydog_worker_pool.alpha"]["yellowdog_name"] == "st-alpha--2"
    assert terraform.plan_exitcode().returncode == 0, "the second plan is empty"
    terraform.destroy()
    assert view(sandbox).nothing_live()


def test_a_removed_then_re_added_pool_and_a_replaced_pool_get_fresh_names(terraform, sandbox):
    terraform.write(config({"alpha": 1, "beta": 1}))
    terraform.init()
    terraform.apply()
    terraform.write(config({"beta": 1}))
    terraform.apply()
    terraform.write(config({"alpha": 1, "beta": 1}))
    assert changes(terraform.plan_json()) == {"raydog_worker_pool.alpha": ["create"]}
    terraform.apply()
    assert {"st-alpha--2", "st-beta"} <= live_names(sandbox)

    old = terraform.resources()["raydog_worker_pool.beta"]["id"]
    terraform.apply("-replace=raydog_worker_pool.beta")
    beta = terraform.resources()["raydog_worker_pool.beta"]
    assert beta["id"] != old and beta["yellowdog_name"] == "st-beta--2"
    assert view(sandbox).pool(old)["status"] in ("SHUTDOWN", "TERMINATED")
    assert terraform.plan_exitcode().returncode == 0


@pytest.mark.sandbox(strict=True, node_shutdown_delay=1.5, terminate_delay=0.5)
def test_shrink_ends_the_chosen_tasks_gracefully_and_never_the_kept_ones(terraform, sandbox):
    terraform.write(config({"alpha": 3}))
    terraform.init()
    terraform.apply()
    pool = terraform.resources()["raydog_worker_pool.alpha"]
    platform = view(sandbox)
    tasks = sorted(platform.tasks(pool["task_group_id"]), key=lambda t: t["name"])
    kept = tasks[0]

    terraform.write(config({"alpha": 1}))
    terraform.apply()
    platform = view(sandbox)
    after = {t["id"]: t for t in platform.tasks(pool["task_group_id"])}
    assert after[kept["id"]]["status"] == "EXECUTING" and after[kept["id"]]["nodeId"] == kept["nodeId"]
    assert [after[t["id"]]["status"] for t in tasks[1:]] == ["ABORTED", "ABORTED"], "ended by abort, not lost"
    assert [n["id"] for n in platform.live_nodes(pool["id"])] == [kept["nodeId"]]
    assert platform.pool(pool["id"])["targetNodeCount"] == 1

    terraform.write(config({"alpha": 2}))
    terraform.apply()
    platform = view(sandbox)
    assert len(platform.live_nodes(pool["id"])) == 2
    assert view(sandbox).tasks(pool["task_group_id"], "EXECUTING")[0]["id"] == kept["id"]
    assert terraform.plan_exitcode().returncode == 0


def add_groups(sandbox, wr_id: str, count: int) -> None:
    """Fill the cluster's work requirement with ``count`` more (empty) task groups."""
    client = PlatformClient.create(
        ServicesSchema(defaultUrl=sandbox.url, retry=RetryProperties(initialInterval=timedelta(milliseconds=1),
                                                                      maxInterval=timedelta(milliseconds=5))),
        ApiKey(sandbox.key_id, sandbox.key_secret))
    try:
        wr = client.work_client.get_work_requirement_by_id(wr_id)
        spec = RunSpecification(taskTypes=["bash"], workerTags=["nobody"], namespaces=["tests"])
        start = len(wr.taskGroups)
        wr.taskGroups = [*wr.taskGroups, *(TaskGroup(name=f"filler-{start + i}", runSpecification=spec)
                                          for i in range(count))]
        client.work_client.update_work_requirement(wr)
    finally:
        client.close()


def test_a_plan_warns_from_900_task_groups_and_refuses_the_pool_past_1000(terraform, sandbox):
    terraform.write(config({}))
    terraform.init()
    terraform.apply()
    wr_id = terraform.resources()["raydog_cluster.c"]["id"]
    used = len(view(sandbox).work_requirement(wr_id)["taskGroups"])  # the head's and the owner marker

    add_groups(sandbox, wr_id, 900 - used)
    terraform.write(config({"alpha": 1}))
    result = terraform.run("plan", "-input=false", "-no-color")
    assert "Warning: The cluster is running out of task groups" in result.output
    assert "900 of YellowDog's 1000 task groups" in result.output

    add_groups(sandbox, wr_id, 100)
    requests_before = sandbox.requests()["routes"].get("POST /workerPools/provisioned/template", 0)
    result = terraform.apply(check=False)
    assert result.returncode == 1
    assert "The cluster has no task group left" in result.output and "allows 1000" in result.output
    assert sandbox.requests()["routes"].get("POST /workerPools/provisioned/template", 0) == requests_before, \
        "refused before any pool is provisioned"


def test_generation_names_map_back_and_configured_names_cannot_look_like_one():
    from raydog import names
    from raydog.config import rules

    first, second, third = list(names.generations("st-alpha", limit=3))
    assert (first, second, third) == ("st-alpha", "st-alpha--2", "st-alpha--3")
    assert {names.base_name(n) for n in (first, second, third)} == {"st-alpha"}
    long = "c" * 58
    assert len(list(names.generations(long, limit=2))[1]) <= names.MAX_NAME_LENGTH
    assert names.is_generation_of(list(names.generations(long, limit=12))[-1], long)
    assert names.internal_pool_name("st", "st-alpha--7", "worker-0123abcd") == "alpha"
    with pytest.raises(ValueError, match='must not contain "--"'):
        rules.worker_pool_name("gpu--2")


@pytest.mark.sandbox(strict=False)
def test_on_a_lenient_platform_destroy_then_apply_keeps_the_configured_names(terraform, sandbox):
    terraform.write(config({"alpha": 1}))
    terraform.init()
    terraform.apply()
    terraform.destroy()
    terraform.apply()
    assert live_names(sandbox) == {"st", "st-head", "st-alpha"}, "the first generation is free again"
    terraform.destroy()
    assert view(sandbox).nothing_live()
