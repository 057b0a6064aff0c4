"""RayDog's YellowDog node provider for Ray's autoscaler, against the sandbox over HTTP.

The cluster is set up the way the provider sets one up (through the yellowdog-sdk client):
a work requirement, a pool whose compute requirement carries the bounds in its tag, and a task
group whose tag names the pool and whose task template is the worker task. The node provider
then speaks the REST API itself, with its own application key, as it does on the head. Both
readings of the platform (the default and --strict) are run.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from harness.platform_view import view
from harness.waits import wait_until
from raydog.autoscaler import raydog_node_provider as np
from raydog.autoscaler.shipping import HELD_TAG, bounds_tag
from raydog.yellowdog import PoolSpec, TaskGroupSpec, TaskSpec, YellowDogClient

KEY = ("autoscaler", "autoscaler-secret-42")
SCRIPT = "#!/bin/bash\nray start --address=$RAY_HEAD_IP:6379 --block\n"


@pytest.fixture(params=[False, True], ids=["default", "strict"])
def sandbox(request, sandbox_factory):
    return sandbox_factory(strict=request.param, api_keys={"sandbox": "sandbox-secret", KEY[0]: KEY[1]})


@pytest.fixture
def cluster(sandbox):
    """A cluster with one autoscaled pool "elastic" (1..3 nodes, 20 s idle) of one node."""
    client = YellowDogClient.connect(sandbox.url, "sandbox", "sandbox-secret")
    wr = client.create_work_requirement("tests", "npc")
    pool = client.provision_pool(PoolSpec(
        namespace="tests", name="npc-elastic", template_id="sandbox/ray-worker", images_id=None, userdata=None,
        instance_tags={}, metrics_enabled=False, node_count=1, worker_tag="tok-elastic",
        tag=bounds_tag(1, 3, timedelta(seconds=20))))
    group = client.ensure_task_group(wr.id, TaskGroupSpec(
        name="elastic-0badc0de", worker_tag="tok-elastic", namespace="tests", tag="npc-elastic",
        task_template=TaskSpec(name="template", task_data=SCRIPT, environment={"RAY_HEAD_IP": "198.18.0.2"})))
    client.add_tasks(group.id, [TaskSpec(name="node-1", task_data=SCRIPT, environment={"RAY_HEAD_IP": "198.18.0.2"})])
    return client, wr, pool, group


@pytest.fixture
def node_provider(sandbox, cluster, tmp_path):
    _, wr, _, _ = cluster
    key_file = tmp_path / "autoscaler.key"
    key_file.write_text(f"{KEY[0]}:{KEY[1]}")
    config = {"type": "external", "module": "raydog_node_provider.YellowDogNodeProvider", "api_url": sandbox.url,
              "key_file": str(key_file), "work_requirement_id": wr.id, "head_ip": "198.18.0.2",
              "config_path": str(tmp_path / "autoscaling.yaml")}
    return np.YellowDogNodeProvider(config, "npc")


def ray_update(node_provider) -> None:
    """What one update of Ray's autoscaler does first: read the config file (here: nothing to
    read), then ask for the nodes, which refreshes the node provider's view and rewrites the file."""
    node_provider.non_terminated_nodes({})


def ray_holds_the_pools(node_provider) -> None:
    """Two updates: the first writes a new pool's bounds into the config, which Ray reads at the
    start of the second; from then on the pool's nodes are shown to Ray."""
    ray_update(node_provider)
    ray_update(node_provider)


def executing_workers(node_provider) -> list[str]:
    node_provider.refresh()
    return [n for n in node_provider.non_terminated_nodes({np.TAG_KIND: "worker"}) if node_provider.is_running(n)]


