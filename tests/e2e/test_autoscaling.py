"""Ray's own autoscaler on the head, with RayDog's YellowDog node provider, sizing a pool by demand.

Real Terraform applies a cluster to the sandbox in exec mode; the head runs `ray start --head
--autoscaling-config` and the monitor calls the sandbox's API from the head's network namespace
(through the bridge address, as a real head calls YellowDog) with its own application key. A
Ray job whose placement group needs more nodes than the pool has grows the pool to max_nodes;
once idle, the pool goes back to min_nodes; the plan stays empty at both points.
"""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import time

import psutil
import pytest

from harness.config import Expr, cluster_config, node_script, output
from harness.fixtures import skip_without_exec_nodes
from harness.platform_view import view
from harness.waits import wait_until

pytestmark = [pytest.mark.exec, pytest.mark.xdist_group("exec")]

AUTOSCALER_KEY = ("autoscaler", "autoscaler-secret-6f1c2a")
IDLE_TIMEOUT = "15s"

# A job that needs ``nodes`` one-CPU workers at once: a STRICT_SPREAD placement group is pending
# until that many nodes exist, which is demand Ray's autoscaler answers by launching nodes.
JOB = """
import json, sys, time
import ray
from ray.util.placement_group import placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

nodes = int(sys.argv[2])
ray.init(address=sys.argv[1])
started = time.monotonic()
group = placement_group([{"CPU": 1}] * nodes, strategy="STRICT_SPREAD")
ray.get(group.ready(), timeout=600)
ready = time.monotonic() - started

@ray.remote(num_cpus=1)
def square(i):
    return i * i, ray.util.get_node_ip_address()

results = ray.get([square.options(scheduling_strategy=PlacementGroupSchedulingStrategy(group, i)).remote(i)
                   for i in range(nodes)])
print(json.dumps({"squares": [r[0] for r in results], "ips": sorted({r[1] for r in results}),
                  "ready_seconds": ready}))
"""


@pytest.fixture
def autoscaling_sandbox(sandbox_factory, tmp_path):
    """An exec-mode sandbox that also accepts the autoscaler's own key."""
    skip_without_exec_nodes()
    running = sandbox_factory(mode="exec", data_dir=str(tmp_path / "nodes"),
                              api_keys={"sandbox": "sandbox-secret", AUTOSCALER_KEY[0]: AUTOSCALER_KEY[1]})
    if running.node_url is None:
        pytest.skip("exec nodes share the host's network here: the head cannot reach the API on its own address")
    return running


def cluster(sandbox, min_nodes: int, max_nodes: int) -> str:
    return "\n".join([
        node_script("head", template="head"),
        node_script("worker", template="worker", vars={"num_cpus": "1"}),
        cluster_config(
            "autosc", {"elastic": None}, head_timeout="3m",
            head_attrs={"ray_start_script": Expr("data.raydog_node_script.head.content"),
                        "autoscaler_application_key_id": AUTOSCALER_KEY[0],
                        "autoscaler_application_key_secret": AUTOSCALER_KEY[1],
                        "autoscaler_api_url": sandbox.node_url},
            # No head_private_ip: the pool is created with the head, learns the head's address from the
            # platform before its task template is written, and its create waits for the head's task.
            pool_attrs={"task_script": Expr("data.raydog_node_script.worker.content"), "head_private_ip": None,
                        "autoscaling": {"min_nodes": min_nodes, "max_nodes": max_nodes,
                                        "idle_timeout": IDLE_TIMEOUT}}),
        output("client_address", Expr("raydog_head.h.client_address")),
    ])


