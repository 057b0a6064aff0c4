"""Worker pool, compute requirement and node operations against the sandbox over HTTP."""

from __future__ import annotations

import dataclasses
import logging
import uuid
from datetime import timedelta

import pytest
from harness.waits import wait_until
from raydog.yellowdog import YellowDogClient, PlatformError, PoolSpec, TaskGroupSpec, TaskSpec, check_credentials

NS = "raydog-ops"
TEMPLATE = "sandbox/ray-worker"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def pool_spec(name: str, node_count: int = 1, **changes) -> PoolSpec:
    values = dict(namespace=NS, name=name, template_id=TEMPLATE, images_id=None, userdata="#!/bin/bash\ntrue",
                  instance_tags={"team": "ray"}, metrics_enabled=True, node_count=node_count, worker_tag=name)
    values.update(changes)
    return PoolSpec(**values)


def without_status(pool):
    """A pool's info less what changes by itself as nodes boot."""
    return dataclasses.replace(pool, status=None, compute_requirement_status=None)


def pools_named(sandbox, name: str) -> list[dict]:
    return [p for p in sandbox.state()["workerPools"] if p["name"] == name]


def pool_leftovers(sandbox, pool_id: str) -> dict:
    """What is still live of one pool: the pool, its compute requirement, instances, nodes."""
    state = sandbox.state()
    pool = next(p for p in state["workerPools"] if p["id"] == pool_id)
    cr_id = pool["computeRequirementId"]
    return {
        "pool": pool["status"] not in ("SHUTDOWN", "TERMINATED"),
        "compute_requirement": any(c["id"] == cr_id and c["status"] != "TERMINATED"
                                   for c in state["computeRequirements"]),
        "instances": sum(1 for i in state["instances"]
                         if i["computeRequirementId"] == cr_id and i["status"] not in ("TERMINATED",)),
        "nodes": sum(1 for n in state["nodes"]
                     if n["workerPoolId"] == pool_id and n["status"] in ("RUNNING", "LATE")),
    }


NOTHING_LEFT = {"pool": False, "compute_requirement": False, "instances": 0, "nodes": 0}


def assert_removed(sandbox, pool_id: str) -> None:
    """remove_pool returns once the pool is not live and its compute requirement TERMINATING
    (final); a strict platform keeps instances TERMINATING a moment longer, then nothing is left."""
    left = pool_leftovers(sandbox, pool_id)
    assert not left["pool"] and left["nodes"] == 0, left
    wait_until(lambda: pool_leftovers(sandbox, pool_id), "the pool's instances terminated",
               until=lambda found: found == NOTHING_LEFT, timeout=10)


def running_task(platform: YellowDogClient, pool, name: str):
    """A cluster with one task executing on the pool's node."""
    wr = platform.create_work_requirement(NS, unique("c"))
    group = platform.ensure_task_group(wr.id, TaskGroupSpec(name, pool.worker_tag, NS, None, False))
    [task] = platform.add_tasks(group.id, [TaskSpec("node-0", "sleep 1000", {}, None)])
    [task] = platform.wait_until_executing([task.id], timeout_seconds=30)
    return wr, task


# -- provisioning ------------------------------------------------------------------------------


def test_provision_pool_reads_back_what_was_asked(platform):
    name = unique("p")

    pool = platform.provision_pool(pool_spec(name, node_count=2, idle_pool_shutdown=timedelta(minutes=30)))

    assert (pool.namespace, pool.name, pool.live, pool.target_node_count) == (NS, name, True, 2)
    assert pool.compute_requirement_id.startswith("ydid:compreq:")
    assert (pool.worker_tag, pool.metrics_enabled) == (name, True)
    assert pool.instance_tags == {"team": "ray"}
    assert pool.idle_pool_shutdown == timedelta(minutes=30) and pool.idle_node_shutdown is None
    assert without_status(platform.get_pool(pool.id)) == without_status(pool)
    assert without_status(platform.find_pool(NS, name)) == without_status(pool)


def test_provision_adopts_the_live_pool_of_the_same_name(platform, sandbox):
    name = unique("p")
    first = platform.provision_pool(pool_spec(name))

    again = platform.provision_pool(pool_spec(name))

    assert again.id == first.id
    assert [p["id"] for p in pools_named(sandbox, name)] == [first.id]


