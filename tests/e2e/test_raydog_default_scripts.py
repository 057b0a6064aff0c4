"""RayDog's own default node scripts, unmodified, through the provider in exec mode.

The scripts below are written in the style of yellowdog-ray's examples/builder/scripts:
plain `ray start` with Ray's fixed ports and nothing sandbox-specific. The observability
node starts a Ray head of its own on port 6379 (as RayDog's does, to have Ray write its
Grafana dashboards), which only works because every exec-mode node has its own network.
Each Ray node must register its YellowDog private IP, a Ray job must run across the
workers, and destroy must end every task gracefully (its EXIT trap runs `ray stop`) and
leave no Ray process.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import psutil
import pytest
from harness.platform_view import view

pytestmark = [pytest.mark.exec, pytest.mark.xdist_group("exec")]

HEAD = """#!/usr/bin/env bash
trap "ray stop; echo Ray stopped" EXIT
set -euo pipefail
source /opt/yellowdog/agent/venv/bin/activate
ray start --head --port=6379 --num-cpus=0 --memory=0 --dashboard-host=0.0.0.0 --disable-usage-stats --block
"""

WORKER = """#!/usr/bin/env bash
trap "ray stop; echo Ray stopped" EXIT
set -euo pipefail
source /opt/yellowdog/agent/venv/bin/activate
ray start --address="$RAY_HEAD_IP:6379" --num-cpus=1 --disable-usage-stats --block
"""

OBSERVABILITY = """#!/usr/bin/env bash
trap "ray stop; echo Ray stopped" EXIT
set -euo pipefail
source /opt/yellowdog/agent/venv/bin/activate
# RayDog's observability node starts a Ray head of its own so that Ray writes its Grafana
# dashboards and Prometheus config; Prometheus and Grafana would then start from them.
ray start --head --port=6379 --num-cpus=0 --dashboard-host=0.0.0.0 --disable-usage-stats --block
"""


def heredoc(text: str) -> str:
    return "<<-EOT\n" + text.replace("${", "$${") + "EOT"


CONFIG = f"""
provider "raydog" {{}}

resource "raydog_cluster" "c" {{
  name      = "rdstyle"
  namespace = "tests"
}}

resource "raydog_observability" "obs" {{
  cluster_id                      = raydog_cluster.c.id
  cluster_name                    = raydog_cluster.c.name
  compute_requirement_template_id = "sandbox/ray-observability"
  start_script                    = {heredoc(OBSERVABILITY)}
}}

resource "raydog_head" "h" {{
  cluster_id                      = raydog_cluster.c.id
  cluster_name                    = raydog_cluster.c.name
  compute_requirement_template_id = "sandbox/ray-head"
  observability_host              = raydog_observability.obs.private_ip
  ray_start_script                = {heredoc(HEAD)}
  timeouts {{
    create = "3m"
  }}
}}

resource "raydog_worker_pool" "w" {{
  cluster_id                      = raydog_cluster.c.id
  cluster_name                    = raydog_cluster.c.name
  name                            = "w"
  compute_requirement_template_id = "sandbox/ray-worker"
  head_private_ip                 = raydog_head.h.private_ip
  observability_host              = raydog_observability.obs.private_ip
  task_script                     = {heredoc(WORKER)}
  node_count                      = 2
  wait_for_nodes                  = true
}}

output "client_address" {{
  value = raydog_head.h.client_address
}}
"""


def ray_job(client_address: str, expected_nodes: int, attempts: int = 3) -> dict:
    last = ""
    for _ in range(attempts):
        proc = subprocess.run([sys.executable, "-m", "raydog.demo", "job", client_address, str(expected_nodes)], check=False,
                              capture_output=True, text=True, timeout=300)
        if proc.returncode == 0:
            return json.loads(proc.stdout.strip().splitlines()[-1])
        last = proc.stdout[-2000:] + proc.stderr[-3000:]
    raise AssertionError(f"the Ray job failed {attempts} times:\n{last}")


def processes_of_tasks(task_ids: set[str]) -> list[psutil.Process]:
    """Live processes started by these tasks (the node agent marks each task's processes)."""
    found = []
    for proc in psutil.process_iter():
        try:
            marker = proc.environ().get("RAYDOG_SANDBOX_TASK")
            if marker in task_ids and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def test_raydog_default_scripts_form_a_cluster_on_private_ips_run_a_job_and_leave_nothing(
        terraform_factory, exec_sandbox):
    sandbox = exec_sandbox
    tf = terraform_factory("rdstyle", sandbox=sandbox)
    tf.write(CONFIG)
    tf.init()
    tf.apply()
    res = tf.resources()
    head_ip = res["raydog_head.h"]["private_ip"]
    obs_ip = res["raydog_observability.obs"]["private_ip"]
    state = sandbox.state()
    nodes = {n["id"]: n for n in state["nodes"]}
    tasks = [t for wr in state["workRequirements"] for g in wr["taskGroups"] for t in g["tasks"]
             if t["status"] == "EXECUTING"]
    assert len(tasks) == 4, "observability, head and two workers execute"
    worker_ips = {n["privateIp"] for n in view(sandbox).live_nodes(res["raydog_worker_pool.w"]["id"])}
    assert len(worker_ips) == 2 and len({head_ip, obs_ip, *worker_ips}) == 4

    # Every `ray start` registered its node's YellowDog private IP.
    deadline = time.monotonic() + 60
    outputs = {}
    while time.monotonic() < deadline:
        outputs = {t["id"]: re.sub(r"\x1b\[[0-9;]*m", "", sandbox.runtime.task_output(t["id"]) or "") for t in tasks}
        if all("Local node IP" in out for out in outputs.values()):
            break
        time.sleep(0.5)
    for task in tasks:
        ip = nodes[task["nodeId"]]["privateIp"]
        assert f"Local node IP: {ip}" in outputs[task["id"]], outputs[task["id"]][-2000:]

    job = ray_job(tf.outputs()["client_address"], 3)
    assert set(job["alive_node_ips"]) == {head_ip} | worker_ips, "the observability node's Ray is its own"
    assert set(job["task_node_ips"]) == worker_ips, "the job ran across the workers"
    assert abs(job["pi"] - 3.14159) < 0.05

    task_ids = {t["id"] for t in tasks}
    assert processes_of_tasks(task_ids), "the nodes' Ray processes are found by their task marker"
    tf.destroy()
    assert view(sandbox).nothing_live(), view(sandbox).live
    deadline = time.monotonic() + 30
    while processes_of_tasks(task_ids) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert processes_of_tasks(task_ids) == [], "no Ray process of the cluster is left after destroy"
    ended = {t["id"]: t for wr in sandbox.state()["workRequirements"]  # a pool's delete drops its group
             for g in [*wr["taskGroups"], *wr["removedTaskGroups"]] for t in g["tasks"]}
    for task_id in task_ids:
        assert ended[task_id]["status"] == "ABORTED", ended[task_id]
        assert "Ray stopped" in (sandbox.runtime.task_output(task_id) or ""), f"{task_id}: its EXIT trap ran"