def test_lists_the_head_and_the_pools_tasks_with_their_node_ips(node_provider, sandbox, cluster, tmp_path):
    _, _, pool, group = cluster
    workers = wait_until(lambda: executing_workers(node_provider), "the first worker executing", timeout=30,
                         interval=0.2, until=lambda found: len(found) == 1)
    node = view(sandbox).live_nodes(pool.id)[0]
    assert node_provider.internal_ip(workers[0]) == node["privateIp"]
    assert node_provider.node_tags(workers[0]) == {np.TAG_KIND: "worker", np.TAG_TYPE: "elastic",
                                                   np.TAG_NAME: "node-1", np.TAG_STATUS: "up-to-date"}
    assert node_provider.non_terminated_nodes({np.TAG_KIND: np.NODE_KIND_HEAD}) == [np.HEAD_NODE_ID]
    assert node_provider.internal_ip(np.HEAD_NODE_ID) == "198.18.0.2"
    config = json.loads((tmp_path / "autoscaling.yaml").read_text())
    assert config["available_node_types"]["elastic"]["min_workers"] == 1
    assert config["available_node_types"]["elastic"]["max_workers"] == 3
    assert config["idle_timeout_minutes"] == pytest.approx(20 / 60)
    assert config["provider"]["key_file"].endswith("autoscaler.key") and KEY[1] not in json.dumps(config)


def test_create_node_resizes_the_pool_and_adds_worker_tasks_up_to_max_nodes(node_provider, sandbox, cluster):
    _, _, pool, group = cluster
    ray_holds_the_pools(node_provider)
    created = node_provider.create_node({"pool": "elastic"}, {np.TAG_TYPE: "elastic", np.TAG_KIND: "worker"}, 5)
    assert len(created) == 2, "capped at max_nodes (3) with one node live"
    tasks = view(sandbox).live_tasks(group.id)
    assert sorted(t["name"] for t in tasks) == ["node-1", "node-2", "node-3"]
    assert view(sandbox).pool(pool.id)["targetNodeCount"] == 3
    wait_until(lambda: executing_workers(node_provider), "three workers executing", timeout=30, interval=0.2,
               until=lambda found: len(found) == 3)
    added = next(t for t in tasks if t["name"] == "node-3")
    assert added["environment"]["RAY_HEAD_IP"] == "198.18.0.2", "new tasks run the group's task template"
    assert node_provider.create_node({}, {np.TAG_TYPE: "elastic"}, 1) is None, "nothing past max_nodes"


def test_a_launch_copies_the_newest_task_so_a_pool_retasked_for_a_new_head_stays_with_it(node_provider, sandbox,
                                                                                        cluster):
    """A new head re-tasks the pool (new tasks, new RAY_HEAD_IP) but leaves the group's task
    template as it was: the autoscaler's nodes must join the new head, not the old one."""
    client, _, _, group = cluster
    old = view(sandbox).live_tasks(group.id)[0]
    client.cancel_task(old["id"], abort=True)
    client.add_tasks(group.id, [TaskSpec(name="node-2", task_data=SCRIPT, environment={"RAY_HEAD_IP": "198.18.0.9"})])
    ray_holds_the_pools(node_provider)
    created = node_provider.create_node({}, {np.TAG_TYPE: "elastic", np.TAG_KIND: "worker"}, 1)
    assert len(created) == 1
    launched = next(t for t in view(sandbox).live_tasks(group.id) if t["id"] in created)
    assert launched["name"] == "node-3" and launched["environment"]["RAY_HEAD_IP"] == "198.18.0.9"


def test_terminate_node_ends_the_task_shuts_the_node_down_then_shrinks_the_pool(node_provider, sandbox, cluster):
    _, _, pool, group = cluster
    ray_holds_the_pools(node_provider)
    node_provider.create_node({}, {np.TAG_TYPE: "elastic", np.TAG_KIND: "worker"}, 1)
    workers = wait_until(lambda: executing_workers(node_provider), "two workers executing", timeout=30,
                         interval=0.2, until=lambda found: len(found) == 2)
    victim = workers[-1]
    node_provider.terminate_nodes([victim])
    assert node_provider.is_terminated(victim)
    wait_until(lambda: (node_provider.refresh(), view(sandbox).pool(pool.id)["targetNodeCount"])[1],
               "the pool resized to its live tasks once the node is gone", timeout=60, interval=0.5,
               until=lambda target: target == 1)
    assert [t["name"] for t in view(sandbox).live_tasks(group.id)] == ["node-1"]
    assert len(view(sandbox).live_nodes(pool.id)) == 1


