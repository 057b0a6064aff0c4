"""A real Ray cluster from terraform apply: the sandbox in exec mode runs every node as an
isolated local node executing the built-in scripts, and Ray forms across them.

These tests need namespaces (root or user namespaces); CI runs as root. Every node has its
own network namespace, so Ray's fixed ports never clash; the tests are heavy (real Ray on
every node), so they run one at a time (xdist group "exec").
"""

from __future__ import annotations

import json
import subprocess
import sys

import psutil
import pytest

from harness.config import Expr, cluster_config, node_script, output
from harness.platform_view import view
from harness.waits import wait_until

pytestmark = [pytest.mark.exec, pytest.mark.xdist_group("exec")]

RAY_PROCESS_NAMES = ("raylet", "gcs_server", "dashboard", "ray::", "default_worker", "log_monitor")


@pytest.fixture
def exec_terraform(terraform_factory, exec_sandbox):
    return terraform_factory("exec", sandbox=exec_sandbox)


def cluster(pools: dict[str, int], head_script: str | None = None) -> str:
    """The built-in node scripts (or ``head_script``) on a head and one pool per entry of ``pools``."""
    script = head_script if head_script else Expr("data.raydog_node_script.head.content")
    return "\n".join([
        node_script("head", template="head"),
        node_script("worker", template="worker", vars={"num_cpus": "1"}),
        cluster_config("execc", pools, wait_for_nodes=True, head_timeout="3m",
                       head_attrs={"ray_start_script": script},
                       pool_attrs={"task_script": Expr("data.raydog_node_script.worker.content")}),
        output("client_address", Expr("raydog_head.h.client_address")),
    ])


def ray_job(client_address: str, expected_nodes: int, attempts: int = 3) -> dict:
    """Run the demo's pi job in a separate driver process; retry Ray client connect flakes."""
    last = ""
    for _ in range(attempts):
        proc = subprocess.run([sys.executable, "-m", "raydog.demo", "job", client_address, str(expected_nodes)],
                              capture_output=True, text=True, timeout=300)
        if proc.returncode == 0:
            return json.loads(proc.stdout.strip().splitlines()[-1])
        last = proc.stdout[-2000:] + proc.stderr[-3000:]
    raise AssertionError(f"the Ray job failed {attempts} times:\n{last}")


def pool_ips(sandbox, pool_id: str) -> set[str]:
    return {n["privateIp"] for n in view(sandbox).live_nodes(pool_id)}


def ray_processes() -> list[psutil.Process]:
    """Ray's processes under this test process (the sandbox runs in it, and every exec node is
    a process tree under it): another engineer's or test's Ray on the machine does not count."""
    found = []
    for proc in psutil.Process().children(recursive=True):
        try:
            text = " ".join([proc.name(), *proc.cmdline()])
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if any(name in text for name in RAY_PROCESS_NAMES) and "pytest" not in text:
            found.append(proc)
    return found


def test_terraform_builds_a_ray_cluster_that_scales_and_is_gone_after_destroy(exec_terraform, exec_sandbox):
    tf, sandbox = exec_terraform, exec_sandbox
    tf.write(cluster({"alpha": 1, "beta": 1}))
    tf.init()
    tf.apply()
    client = tf.outputs()["client_address"]
    res = tf.resources()
    head_ip = res["raydog_head.h"]["private_ip"]
    alpha, beta = res["raydog_worker_pool.alpha"]["id"], res["raydog_worker_pool.beta"]["id"]

    job = ray_job(client, 3)
    assert job["alive_nodes"] == 3
    assert set(job["alive_node_ips"]) == {head_ip} | pool_ips(sandbox, alpha) | pool_ips(sandbox, beta)
    assert set(job["task_node_ips"]) == pool_ips(sandbox, alpha) | pool_ips(sandbox, beta), "tasks run on workers"
    assert abs(job["pi"] - 3.14159) < 0.05

    tf.write(cluster({"alpha": 2, "beta": 1}))
    tf.apply()
    job = ray_job(client, 4)
    assert job["alive_nodes"] == 4 and len(pool_ips(sandbox, alpha)) == 2
    assert pool_ips(sandbox, alpha) <= set(job["alive_node_ips"])

    tf.write(cluster({"alpha": 1, "beta": 1}))
    tf.apply()
    job = ray_job(client, 3)
    assert job["alive_nodes"] == 3 and set(job["alive_node_ips"]) == {head_ip} | pool_ips(sandbox, alpha) | pool_ips(sandbox, beta)

    tf.write(cluster({"alpha": 1}))
    tf.apply()
    job = ray_job(client, 2)
    assert set(job["alive_node_ips"]) == {head_ip} | pool_ips(sandbox, alpha), "beta's node left Ray"
    assert set(job["task_node_ips"]) == pool_ips(sandbox, alpha), "the head and alpha keep running jobs"
    assert any("raylet" in " ".join(p.cmdline()) for p in ray_processes()), "the check below sees this cluster's Ray"

    tf.destroy()
    assert view(sandbox).nothing_live(), view(sandbox).live
    # No Ray process of the cluster may remain after destroy.
    wait_until(ray_processes, "every Ray process of the cluster has ended", timeout=30, interval=0.5,
               until=lambda running: running == [])

    sandbox.stop()
    leftovers = [p for p in psutil.Process().children(recursive=True) if p.is_running()
                 and p.status() != psutil.STATUS_ZOMBIE and "terraform" not in " ".join(p.cmdline())]
    assert leftovers == [], f"stopping the sandbox must leave no process: {leftovers}"


def test_head_script_that_exits_non_zero_fails_the_apply_with_exit_code_and_output(exec_terraform, exec_sandbox):
    exec_terraform.write(cluster({}, head_script="echo starting the head\necho boom-marker >&2\nexit 3"))
    exec_terraform.init()
    result = exec_terraform.apply(check=False)
    assert result.returncode == 1
    assert "exit code 3" in result.output
    assert "boom-marker" in result.output, "the tail of the task's output is in the error"
    assert "execc-head" not in view(exec_sandbox).live_pools()


def test_make_demo_runs_a_ray_job_on_a_fresh_cluster_and_cleans_up():
    proc = subprocess.run([sys.executable, "-m", "raydog.demo"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "alive Ray nodes = 3" in proc.stdout
    assert "[demo] done" in proc.stdout
    estimate = float(proc.stdout.split("pi ~= ")[1].split(",")[0])
    assert abs(estimate - 3.14159) < 0.05
    assert ray_processes() == []