def run_job(client_address: str, nodes: int) -> dict:
    proc = subprocess.run([sys.executable, "-c", JOB, client_address, str(nodes)], capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def live_tasks(sandbox, group_id: str) -> list[dict]:
    return view(sandbox).live_tasks(group_id)


def autoscaler_monitors(cluster_id: str) -> list[psutil.Process]:
    """Ray's monitor processes started for the cluster's head (its environment names the cluster)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if any("monitor.py" in part for part in proc.info["cmdline"] or []) \
                    and proc.environ().get("RAYDOG_CLUSTER_ID") == cluster_id:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def assert_no_diff(tf, sandbox, pool: dict, what: str) -> None:
    """plan -detailed-exitcode is 0; otherwise say what the plan would change and what is live."""
    result = tf.plan_exitcode()
    assert result.returncode == 0, (f"{what}; live tasks {len(live_tasks(sandbox, pool['task_group_id']))}:\n"
                                    f"{result.stdout[-4000:]}")


def test_pool_grows_to_max_under_demand_and_returns_to_min_when_idle(autoscaling_sandbox, terraform_factory,
                                                                    tmp_path):
    sandbox = autoscaling_sandbox
    tf = terraform_factory("autoscale", sandbox=sandbox)
    tf.write(cluster(sandbox, 1, 3))
    tf.init()
    tf.apply()
    res = tf.resources()
    pool, head = res["raydog_worker_pool.elastic"], res["raydog_head.h"]
    assert pool["node_count"] == 1 and len(live_tasks(sandbox, pool["task_group_id"])) == 1
    shown = tf.run("plan", "-no-color", "-input=false")
    assert AUTOSCALER_KEY[1] not in shown.output, "the key's secret never shows in a plan"
    monitors = autoscaler_monitors(res["raydog_cluster.c"]["id"])
    assert len(monitors) == 1, "Ray's monitor runs on the head with the cluster's autoscaler config"
    assert AUTOSCALER_KEY[1] not in json.dumps(monitors[0].environ()), "the secret is not in Ray's environment"
    key_files = list(tmp_path.glob("nodes/nodes/*/data/workers/*/raydog-autoscaler/autoscaler.key"))
    assert len(key_files) == 1 and stat.S_IMODE(key_files[0].stat().st_mode) == 0o600

    started = time.monotonic()
    job = run_job(tf.outputs()["client_address"], 3)
    grown = time.monotonic() - started
    assert job["squares"] == [0, 1, 4]
    assert len(job["ips"]) == 3, job
    nodes = {n["privateIp"] for n in view(sandbox).live_nodes(pool["id"])}
    assert set(job["ips"]) <= nodes, (job, nodes)
    assert len(live_tasks(sandbox, pool["task_group_id"])) == 3
    print(f"scale-up: 1 -> 3 nodes, placement group ready after {job['ready_seconds']:.1f} s, job {grown:.1f} s")
    assert_no_diff(tf, sandbox, pool, "no diff while the autoscaled size is inside the bounds")

    idle_from = time.monotonic()
    wait_until(lambda: len(live_tasks(sandbox, pool["task_group_id"])), "the pool back at min_nodes",
               timeout=240, interval=2, until=lambda count: count == 1)
    wait_until(lambda: len(view(sandbox).live_nodes(pool["id"])), "the removed nodes shut down",
               timeout=120, interval=2, until=lambda count: count == 1)
    print(f"scale-down: 3 -> 1 nodes {time.monotonic() - idle_from:.1f} s after the job (idle_timeout "
          f"{IDLE_TIMEOUT})")
    wait_until(lambda: view(sandbox).pool(pool["id"]).get("targetNodeCount"), "the pool resized down",
               timeout=60, interval=1, until=lambda target: target == 1)
    assert_no_diff(tf, sandbox, pool, "no diff once the pool is back inside its bounds")

    # New bounds are an in-place update of the pool alone; a size below the new minimum is raised.
    tf.write(cluster(sandbox, 2, 2))
    plan = tf.plan_json()
    actions = {c["address"]: c["change"]["actions"] for c in plan["resource_changes"]}
    assert actions["raydog_worker_pool.elastic"] == ["update"] and actions["raydog_head.h"] == ["no-op"], actions
    tf.apply()
    assert tf.resources()["raydog_head.h"]["id"] == head["id"]
    # One actor moves the pool: the update holds it, raises it to the new minimum, then hands it
    # back with the new bounds; the running autoscaler adds nothing of its own.
    assert len(live_tasks(sandbox, pool["task_group_id"])) == 2, "raised to the new min_nodes by the update"
    config_file = next(tmp_path.glob("nodes/nodes/*/data/workers/*/raydog-autoscaler/autoscaling.yaml"))
    wait_until(lambda: json.loads(config_file.read_text())["available_node_types"]["elastic"],
               "the running autoscaler has the new bounds", timeout=60, interval=1,
               until=lambda node_type: (node_type["min_workers"], node_type["max_workers"]) == (2, 2))
    assert_no_diff(tf, sandbox, pool, "no diff after the bounds changed in place")
    counts = []
    for _ in range(10):  # 20 s: more than the idle timeout and several autoscaler rounds
        time.sleep(2)
        counts.append(len(live_tasks(sandbox, pool["task_group_id"])))
    assert counts == [2] * 10, f"the pool stays at 2 nodes with the autoscaler running: {counts}"
    assert_no_diff(tf, sandbox, pool, "still no diff")

    tf.destroy()
    assert view(sandbox).nothing_live(), view(sandbox).live


def test_a_pool_scales_from_zero_nodes_on_demand_and_back_to_zero(autoscaling_sandbox, terraform_factory, tmp_path):
    """min_nodes = 0: no node runs until a job asks; Ray knows what a node would bring from the
    pool's script (the worker template's num_cpus, `ray start --num-cpus=1`)."""
    sandbox = autoscaling_sandbox
    tf = terraform_factory("fromzero", sandbox=sandbox)
    tf.write(cluster(sandbox, 0, 2))
    tf.init()
    tf.apply()
    pool = tf.resources()["raydog_worker_pool.elastic"]
    assert pool["node_count"] == 0 and live_tasks(sandbox, pool["task_group_id"]) == []
    config_file = wait_until(
        lambda: next(tmp_path.glob("nodes/nodes/*/data/workers/*/raydog-autoscaler/autoscaling.yaml"), None),
        "the autoscaler's config", timeout=60, interval=1, until=lambda found: found is not None)
    wait_until(lambda: json.loads(config_file.read_text())["available_node_types"].get("elastic", {}),
               "the pool's node type with the resources its script states", timeout=60, interval=1,
               until=lambda node_type: node_type.get("resources") == {"CPU": 1})

    started = time.monotonic()
    job = run_job(tf.outputs()["client_address"], 2)
    assert job["squares"] == [0, 1] and len(job["ips"]) == 2, job
    assert set(job["ips"]) <= {n["privateIp"] for n in view(sandbox).live_nodes(pool["id"])}
    print(f"scale-up: 0 -> 2 nodes, placement group ready after {job['ready_seconds']:.1f} s, job "
          f"{time.monotonic() - started:.1f} s")
    assert_no_diff(tf, sandbox, pool, "no diff at 2 nodes, inside 0..2")

    idle_from = time.monotonic()
    wait_until(lambda: len(view(sandbox).live_nodes(pool["id"])), "the pool back at zero nodes",
               timeout=240, interval=2, until=lambda count: count == 0)
    print(f"scale-down: 2 -> 0 nodes {time.monotonic() - idle_from:.1f} s after the job")
    assert live_tasks(sandbox, pool["task_group_id"]) == []
    assert_no_diff(tf, sandbox, pool, "no diff at zero nodes")
    tf.destroy()
    assert view(sandbox).nothing_live(), view(sandbox).live
