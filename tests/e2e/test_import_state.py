"""Migration from RayDog's saved JSON state: a cluster built the way RayDog builds it is
adopted by Terraform with `raydog import-state`, resized, and destroyed, leaving nothing live.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

from harness.terraform import REPO
from raydog_helpers import build_raydog_cluster, raydog_client, shut_down_pool
from sshd_helpers import free_port

NAMESPACE = "raydog-migrate"
# The provider's import before it gave RayDog's <cluster>-NN-wrkrs pools a valid name.


def import_state(tf, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "raydog.cli", "import-state", *args], env=tf.env,
                          capture_output=True, text=True, timeout=120, check=False)


def live(sandbox) -> dict:
    return sandbox.state()["live"]


def live_tasks_of(client, task_group_id: str) -> int:
    from yellowdog_client.model import TaskSearch, TaskStatus

    tasks = client.work_client.find_tasks(TaskSearch(taskGroupId=task_group_id))
    return sum(1 for t in tasks if t.status in (TaskStatus.EXECUTING, TaskStatus.READY, TaskStatus.PENDING,
                                                 TaskStatus.ALLOCATED, TaskStatus.DOWNLOADING))


def state_resources(tf) -> dict[str, dict]:
    """Address -> attributes of the root module's resources, from the local state file."""
    state = json.loads((tf.workdir / "terraform.tfstate").read_text())
    return {f"{r['type']}.{r['name']}": r["instances"][0]["attributes"] for r in state["resources"]
            if r["mode"] == "managed"}


def test_raydog_cluster_is_adopted_resized_and_destroyed_by_terraform(sandbox, terraform, tmp_path):
    client = raydog_client(sandbox.url, sandbox.key_id, sandbox.key_secret)
    build = build_raydog_cluster(client, "rd", NAMESPACE, [2, 3, 1], tag="team-a")
    # A pool RayDog removed after saving its state (remove_worker_pool): a stale id.
    removed = build.worker_pool_ids["worker-nodes-03"]
    state_file = build.save_state_to_json_file(tmp_path / "raydog-state.json")
    shut_down_pool(client, removed)
    assert json.loads(state_file.read_text())["worker_pool_ids"][-2:] == [build.head_pool_id,
                                                                         build.observability_pool_id]

    result = import_state(terraform, str(state_file), "--dir", str(terraform.workdir))
    assert result.returncode == 0, result.stderr
    assert f"skipped {removed}: worker pool rd-03-wrkrs is" in result.stdout
    imports = (terraform.workdir / "imports.tf").read_text()
    wr = build.work_requirement_id
    for target, pool_id in [("raydog_cluster.this", None), ("raydog_head.this", build.head_pool_id),
                            ("raydog_observability.this", build.observability_pool_id),
                            ("raydog_worker_pool.worker_nodes_01", build.worker_pool_ids["worker-nodes-01"]),
                            ("raydog_worker_pool.worker_nodes_02", build.worker_pool_ids["worker-nodes-02"])]:
        assert f'  to = {target}\n  id = "{wr if pool_id is None else f"{wr}/{pool_id}"}"' in imports
    assert removed not in imports.split("# skipped")[0]

    terraform.init()
    plan = terraform.run("plan", "-input=false", "-no-color", "-generate-config-out=generated.tf", check=False)
    assert plan.returncode == 0, plan.output
    assert "Plan: 5 to import, 0 to add, 0 to change, 0 to destroy." in plan.stdout

    linked = import_state(terraform, str(state_file), "--dir", str(terraform.workdir), "--link")
    assert linked.returncode == 0, linked.stderr
    generated = (terraform.workdir / "generated.tf").read_text()
    assert 'name                            = "worker-nodes-01"' in generated
    assert "head_private_ip                 = raydog_head.this.private_ip" in generated
    assert wr not in generated.replace(f'from "{wr}', "")  # only in the "generated from" comments

    applied = terraform.apply()
    assert "Resources: 5 imported, 0 added, 0 changed, 0 destroyed." in applied.stdout
    assert terraform.plan_exitcode().returncode == 0  # adopted: nothing to change

    adopted = state_resources(terraform)
    pool_02 = adopted["raydog_worker_pool.worker_nodes_02"]
    assert (pool_02["yellowdog_name"], pool_02["node_count"]) == ("rd-02-wrkrs", 3)
    assert adopted["raydog_head.this"]["public_ip"] == build.head_public_ip
    # `raydog tunnel --terraform-dir` finds the adopted head in the state (no outputs here).
    port = free_port()
    tunnel = subprocess.run([sys.executable, "-m", "raydog.cli", "tunnel", "--terraform-dir", str(terraform.workdir),
                             "--ssh-port", str(port)], env=terraform.env, capture_output=True, text=True,
                            timeout=60, check=False)
    assert tunnel.returncode == 1
    assert f"cannot reach the SSH server at {build.head_public_ip}:{port}" in tunnel.stderr

    # Terraform now owns the cluster: shrink a pool in place (RayDog provisioned it with maxNodes = 3).
    (terraform.workdir / "generated.tf").write_text(generated.replace(
        "node_count                      = 3", "node_count                      = 2"))
    resized = terraform.apply()
    assert "raydog_worker_pool.worker_nodes_02 will be updated in-place" in resized.stdout
    assert "Resources: 0 added, 1 changed, 0 destroyed." in resized.stdout
    assert live_tasks_of(client, pool_02["task_group_id"]) == 2

    terraform.destroy()
    assert live(sandbox) == {"workRequirements": 0, "workerPools": 0, "computeRequirements": 0,
                             "instances": 0, "nodes": 0, "tasks": 0}
    client.close()


