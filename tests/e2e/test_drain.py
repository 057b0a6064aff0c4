"""Readiness at the Ray level and drain before shrink, with real Ray in exec mode through real Terraform.

A pool waits until its nodes have joined Ray (`readiness = "ray"`); lowering `node_count`
removes idle Ray nodes first and asks Ray to drain a busy one, so a long-running Ray task on
it (with no retries: a node lost under it would fail the job) finishes and the job's result
is right; destroy drains the rest and leaves nothing live.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import pytest
from e2e.test_exec_cluster import exec_terraform, pool_ips  # noqa: F401 (a fixture)
from harness.config import Expr, cluster_config, node_script, output
from harness.platform_view import view
from harness.waits import wait_until

from raydog.ray_gcs import RayGcs, RayGcsError

pytestmark = [pytest.mark.exec, pytest.mark.xdist_group("exec")]

TASK_SECONDS = 45

# N (argv[2]) 1-CPU tasks that sleep, each returning the IP of the node it ran on; max_retries=0,
# so a task whose node went away under it fails the job instead of being run again elsewhere.
DRIVER = textwrap.dedent(f"""
    import json, sys, time
    import ray
    ray.init(address=sys.argv[1])

    @ray.remote(num_cpus=1, max_retries=0)
    def long_task(i):
        time.sleep({TASK_SECONDS})
        return {{"i": i, "ip": ray.util.get_node_ip_address(), "done": time.time()}}

    print(json.dumps(ray.get([long_task.remote(i) for i in range(int(sys.argv[2]))])), flush=True)
""")


def cluster(count: int, **pool: object) -> str:
    return "\n".join([
        node_script("head", template="head"),
        node_script("worker", template="worker", vars={"num_cpus": "1"}),
        cluster_config("drainc", {"alpha": count}, wait_for_nodes=True, head_timeout="3m",
                       head_attrs={"ray_start_script": Expr("data.raydog_node_script.head.content"),
                                   "readiness": "ray"},
                       pool_attrs={"task_script": Expr("data.raydog_node_script.worker.content"),
                                   "readiness": "ray", "drain_timeout": "3m", **pool}),
        output("client_address", Expr("raydog_head.h.client_address")),
        output("ray_address", Expr("raydog_head.h.ray_address")),
    ])


def ray_nodes(address: str) -> dict[str, object]:
    """IP -> the live Ray node, as the head's GCS reports."""
    try:
        with RayGcs(address) as gcs:
            return {n.ip: n for n in gcs.nodes() if n.alive}
    except RayGcsError as exc:
        return {"error": str(exc)}