def test_provision_whose_answer_was_dropped_adopts_the_committed_pool(platform, sandbox):
    name = unique("p")
    sandbox.set_faults("drop=1.0,methods=POST,seed=2")

    pool = platform.provision_pool(pool_spec(name))

    sandbox.set_faults(None)
    assert [p["id"] for p in pools_named(sandbox, name)] == [pool.id]
    assert pool.live


def test_a_live_pool_with_another_worker_tag_is_not_adopted(platform):
    name = unique("p")
    platform.provision_pool(pool_spec(name))

    with pytest.raises(PlatformError, match="not created by this configuration"):
        platform.provision_pool(pool_spec(name, worker_tag="someone-else"))


def test_a_refused_provision_keeps_the_platform_message(platform):
    with pytest.raises(PlatformError) as caught:
        platform.provision_pool(pool_spec(unique("p"), template_id="sandbox/no-such-template"))

    assert caught.value.status == 400
    assert "not found" in caught.value.message
    assert caught.value.object_id.startswith(f"{NS}/p-")


@pytest.mark.sandbox(strict=False)
def test_a_removed_pool_name_can_be_provisioned_again(platform):
    name = unique("p")
    old = platform.provision_pool(pool_spec(name))
    platform.remove_pool(old.id, old.compute_requirement_id)

    new = platform.provision_pool(pool_spec(name))

    assert new.id != old.id and new.live
    assert platform.find_pool(NS, name).id == new.id
    assert platform.get_pool(old.id).live is False


def test_a_removed_pool_name_is_refused_not_adopted_on_a_strict_platform(platform):
    name = unique("p")
    old = platform.provision_pool(pool_spec(name))
    platform.remove_pool(old.id, old.compute_requirement_id)

    with pytest.raises(PlatformError) as refused:
        platform.provision_pool(pool_spec(name))

    assert refused.value.name_taken, "the caller takes the name's next generation"
    assert platform.find_pool(NS, name).id == old.id


def test_a_create_and_a_refresh_read_the_pool_alone(platform, sandbox):
    sandbox.reset_requests()
    pool = platform.provision_pool(pool_spec(unique("p")), details=False)
    live = platform.get_pool(pool.id, details=False)

    routes = sandbox.requests()["routes"]
    assert routes == {"POST /workerPools/provisioned/template": 1, "GET /workerPools/{id}": 1}
    assert pool.compute_requirement_id and (live.id, live.live) == (pool.id, True)


def test_missing_pool_reads_as_none(platform):
    assert platform.get_pool("ydid:wrkrpool:000000:00000000-0000-0000-0000-000000000000") is None
    assert platform.find_pool(NS, unique("absent")) is None


# -- resizing and nodes ----------------------------------------------------------------------------


def test_resize_pool_sets_the_target_node_count(platform, sandbox):
    pool = platform.provision_pool(pool_spec(unique("p"), node_count=1))

    grown = platform.resize_pool(pool.id, 3)
    shrunk = platform.resize_pool(pool.id, 0)

    assert (grown.target_node_count, shrunk.target_node_count) == (3, 0)
    assert next(p for p in sandbox.state()["workerPools"] if p["id"] == pool.id)["targetNodeCount"] == 0


def test_node_address_matches_the_node_and_its_instance(platform, sandbox):
    pool = platform.provision_pool(pool_spec(unique("p"), node_count=3))
    _, task = running_task(platform, pool, "head")

    by_worker = platform.node_address(task.worker_id, pool.compute_requirement_id)
    by_node = platform.node_address(task.node_id)

    node = next(n for n in sandbox.state()["nodes"] if n["id"] == task.node_id)
    assert by_worker == by_node
    assert (by_worker.node_id, by_worker.private_ip, by_worker.public_ip) == (
        node["id"], node["privateIp"], node["publicIp"])


def test_node_address_costs_one_instance_search_whatever_the_pool_size(platform, sandbox):
    pool = platform.provision_pool(pool_spec(unique("p"), node_count=12))
    _, task = running_task(platform, pool, "head")
    sandbox.reset_requests()

    platform.node_address(task.worker_id, pool.compute_requirement_id)

    routes = sandbox.requests()["routes"]
    assert sum(n for route, n in routes.items() if "instances" in route) == 1
    assert sandbox.requests()["total"] == 2