def test_raydog_cluster_is_adopted_into_the_module(sandbox, terraform, tmp_path):
    client = raydog_client(sandbox.url, sandbox.key_id, sandbox.key_secret)
    build = build_raydog_cluster(client, "rdm", NAMESPACE, [2], enable_observability=False)
    state_file = build.save_state_to_json_file(tmp_path / "raydog-state.json")

    result = import_state(terraform, str(state_file), "--dir", str(terraform.workdir), "--module", "module.ray",
                          "--module-source", str(REPO / "terraform" / "modules" / "raydog"))
    assert result.returncode == 0, result.stderr
    imports = (terraform.workdir / "imports.tf").read_text()
    assert "  to = module.ray.raydog_cluster.this\n" in imports
    assert "  to = module.ray.raydog_head.this\n" in imports
    assert '  to = module.ray.raydog_worker_pool.this["worker-nodes-01"]\n' in imports
    call = (terraform.workdir / "cluster.tf").read_text()
    assert 'module "ray" {' in call and '"worker-nodes-01" = {' in call
    assert re.search(r"\n      node_count += 2\n", call)  # terraform fmt-ed
    assert (terraform.workdir / "scripts" / "head.sh").read_text().startswith("#!/usr/bin/env bash")

    terraform.init()
    plan = terraform.plan_json()
    imported = {rc["address"] for rc in plan["resource_changes"] if rc["change"].get("importing")}
    assert imported == {"module.ray.raydog_cluster.this", "module.ray.raydog_head.this",
                        'module.ray.raydog_worker_pool.this["worker-nodes-01"]'}
    assert all(actions in (["no-op"], ["update"]) for actions in
               [rc["change"]["actions"] for rc in plan["resource_changes"]])
    terraform.apply()
    assert terraform.plan_exitcode().returncode == 0
    terraform.destroy()
    assert live(sandbox)["workerPools"] == 0 and live(sandbox)["tasks"] == 0
    client.close()


def test_a_cluster_raydog_already_shut_down_is_reported(sandbox, terraform, tmp_path):
    client = raydog_client(sandbox.url, sandbox.key_id, sandbox.key_secret)
    build = build_raydog_cluster(client, "gone", NAMESPACE, [1], enable_observability=False)
    state_file = build.save_state_to_json_file(tmp_path / "raydog-state.json")
    # RayDogClusterProxy.shut_down(): cancel the work requirement, then every pool.
    client.work_client.cancel_work_requirement_by_id(build.work_requirement_id, True)
    for pool_id in build.saved_state()["worker_pool_ids"]:
        shut_down_pool(client, pool_id)

    result = import_state(terraform, str(state_file), "--dir", str(terraform.workdir))
    assert result.returncode == 1
    assert re.search(rf"skipped {re.escape(build.work_requirement_id)}: work requirement is (CANCELLING|CANCELLED)",
                     result.stdout)
    assert "raydog import-state: nothing to import: the RayDog cluster gone is gone" in result.stderr
    assert not (terraform.workdir / "imports.tf").exists()
    client.close()


def test_a_file_that_is_not_raydog_state_is_refused(terraform, tmp_path):
    state_file = tmp_path / "other.json"
    state_file.write_text(json.dumps({"cluster_name": "x", "worker_pool_ids": []}))
    result = import_state(terraform, str(state_file), "--dir", str(terraform.workdir))
    assert result.returncode == 1
    assert "is not RayDog saved state: cluster_namespace, work_requirement_id missing" in result.stderr