def start_driver(client_address: str, tasks: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", DRIVER, client_address, str(tasks)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def busy_workers(gcs: str, workers: set[str], count: int) -> set[str]:
    return wait_until(lambda: {ip for ip, n in ray_nodes(gcs).items() if ip in workers and n.busy > 0},
                      f"{count} long task(s) run on the workers", timeout=120, interval=0.5,
                      until=lambda ips: len(ips) == count)


def finished(driver: subprocess.Popen) -> tuple[int, str, str]:
    try:
        out, err = driver.communicate(timeout=180)
    finally:
        if driver.poll() is None:
            driver.kill()
    return driver.returncode, out, err


def shrink_under_load(tf, sandbox, drain_timeout: str, grow_from: int = 3, **pool: object) -> dict:
    """A pool of three 1-CPU workers (created with ``grow_from``, then grown) runs two long
    tasks; node_count goes to 1 meanwhile. What happened: the driver's exit code and output,
    the busy and idle workers, the plan, the apply, how long the shrink's apply took."""
    tf.write(cluster(grow_from, drain_timeout=drain_timeout, **pool))
    tf.init()
    first_plan = tf.run("plan", "-no-color").output
    tf.apply()
    if grow_from < 3:
        tf.write(cluster(3, drain_timeout=drain_timeout, **pool))
        tf.apply()
    res = tf.resources()
    pool_id, head_ip = res["raydog_worker_pool.alpha"]["id"], res["raydog_head.h"]["private_ip"]
    gcs = tf.outputs()["ray_address"]
    workers = pool_ips(sandbox, pool_id)
    # readiness = "ray": when the apply returns, every node has joined Ray already.
    joined = set(ray_nodes(gcs))
    driver = start_driver(tf.outputs()["client_address"], 2)
    busy = busy_workers(gcs, workers, 2)
    tf.write(cluster(1, drain_timeout=drain_timeout, **pool))
    plan = tf.plan_json()
    started = time.monotonic()
    result = tf.apply(check=False)
    shrink_seconds = time.monotonic() - started
    returncode, out, err = finished(driver)
    print(f"[drain] drain_timeout={drain_timeout}: the shrink's apply took {shrink_seconds:.1f}s "
          f"(tasks of {TASK_SECONDS}s)")
    assert result.returncode == 0, result.output
    return dict(gcs=gcs, first_plan=first_plan, workers=workers, head_ip=head_ip, joined=joined, busy=busy,
                idle=workers - busy, plan=plan, apply=result.output, returncode=returncode, out=out, err=err,
                kept=pool_ips(sandbox, pool_id), ray_after=set(ray_nodes(gcs)))


def planned_task_ids_unknown(plan: dict) -> bool:
    change = next(c for c in plan["resource_changes"] if c["address"] == "raydog_worker_pool.alpha")["change"]
    return change["after_unknown"].get("task_ids") is True


def test_lowering_node_count_drains_a_busy_node_so_its_long_task_finishes(exec_terraform, exec_sandbox):  # noqa: F811 (fixture)
    tf, sandbox = exec_terraform, exec_sandbox
    run = shrink_under_load(tf, sandbox, "3m")
    assert run["first_plan"].count('readiness                       = "ray"') == 2, "the plan says what is awaited"
    assert len(run["workers"]) == 3 and run["workers"] | {run["head_ip"]} <= run["joined"], run["joined"]
    assert planned_task_ids_unknown(run["plan"]), "which nodes go is Ray's idle-first choice, known after apply"

    assert run["returncode"] == 0, run["err"][-3000:]
    results = json.loads(run["out"].strip().splitlines()[-1])
    assert sorted(r["i"] for r in results) == [0, 1], results
    assert {r["ip"] for r in results} == run["busy"], "each task finished on the node it started on, none retried"
    assert len(run["kept"]) == 1 and run["kept"] <= run["busy"], f"the idle node {run['idle']} went first"
    assert run["ray_after"] & run["workers"] == run["kept"], run["ray_after"]
    assert "not drained" not in run["apply"]
    after = tf.plan_exitcode()
    assert after.returncode == 0, f"no diff after the shrink (kept {run['kept']}):\n{after.stdout[-4000:]}"

    # Destroy removes the pool first (it depends on the head) and drains its last node, busy
    # with a long task: the task finishes before the node goes.
    driver = start_driver(tf.outputs()["client_address"], 1)
    assert busy_workers(run["gcs"], run["kept"], 1) == run["kept"]
    destroyed = tf.destroy()
    returncode, out, err = finished(driver)
    assert returncode == 0, err[-3000:]
    assert [r["ip"] for r in json.loads(out.strip().splitlines()[-1])] == sorted(run["kept"])
    assert "not drained" not in destroyed.output
    assert view(sandbox).nothing_live(), view(sandbox).live


def test_without_drain_the_long_task_on_a_removed_node_is_lost(exec_terraform, exec_sandbox):  # noqa: F811 (fixture)
    """The control: drain_timeout = "0s" ends the newest nodes' tasks at once (the plan says which),
    and a task with no retries on one of them fails the job."""
    tf, sandbox = exec_terraform, exec_sandbox
    run = shrink_under_load(tf, sandbox, "0s")
    assert not planned_task_ids_unknown(run["plan"])
    assert run["returncode"] != 0, f"the job should have lost a task: {run['out']}"
    assert "NodeDiedError" in run["err"] or "died" in run["err"].lower() or "lost" in run["err"].lower(), \
        run["err"][-3000:]
    tf.destroy()
    assert view(sandbox).nothing_live(), view(sandbox).live


def test_the_drain_deadline_is_kept_and_then_the_nodes_go_anyway(exec_terraform, exec_sandbox):  # noqa: F811 (fixture)
    """drain_timeout shorter than the task: the apply waits that long, warns that the node was
    still busy, and ends it; the task with no retries is lost."""
    tf, sandbox = exec_terraform, exec_sandbox
    run = shrink_under_load(tf, sandbox, "8s", grow_from=2)
    # The growth (readiness = "ray") returned with all three in Ray.
    assert run["workers"] <= run["joined"], run["joined"]
    assert "The nodes were not drained" in run["apply"] and "still busy" in run["apply"], run["apply"][-3000:]
    assert "drain_timeout" in run["apply"]
    assert run["returncode"] != 0, f"the job should have lost a task: {run['out']}"
    assert len(run["kept"]) == 1
    tf.destroy()
    assert view(sandbox).nothing_live(), view(sandbox).live


def test_a_pool_that_learns_its_head_from_the_platform_drains_through_it(exec_terraform, exec_sandbox):  # noqa: F811 (fixture)
    """No head_private_ip (the pool depends on the cluster only; the head's address comes from
    the platform): readiness and drain reach the head's GCS at the address the pool's tasks were given."""
    tf, sandbox = exec_terraform, exec_sandbox
    run = shrink_under_load(tf, sandbox, "3m", head_private_ip=None)
    after = next(c for c in run["plan"]["resource_changes"] if c["address"] == "raydog_worker_pool.alpha")
    assert after["change"]["after"].get("head_private_ip") is None
    assert len(run["workers"]) == 3 and run["workers"] <= run["joined"], run["joined"]
    assert run["returncode"] == 0, run["err"][-3000:]
    assert len(run["kept"]) == 1 and run["kept"] <= run["busy"], f"the idle node {run['idle']} went first"
    assert "not drained" not in run["apply"] and "address is unknown" not in run["apply"], run["apply"][-3000:]
    tf.destroy()
    assert view(sandbox).nothing_live(), view(sandbox).live