def test_new_bounds_on_the_compute_requirement_reach_the_config(node_provider, cluster, tmp_path):
    client, _, pool, _ = cluster
    node_provider.refresh()
    client.set_compute_requirement_tag(pool.compute_requirement_id, bounds_tag(0, 5, timedelta(minutes=2)))
    node_provider.refresh()
    config = json.loads((tmp_path / "autoscaling.yaml").read_text())
    assert (config["available_node_types"]["elastic"]["min_workers"],
            config["available_node_types"]["elastic"]["max_workers"]) == (0, 5)
    assert config["idle_timeout_minutes"] == 2
    client.set_compute_requirement_tag(pool.compute_requirement_id, None)
    node_provider.refresh()
    assert "elastic" not in json.loads((tmp_path / "autoscaling.yaml").read_text())["available_node_types"]


def test_a_held_pool_is_out_of_the_autoscalers_hands(node_provider, sandbox, cluster, tmp_path):
    """While an update holds the pool, the autoscaler neither sees its nodes nor launches into it."""
    client, _, pool, group = cluster
    wait_until(lambda: executing_workers(node_provider), "the first worker executing", timeout=30, interval=0.2,
               until=lambda found: len(found) == 1)
    client.set_compute_requirement_tag(pool.compute_requirement_id, HELD_TAG)
    assert np.parse_bounds(HELD_TAG) is None
    assert node_provider.non_terminated_nodes({np.TAG_KIND: "worker"}) == []
    assert "elastic" not in json.loads((tmp_path / "autoscaling.yaml").read_text())["available_node_types"]
    assert [t["name"] for t in view(sandbox).live_tasks(group.id)] == ["node-1"], "its node runs on untouched"


def test_a_pool_is_shown_to_ray_only_once_ray_has_read_its_bounds(node_provider, sandbox, cluster, tmp_path):
    """Ray reads the config at the start of an update, then asks for the nodes: a pool new to
    the config (or back from a hold, or with new bounds) shown at once would be judged by a
    config without it (its nodes removed as an unknown type) or by its old bounds."""
    client, _, pool, _ = cluster
    wait_until(lambda: view(sandbox).live_tasks(cluster[3].id)[0]["status"], "the first task executing",
               timeout=30, interval=0.2, until=lambda status: status == "EXECUTING")
    workers = {np.TAG_KIND: "worker"}
    assert node_provider.non_terminated_nodes(workers) == [], "new to Ray: not shown on its first update"
    assert len(node_provider.non_terminated_nodes(workers)) == 1, "shown from the next one"
    client.set_compute_requirement_tag(pool.compute_requirement_id, bounds_tag(2, 2, timedelta(seconds=20)))
    assert node_provider.non_terminated_nodes(workers) == [], "new bounds: not shown while Ray holds the old"
    config = json.loads((tmp_path / "autoscaling.yaml").read_text())["available_node_types"]["elastic"]
    assert (config["min_workers"], config["max_workers"]) == (2, 2)
    assert len(node_provider.non_terminated_nodes(workers)) == 1


def test_a_launch_decided_before_a_hold_launches_nothing(node_provider, sandbox, cluster):
    """Ray decides a launch on the last refresh; the bounds are read again just before it."""
    client, _, pool, group = cluster
    ray_holds_the_pools(node_provider)
    for tag in (HELD_TAG, bounds_tag(1, 2, timedelta(seconds=20))):
        client.set_compute_requirement_tag(pool.compute_requirement_id, tag)
        assert node_provider.create_node({}, {np.TAG_TYPE: "elastic", np.TAG_KIND: "worker"}, 1) is None, tag
    assert [t["name"] for t in view(sandbox).live_tasks(group.id)] == ["node-1"]
    assert view(sandbox).pool(pool.id)["targetNodeCount"] == 1
    ray_update(node_provider)
    assert node_provider.create_node({}, {np.TAG_TYPE: "elastic", np.TAG_KIND: "worker"}, 1) is None, \
        "not before Ray holds the new bounds: it read the config of the previous update"
    assert node_provider.non_terminated_nodes({np.TAG_KIND: "worker"}) != [], "from the next update, it does"
    assert len(node_provider.create_node({}, {np.TAG_TYPE: "elastic", np.TAG_KIND: "worker"}, 1)) == 1, \
        "and launches again"


