"""RayDog's builder API on Terraform, driven against the sandbox (simulate mode).

Every builder method runs here as a RayDog program calls it: build, add and remove pools
before and after the build, save the state and shut down through the proxy, adopt a
cluster RayDog built, and RayDog's behaviour for misuse (build twice, shut down twice).
"""

from __future__ import annotations

import inspect
import json
import re
import threading
import time
from datetime import timedelta

import pytest
from builder_helpers import (
    credentials,
    live_pool_ids,
    live_work_requirement_ids,
    nothing_live,
    state_resources,
)
from raydog.builder import (
    BuildTimeoutError,
    HeadNodeFailedError,
    RayDogBuilderError,
    RayDogCluster,
    RayDogClusterProxy,
    TerraformRunError,
)

HEAD_SCRIPT = "#!/usr/bin/env bash\ntrap 'ray stop' EXIT\nray start --head --port=6379 --block  # ${HOME} %{x}\n"
WORKER_SCRIPT = "#!/usr/bin/env bash\ntrap 'ray stop' EXIT\nray start --address=${RAY_HEAD_IP}:6379 --block\n"
HEAD, WORKER, OBSERVABILITY = "sandbox/ray-head", "sandbox/ray-worker", "sandbox/ray-observability"
NAMESPACE = "builder"


def new_cluster(sandbox, name: str, tmp_path, **kwargs) -> RayDogCluster:
    kwargs.setdefault("terraform_dir", tmp_path / name)
    return RayDogCluster(cluster_name=name, cluster_namespace=NAMESPACE,
                         head_node_compute_requirement_template_id=HEAD, head_node_ray_start_script=HEAD_SCRIPT,
                         **credentials(sandbox), **kwargs)