@pytest.mark.sandbox(strict=False)
def test_shutdown_node_is_idempotent(platform, sandbox):
    pool = platform.provision_pool(pool_spec(unique("p"), node_count=2))
    _, task = running_task(platform, pool, "head")

    platform.shutdown_node(task.node_id)
    platform.shutdown_node(task.node_id)
    platform.shutdown_node("ydid:node:000000:00000000-0000-0000-0000-000000000000:1")

    node = next(n for n in sandbox.state()["nodes"] if n["id"] == task.node_id)
    assert node["status"] not in ("RUNNING", "LATE")


@pytest.mark.sandbox(strict=True, node_shutdown_delay=0.5)
def test_a_node_shutdown_that_takes_time_is_idempotent_and_waited_for(platform, sandbox):
    pool = platform.provision_pool(pool_spec(unique("p"), node_count=2))
    _, task = running_task(platform, pool, "head")

    platform.shutdown_node(task.node_id)
    platform.shutdown_node(task.node_id)
    platform.wait_until_nodes_gone([task.node_id], 10)
    platform.shutdown_node(task.node_id)  # refused by the platform: the node is gone, so success

    node = next(n for n in sandbox.state()["nodes"] if n["id"] == task.node_id)
    assert node["status"] not in ("RUNNING", "LATE")
    assert sandbox.state()["workerPools"][0]["targetNodeCount"] == 2, "a strict platform leaves the target"


# -- removal ---------------------------------------------------------------------------------------


@pytest.mark.sandbox(provision_delay=0.2, task_start_delay=0.1)
def test_remove_pool_leaves_nothing_live(platform, sandbox):
    pool = platform.provision_pool(pool_spec(unique("p"), node_count=2))
    running_task(platform, pool, "workers")

    platform.remove_pool(pool.id, pool.compute_requirement_id)

    assert_removed(sandbox, pool.id)
    live = sandbox.state()["live"]
    assert {key: live[key] for key in ("workerPools", "computeRequirements", "instances", "nodes")} == {
        "workerPools": 0, "computeRequirements": 0, "instances": 0, "nodes": 0}
    assert platform.get_pool(pool.id).live is False


def test_remove_pool_twice_is_success(platform, sandbox):
    pool = platform.provision_pool(pool_spec(unique("p")))

    platform.remove_pool(pool.id, pool.compute_requirement_id)
    platform.remove_pool(pool.id, pool.compute_requirement_id)

    assert_removed(sandbox, pool.id)


def test_remove_pool_terminated_out_of_band_is_success(platform, sandbox):
    pool = platform.provision_pool(pool_spec(unique("p")))
    sandbox.terminate_pool(pool.id)

    platform.remove_pool(pool.id)

    assert_removed(sandbox, pool.id)


def test_remove_pool_of_an_unknown_id_is_success(platform):
    platform.remove_pool("ydid:wrkrpool:000000:00000000-0000-0000-0000-000000000000",
                         "ydid:compreq:000000:00000000-0000-0000-0000-000000000000")


def test_remove_pool_survives_dropped_answers(platform, sandbox):
    pool = platform.provision_pool(pool_spec(unique("p"), node_count=2))
    sandbox.set_faults("drop=1.0,methods=PUT+DELETE,seed=4")

    platform.remove_pool(pool.id, pool.compute_requirement_id)

    sandbox.set_faults(None)
    assert pool_leftovers(sandbox, pool.id) == NOTHING_LEFT


def test_no_secret_reaches_the_logs(sandbox, caplog):
    caplog.set_level(logging.DEBUG)
    check_credentials(sandbox.url, sandbox.key_id, sandbox.key_secret)
    platform = YellowDogClient.connect(sandbox.url, sandbox.key_id, sandbox.key_secret)
    pool = platform.provision_pool(pool_spec(unique("p"), userdata="#!/bin/bash\nexport TOKEN=userdata-secret-1"))
    wr = platform.create_work_requirement(NS, unique("c"))
    group = platform.ensure_task_group(wr.id, TaskGroupSpec("head", pool.worker_tag, NS, None, False))
    spec = TaskSpec("node-0", "echo task-data-secret-2", {"YD_API_KEY_SECRET": "env-secret-3"}, None)
    platform.add_tasks(group.id, [spec])
    platform.remove_pool(pool.id, pool.compute_requirement_id)

    logged = caplog.text + " ".join(repr(record.args) for record in caplog.records)
    assert "provisioned worker pool" in logged
    for secret in (sandbox.key_secret, "userdata-secret-1", "task-data-secret-2", "env-secret-3"):
        assert secret not in logged