def test_a_shrink_begun_before_a_hold_is_finished_and_the_provider_sees_it_settle(node_provider, sandbox, cluster):
    """The update that holds the pool waits until its target is its live tasks: the autoscaler
    finishes the shrink it had begun (resizing the held pool) once the node is gone."""
    client, _, pool, group = cluster
    ray_holds_the_pools(node_provider)
    node_provider.create_node({}, {np.TAG_TYPE: "elastic", np.TAG_KIND: "worker"}, 1)
    workers = wait_until(lambda: executing_workers(node_provider), "two workers executing", timeout=30,
                         interval=0.2, until=lambda found: len(found) == 2)
    node_provider.terminate_nodes([workers[-1]])
    client.set_compute_requirement_tag(pool.compute_requirement_id, HELD_TAG)
    finishing = wait_until(lambda: (node_provider.refresh(), view(sandbox).pool(pool.id)["targetNodeCount"])[1],
                           "the held pool resized to its live tasks", timeout=60, interval=0.5,
                           until=lambda target: target == 1)
    assert finishing == 1
    client.wait_until_pool_matches_tasks(pool.id, group.id, timeout_seconds=5)
    assert [t["name"] for t in view(sandbox).live_tasks(group.id)] == ["node-1"]


def test_resources_the_pools_script_states_are_in_the_config_for_scaling_from_zero(node_provider, tmp_path):
    assert np.declared_resources("ray start --address=x --num-cpus=2 --num-gpus='1' \\\n"
                                 "  --resources='{\"pool_a\": 1, \"bad\": \"x\"}' --block") == \
        {"CPU": 2, "GPU": 1, "pool_a": 1}
    assert np.declared_resources("ray start --address=x --block  # --num-cpus for each worker") == {}
    assert np.declared_resources("ray start --num-cpus=$CPUS") == {}, "left to Ray: learnt from a node"
    node_provider.refresh()
    config = json.loads((tmp_path / "autoscaling.yaml").read_text())
    assert config["available_node_types"]["elastic"]["resources"] == {}, "the fixture's script states none"


def test_bounds_tag_round_trips_through_the_node_providers_reading():
    assert np.parse_bounds(bounds_tag(0, 12, timedelta(minutes=5))) == (0, 12, 300)
    assert np.parse_bounds("npc-elastic") is None
    assert len(bounds_tag(10000, 10000, timedelta(days=7))) <= 60, "a YellowDog tag holds at most 60 characters"


def test_a_wrong_key_is_an_error_naming_the_call_and_never_the_secret(sandbox, cluster, tmp_path):
    api = np.YellowDogApi(sandbox.url, KEY[0], "not-the-secret")
    with pytest.raises(np.YellowDogApiError) as raised:
        api.get(f"work/requirements/{cluster[1].id}")
    assert "GET work/requirements" in str(raised.value) and "not-the-secret" not in str(raised.value)


def test_an_import_reads_the_bounds_back_from_the_tag():
    from raydog.autoscaler.shipping import bounds_block

    assert bounds_block(bounds_tag(2, 7, timedelta(seconds=90))) == {"min_nodes": 2, "max_nodes": 7,
                                                                    "idle_timeout": "90s"}
    assert bounds_block("npc-elastic") is None and bounds_block(None) is None
    assert bounds_block("x-raydog-autoscaling-1-2-3") is None


def test_a_refused_request_for_too_many_calls_is_tried_again(sandbox, cluster):
    """429 means nothing was done: the node provider tries again, so a rate-limited platform only slows it."""
    sandbox.set_faults("429=0.6,seed=5,retry_after=0,routes=GET /work/requirements/{id}")
    sandbox.reset_requests()
    api = np.YellowDogApi(sandbox.url, *KEY)
    for _ in range(8):
        assert api.get(f"work/requirements/{cluster[1].id}")["id"] == cluster[1].id
    assert sandbox.requests()["routes"]["GET /work/requirements/{id}"] > 8, "some were refused and tried again"