def test_cluster_is_built_grown_shrunk_and_shut_down_with_raydog_calls(shared_sandbox, tmp_path, capsys,
                                                                       builder_home):
    sandbox = shared_sandbox
    cluster = new_cluster(sandbox, "story", tmp_path, cluster_tag="team-a", cluster_lifetime=timedelta(hours=1),
                          enable_observability=True, observability_node_compute_requirement_template_id=OBSERVABILITY,
                          head_node_instance_tags={"role": "head"}, head_node_metrics_enabled=True)
    assert cluster.add_worker_pool(WORKER, WORKER_SCRIPT, 2) is None, "before build(): created by build()"
    assert cluster.add_worker_pool(WORKER, WORKER_SCRIPT, 1, worker_pool_internal_name="gpu") is None
    assert cluster.add_worker_pool(WORKER, WORKER_SCRIPT, 1, "dropped") is None
    cluster.remove_worker_pool_by_internal_name("dropped")  # before build(): just forgotten
    assert cluster.worker_pool_internal_names == ["worker-nodes-01", "gpu"]
    assert cluster.worker_pool_ids == []

    private_ip, public_ip = cluster.build(head_node_build_timeout=timedelta(minutes=2))

    assert (private_ip, public_ip) == (cluster.head_node_private_ip, cluster.head_node_public_ip)
    assert private_ip and public_ip
    state = sandbox.state()
    # yd_client: RayDog's public SDK client, for the user's own queries.
    wr = cluster.yd_client.work_client.get_work_requirement_by_id(cluster.work_requirement_id)
    assert (wr.name, wr.namespace, wr.tag) == ("story", NAMESPACE, "team-a")
    task = cluster.yd_client.work_client.get_task_by_id(cluster.head_node_task_id)
    assert task.status.name == "EXECUTING"
    assert task.taskData == HEAD_SCRIPT, "scripts reach the node as written (${...} and %{...} too)"
    node = next(n for n in state["nodes"] if n["id"] == cluster.head_node_node_id)
    assert node["workerPoolId"] == cluster.head_node_worker_pool_id and node["privateIp"] == private_ip
    assert cluster.observability_node_private_ip and cluster.observability_node_id
    first, gpu = (cluster.worker_node_worker_pools[k].worker_pool_id for k in ("worker-nodes-01", "gpu"))
    assert cluster.worker_pool_ids == [first, gpu]
    assert cluster.get_worker_pool_internal_name_by_id(gpu) == "gpu"
    assert live_pool_ids(sandbox) == {first, gpu, cluster.head_node_worker_pool_id,
                                      cluster.observability_node_worker_pool_id}
    progress = capsys.readouterr().out
    # No install step: the provider went into Terraform's implied mirror on first use.
    assert list((builder_home / ".terraform.d" / "plugins" / "registry.terraform.io" / "yellowdog" / "raydog")
                .glob("*/*/terraform-provider-raydog_v*"))
    assert "[raydog story] head node: created in" in progress
    assert "[raydog story] built: head node at" in progress

    with pytest.raises(Exception, match=r"'build\(\)' method already called"):
        cluster.build()

    extra = cluster.add_worker_pool(WORKER, WORKER_SCRIPT, 3, "extra")
    assert extra and extra in live_pool_ids(sandbox), "after build(): created now, its id returned"
    assert cluster.worker_pool_ids == [first, gpu, extra]
    assert state_resources(cluster.terraform_dir)['module.raydog.raydog_worker_pool.this["extra"]'] == extra

    cluster.remove_worker_pool(first)
    cluster.remove_worker_pool_by_internal_name("gpu")
    assert cluster.worker_pool_internal_names == ["extra"]
    assert live_pool_ids(sandbox) == {extra, cluster.head_node_worker_pool_id,
                                      cluster.observability_node_worker_pool_id}, "the cluster stays up"
    with pytest.raises(Exception, match="Worker pool ID 'nope' not in current list"):
        cluster.remove_worker_pool("nope")
    with pytest.raises(Exception, match="Worker pool with internal name 'gpu' not found"):
        cluster.remove_worker_pool_by_internal_name("gpu")

    saved = json.loads(cluster.save_state_to_json())
    assert saved == {"cluster_name": "story", "cluster_namespace": NAMESPACE, "cluster_tag": "team-a",
                     "work_requirement_id": cluster.work_requirement_id,
                     "worker_pool_ids": [extra, cluster.head_node_worker_pool_id,
                                         cluster.observability_node_worker_pool_id],
                     "terraform_dir": str(tmp_path / "story")}

    wr_id = cluster.work_requirement_id
    cluster.shut_down()
    assert wr_id not in live_work_requirement_ids(sandbox)
    assert not live_pool_ids(sandbox) & {extra, saved["worker_pool_ids"][1], saved["worker_pool_ids"][2]}
    assert state_resources(cluster.terraform_dir) == {}
    assert cluster.work_requirement_id is None and cluster.worker_pool_ids == []
    cluster.shut_down()  # RayDog: a second shut_down() does nothing
    with pytest.raises(Exception, match=r"'add_worker_pool\(\)' method called on already shut-down cluster"):
        cluster.add_worker_pool(WORKER, WORKER_SCRIPT, 1)
    with pytest.raises(Exception, match=r"'build\(\)' method already called"):
        cluster.build()
    with pytest.raises(Exception, match="Cannot save state on a cluster that is shut down"):
        cluster.save_state_to_json()


def test_saved_state_is_shut_down_by_the_proxy_from_another_backend(shared_sandbox, tmp_path, capsys):
    sandbox = shared_sandbox
    state_path = tmp_path / "elsewhere" / "cluster.tfstate"
    state_path.parent.mkdir()
    cluster = new_cluster(sandbox, "saved", tmp_path, quiet=True,
                          terraform_backend={"local": {"path": str(state_path)}})
    cluster.add_worker_pool(WORKER, WORKER_SCRIPT, 1)
    with pytest.raises(Exception, match="Cannot save state on a cluster that is not yet built"):
        cluster.save_state_to_json()
    cluster.build()
    assert capsys.readouterr().out == "", "quiet=True: no progress lines"
    assert state_path.is_file() and not (tmp_path / "saved" / "terraform.tfstate").exists()
    saved_file = tmp_path / "saved.json"
    cluster.save_state_to_json_file(str(saved_file))
    pools = json.loads(saved_file.read_text())["worker_pool_ids"]
    assert set(pools) <= live_pool_ids(sandbox)

    twin = new_cluster(sandbox, "saved", tmp_path, quiet=True, terraform_backend={"local": {"path": str(state_path)}})
    with pytest.raises(RayDogBuilderError, match="already holds the Terraform state of a cluster"):
        twin.build()  # the same working directory and state: refused, the running cluster untouched
    assert set(pools) <= live_pool_ids(sandbox)

    proxy = RayDogClusterProxy(**credentials(sandbox), quiet=True)
    with pytest.raises(Exception, match="Cannot shut down cluster with no cluster state"):
        proxy.shut_down()
    proxy.load_saved_state_from_json_file(str(saved_file))
    proxy.shut_down()
    assert not set(pools) & live_pool_ids(sandbox)
    assert cluster.work_requirement_id not in live_work_requirement_ids(sandbox)
    with pytest.raises(Exception, match="Cluster already shut down"):
        proxy.shut_down()


def test_proxy_adopts_a_cluster_raydog_built_and_shuts_it_down(shared_sandbox, tmp_path, monkeypatch):
    from e2e.raydog_helpers import build_raydog_cluster, raydog_client

    sandbox = shared_sandbox
    client = raydog_client(sandbox.url, sandbox.key_id, sandbox.key_secret)
    built = build_raydog_cluster(client, "legacy", NAMESPACE, [2, 1], tag="team-b")
    client.close()
    raydog_json = json.dumps(built.saved_state())  # RayDog's own JSON: no terraform_dir
    assert set(built.saved_state()["worker_pool_ids"]) <= live_pool_ids(sandbox)

    monkeypatch.chdir(tmp_path)
    proxy = RayDogClusterProxy(**credentials(sandbox))
    proxy.load_saved_state_from_json(raydog_json)
    proxy.shut_down()

    adopted = tmp_path / "raydog-clusters" / "legacy"  # the default working directory
    assert (adopted / "imports.tf").is_file() and (adopted / "cluster.tf").is_file()
    assert not set(built.saved_state()["worker_pool_ids"]) & live_pool_ids(sandbox)
    assert built.work_requirement_id not in live_work_requirement_ids(sandbox)
    assert state_resources(adopted) == {}


def test_a_cluster_whose_working_directory_is_gone_is_adopted_from_the_saved_ids(shared_sandbox, tmp_path):
    import shutil

    sandbox = shared_sandbox
    cluster = new_cluster(sandbox, "orphan", tmp_path, quiet=True)
    cluster.add_worker_pool(WORKER, WORKER_SCRIPT, 2, "cpu")
    cluster.build()
    saved = cluster.save_state_to_json()
    shutil.rmtree(cluster.terraform_dir)

    proxy = RayDogClusterProxy(**credentials(sandbox), terraform_dir=tmp_path / "adopted", quiet=True)
    proxy.load_saved_state_from_json(saved)
    proxy.shut_down()

    assert not set(json.loads(saved)["worker_pool_ids"]) & live_pool_ids(sandbox)
    assert cluster.work_requirement_id not in live_work_requirement_ids(sandbox)
    module_call = (tmp_path / "adopted" / "cluster.tf").read_text()
    assert re.search(r'\bname\s+=\s+"cpu-', module_call), "adopted as a module call"


def test_build_timeout_raises_timeout_error_and_leaves_nothing_live(sandbox_factory, tmp_path):
    slow = sandbox_factory(provision_delay=60.0)
    cluster = new_cluster(slow, "slow", tmp_path, quiet=True, enable_observability=False)
    cluster.add_worker_pool(WORKER, WORKER_SCRIPT, 1)

    with pytest.raises(TimeoutError) as raised:
        cluster.build(head_node_build_timeout=timedelta(seconds=2))

    assert isinstance(raised.value, BuildTimeoutError)
    assert "Timeout waiting for Ray head node task to enter EXECUTING state" in str(raised.value)
    assert "The head node did not start" in str(raised.value), "the Terraform diagnostic's text"
    assert raised.value.diagnostics and raised.value.diagnostics[0].severity == "error"
    assert nothing_live(slow), slow.state()["live"]
    assert state_resources(tmp_path / "slow") == {}
    with pytest.raises(Exception, match=r"'build\(\)' method called on already shut-down cluster"):
        cluster.build()
    cluster.shut_down()


def kill_head_node_when_its_task_is_allocated(sandbox, within: float = 60.0) -> threading.Thread:
    """Out of band, as a lost instance would: the head's node dies before its task starts."""
    def watch() -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            for wr in sandbox.state()["workRequirements"]:
                for group in wr["taskGroups"]:
                    for task in group["tasks"] if group["name"].startswith("head-") else []:
                        if task["nodeId"] and task["status"] in ("ALLOCATED", "DOWNLOADING"):
                            sandbox.kill_node(task["nodeId"])
                            return
            time.sleep(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_a_head_task_that_fails_raises_raydog_s_error_and_leaves_nothing_live(sandbox_factory, tmp_path):
    flaky = sandbox_factory(task_start_delay=30.0)
    cluster = new_cluster(flaky, "lost", tmp_path, quiet=True)
    cluster.add_worker_pool(WORKER, WORKER_SCRIPT, 1)
    watcher = kill_head_node_when_its_task_is_allocated(flaky)

    with pytest.raises(HeadNodeFailedError) as raised:
        cluster.build(head_node_build_timeout=timedelta(minutes=1))

    watcher.join()
    assert not isinstance(raised.value, TimeoutError)
    assert str(raised.value).startswith("Unexpected head node task status")
    assert "The head node failed" in str(raised.value) and "FAILED" in str(raised.value)
    assert nothing_live(flaky), flaky.state()["live"]
    with pytest.raises(Exception, match=r"'build\(\)' method called on already shut-down cluster"):
        cluster.build()


def test_a_plan_error_carries_terraform_s_diagnostic_and_the_cluster_can_build_after(shared_sandbox, tmp_path):
    name = "a-cluster-name-of-forty-characters-long"
    cluster = new_cluster(shared_sandbox, name, tmp_path, quiet=True)
    cluster.add_worker_pool(WORKER, WORKER_SCRIPT, 1, "a-pool-key-too-long-for-it")  # > 60 with the cluster's
    with pytest.raises(TerraformRunError) as raised:
        cluster.build()
    assert "must fit YellowDog's 60 characters" in str(raised.value), "the module's validation message"
    assert not isinstance(raised.value, TimeoutError)

    cluster.remove_worker_pool_by_internal_name("a-pool-key-too-long-for-it")
    cluster.add_worker_pool(WORKER, WORKER_SCRIPT, 1, "short")
    assert cluster.build()[0] == cluster.head_node_private_ip
    cluster.shut_down()
    assert cluster.work_requirement_id is None


def test_misuse_is_refused_as_raydog_refuses_it(shared_sandbox, tmp_path):
    with pytest.raises(ValueError, match="observability_node_compute_requirement_template_id is required"):
        new_cluster(shared_sandbox, "obs", tmp_path, enable_observability=True)
    with pytest.raises(ValueError, match="cluster_name 'Not Valid'"):
        new_cluster(shared_sandbox, "Not Valid", tmp_path)
    cluster = new_cluster(shared_sandbox, "misuse", tmp_path)
    with pytest.raises(ValueError, match="worker_pool_node_count must be > 0"):
        cluster.add_worker_pool(WORKER, WORKER_SCRIPT, 0)
    cluster.add_worker_pool(WORKER, WORKER_SCRIPT, 1, "cpu")
    with pytest.raises(Exception, match="Internal name 'cpu' for worker node worker pool is already in use"):
        cluster.add_worker_pool(WORKER, WORKER_SCRIPT, 1, "cpu")
    with pytest.raises(ValueError, match="worker_pool_internal_name 'GPU pool' must start with a lowercase"):
        cluster.add_worker_pool(WORKER, WORKER_SCRIPT, 1, "GPU pool")
    cluster.shut_down()  # never built: nothing to destroy, and RayDog's state afterwards
    with pytest.raises(Exception, match=r"'build\(\)' method called on already shut-down cluster"):
        cluster.build()
    assert isinstance(RayDogBuilderError("x"), Exception)


def test_signatures_are_raydog_2_0_0_s():
    """Every parameter of RayDog 2.0.0's builder, in order, with its default (extras are keyword-only)."""
    def positional(function) -> list[tuple[str, object]]:
        return [(p.name, p.default) for p in inspect.signature(function).parameters.values()
                if p.kind is p.POSITIONAL_OR_KEYWORD]

    empty = inspect.Parameter.empty
    assert positional(RayDogCluster.__init__) == [
        ("self", empty), ("yd_application_key_id", empty), ("yd_application_key_secret", empty),
        ("cluster_name", empty), ("cluster_namespace", empty), ("head_node_compute_requirement_template_id", empty),
        ("head_node_ray_start_script", empty), ("yd_platform_api_url", "https://api.yellowdog.ai"),
        ("cluster_tag", None), ("head_node_images_id", None), ("head_node_userdata", None),
        ("head_node_instance_tags", None), ("head_node_metrics_enabled", None), ("enable_observability", False),
        ("observability_node_compute_requirement_template_id", None), ("observability_node_instance_tags", None),
        ("observability_node_images_id", None), ("observability_node_userdata", None),
        ("observability_node_metrics_enabled", None), ("observability_node_start_script", None),
        ("cluster_lifetime", None)]
    assert positional(RayDogCluster.add_worker_pool) == [
        ("self", empty), ("worker_node_compute_requirement_template_id", empty), ("worker_node_task_script", empty),
        ("worker_pool_node_count", empty), ("worker_pool_internal_name", None), ("worker_node_images_id", None),
        ("worker_node_userdata", None), ("worker_node_instance_tags", None), ("worker_node_metrics_enabled", None)]
    assert positional(RayDogCluster.build) == [("self", empty), ("head_node_build_timeout", None)]
    assert positional(RayDogCluster.remove_worker_pool) == [("self", empty), ("worker_pool_id", empty)]
    assert positional(RayDogCluster.remove_worker_pool_by_internal_name) == [("self", empty), ("internal_name", empty)]
    assert positional(RayDogCluster.get_worker_pool_internal_name_by_id) == [("self", empty),
                                                                              ("worker_pool_id", empty)]
    assert positional(RayDogCluster.save_state_to_json_file) == [("self", empty), ("file_name", empty)]
    for method in ("shut_down", "save_state_to_json"):
        assert positional(getattr(RayDogCluster, method)) == [("self", empty)]
    assert positional(RayDogClusterProxy.__init__) == [
        ("self", empty), ("yd_application_key_id", empty), ("yd_application_key_secret", empty),
        ("yd_platform_api_url", "https://api.yellowdog.ai")]
    assert positional(RayDogClusterProxy.load_saved_state_from_json) == [("self", empty), ("cluster_state", empty)]
    assert positional(RayDogClusterProxy.load_saved_state_from_json_file) == [("self", empty), ("file_name", empty)]
    assert positional(RayDogClusterProxy.shut_down) == [("self", empty)]
    assert isinstance(RayDogCluster.worker_pool_ids, property)
    assert isinstance(RayDogCluster.worker_pool_internal_names, property)


def test_raytunnels_keeps_raydog_s_signature():
    from raydog.tunnels import RayTunnels, SSHTunnelSpec

    params = [(p.name, p.default) for p in inspect.signature(RayTunnels.__init__).parameters.values()
              if p.kind is p.POSITIONAL_OR_KEYWORD]
    assert params == [("self", inspect.Parameter.empty), ("ray_head_ip_address", inspect.Parameter.empty),
                      ("ssh_user", inspect.Parameter.empty), ("password", None), ("private_key_file", None),
                      ("private_key_password", None), ("ray_tunnel_specs", None)]
    assert RayTunnels.basic_port_forward(8265) == SSHTunnelSpec("localhost", 8265, "localhost", 8265)
    assert list(inspect.signature(RayTunnels.stop_tunnels).parameters) == ["self", "ignore_errors"]
    assert inspect.signature(RayTunnels.stop_tunnels).parameters["ignore_errors"].default is True
    assert list(inspect.signature(RayTunnels.start_tunnels).parameters) == ["self"]
