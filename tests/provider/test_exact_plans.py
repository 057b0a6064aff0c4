"""What a reviewer sees is exact: plans without noise, imports that round-trip, mistakes
caught at plan time. Every test drives real Terraform against the sandbox (simulate mode).
"""

from __future__ import annotations

import hashlib
import json
import re

from harness.platform_view import view
from harness.terraform import changes
from raydog.lifecycle.scripts import default_script
from raydog.yellowdog import PoolSpec, YellowDogClient

CLUSTER = "ex"
DEFAULT_WORKER_SHA = hashlib.sha256(default_script("worker").encode()).hexdigest()


def cluster_block(name: str = CLUSTER) -> str:
    return f"""
provider "raydog" {{}}

resource "raydog_cluster" "c" {{
  name      = "{name}"
  namespace = "tests"
}}
"""


def head_block(extra: str = "", template: str = "sandbox/ray-head") -> str:
    return f"""
resource "raydog_head" "h" {{
  cluster_id                      = raydog_cluster.c.id
  cluster_name                    = raydog_cluster.c.name
  namespace                       = raydog_cluster.c.namespace
  compute_requirement_template_id = "{template}"
  {extra}
}}
"""


def pool_block(name: str, count: int = 1, extra: str = "", template: str = "sandbox/ray-worker") -> str:
    return f"""
resource "raydog_worker_pool" "{name}" {{
  cluster_id                      = raydog_cluster.c.id
  cluster_name                    = raydog_cluster.c.name
  namespace                       = raydog_cluster.c.namespace
  name                            = "{name}"
  compute_requirement_template_id = "{template}"
  head_private_ip                 = raydog_head.h.private_ip
  node_count                      = {count}
  {extra}
}}
"""


def platform_client(sandbox) -> YellowDogClient:
    return YellowDogClient.connect(sandbox.url, sandbox.key_id, sandbox.key_secret)


def plan_text(tf, *extra) -> str:
    return tf.run("plan", "-input=false", "-no-color", *extra).stdout


def planned(plan: dict, address: str) -> tuple[dict, dict]:
    """(after, after_unknown) of one resource change of a ``show -json`` plan."""
    rc = next(rc for rc in plan["resource_changes"] if rc["address"] == address)
    return rc["change"]["after"], rc["change"]["after_unknown"]


def test_first_plan_shows_names_namespace_and_script_hash_and_no_script_text(terraform, sandbox):
    script = '\ndata "raydog_node_script" "worker" {\n  template = "worker"\n}\n'
    terraform.write(cluster_block() + head_block() + pool_block("alpha") + pool_block("beta") + pool_block("gamma")
                    + script)
    terraform.init()
    plan = terraform.plan_json()
    rendered = next(r for r in plan["prior_state"]["values"]["root_module"]["resources"]
                    if r["address"] == "data.raydog_node_script.worker")
    assert rendered["values"]["sha256"] == DEFAULT_WORKER_SHA  # the data source shows the script once
    for name in ("alpha", "beta", "gamma"):
        after, unknown = planned(plan, f"raydog_worker_pool.{name}")
        assert after["yellowdog_name"] == f"{CLUSTER}-{name}" and "yellowdog_name" not in unknown
        assert after["namespace"] == "tests" and "namespace" not in unknown
        assert after["script_sha256"] == DEFAULT_WORKER_SHA
        assert after["task_script"] is None
    head, _ = planned(plan, "raydog_head.h")
    assert head["yellowdog_name"] == f"{CLUSTER}-head" and head["namespace"] == "tests"
    text = plan_text(terraform)
    assert "ray start" not in text, "the default script is not printed per pool"
    terraform.apply()
    state = terraform.resources()
    assert state["raydog_worker_pool.alpha"]["script_sha256"] == DEFAULT_WORKER_SHA
    tasks = platform_client(sandbox).list_tasks(state["raydog_worker_pool.alpha"]["task_group_id"])
    assert tasks[0].task_data == default_script("worker")
    assert terraform.plan_exitcode().returncode == 0


def test_growing_a_pool_keeps_the_listed_task_ids_and_shrinking_drops_the_newest(terraform):
    terraform.write(cluster_block() + head_block() + pool_block("alpha", 2))
    terraform.init()
    terraform.apply()
    before = terraform.resources()["raydog_worker_pool.alpha"]["task_ids"]

    terraform.write(cluster_block() + head_block() + pool_block("alpha", 4))
    plan = terraform.plan_json()
    assert changes(plan) == {"raydog_worker_pool.alpha": ["update"]}
    after, unknown = planned(plan, "raydog_worker_pool.alpha")
    assert after["task_ids"][:2] == before and unknown["task_ids"] == [False, False, True, True]
    text = plan_text(terraform)
    assert not re.search(r'^\s+- "', text, re.M), f"no task id shown as removed on growth:\n{text}"
    terraform.apply()
    grown = terraform.resources()["raydog_worker_pool.alpha"]["task_ids"]
    assert grown[:2] == before and len(grown) == 4

    # By default Ray's idle nodes go first, so which ids stay is known after apply.
    terraform.write(cluster_block() + head_block() + pool_block("alpha", 3))
    after, unknown = planned(terraform.plan_json(), "raydog_worker_pool.alpha")
    assert unknown.get("task_ids") is True
    # With no drain (drain_timeout = "0s") Ray is not asked: the newest go, as the plan shows.
    terraform.write(cluster_block() + head_block() + pool_block("alpha", 3, 'drain_timeout = "0s"'))
    after, unknown = planned(terraform.plan_json(), "raydog_worker_pool.alpha")
    assert after["task_ids"] == grown[:3] and not any(unknown.get("task_ids") or [])
    terraform.apply()
    assert terraform.resources()["raydog_worker_pool.alpha"]["task_ids"] == grown[:3]
    assert terraform.plan_exitcode().returncode == 0


def test_removing_a_custom_script_plans_the_default_back(terraform, sandbox):
    custom = 'task_script = "trap \'ray stop\' EXIT\\nray start --address=$RAY_HEAD_IP:6379 --block\\n"'
    terraform.write(cluster_block() + head_block() + pool_block("alpha", 1, custom))
    terraform.init()
    terraform.apply()
    pool = terraform.resources()["raydog_worker_pool.alpha"]
    assert pool["script_sha256"] != DEFAULT_WORKER_SHA

    terraform.write(cluster_block() + head_block() + pool_block("alpha", 1))
    plan = terraform.plan_json()
    assert changes(plan) == {"raydog_worker_pool.alpha": ["delete", "create"]}
    after, _ = planned(plan, "raydog_worker_pool.alpha")
    assert after["task_script"] is None and after["script_sha256"] == DEFAULT_WORKER_SHA
    terraform.apply()
    pool = terraform.resources()["raydog_worker_pool.alpha"]
    assert pool["task_script"] is None and pool["script_sha256"] == DEFAULT_WORKER_SHA
    task = platform_client(sandbox).list_tasks(pool["task_group_id"])[0]
    assert task.task_data == default_script("worker")
    assert terraform.plan_exitcode().returncode == 0


def full_config(userdata: bool = True) -> str:
    """What a user writes from the docs: templates by namespace/name, userdata and images, an observability node."""
    node_extra = 'images_id = "ami-0123"\n  userdata = "#!/bin/bash\\necho boot\\n"' if userdata else ""
    return (cluster_block() + f"""
resource "raydog_observability" "obs" {{
  cluster_id                      = raydog_cluster.c.id
  cluster_name                    = raydog_cluster.c.name
  compute_requirement_template_id = "sandbox/ray-observability"
  {node_extra}
}}
""" + head_block(f"observability_host = raydog_observability.obs.private_ip\n  {node_extra}")
            + pool_block("alpha", 2, f'{node_extra}\n  secret_environment = {{ TOKEN = "s3cr3t-value" }}'))


def test_importing_every_resource_with_the_users_configuration_plans_no_replacement(
        terraform, terraform_factory, sandbox):
    hcl = full_config()
    terraform.write(hcl)
    terraform.init()
    terraform.apply()
    built = terraform.resources()

    imported = terraform_factory("imported", sandbox=sandbox)
    blocks = "".join(f'\nimport {{\n  to = {address}\n  id = "{values["id"]}"\n}}\n'
                     for address, values in built.items())
    imported.write(hcl + blocks)
    imported.init()
    text = plan_text(imported)
    print(f"import plan: {len(text.splitlines())} lines\n{text}")
    assert "must be replaced" not in text and "will destroy" not in text, text
    plan = imported.plan_json()
    for rc in plan["resource_changes"]:
        assert rc["change"]["actions"] in (["no-op"], ["update"]), (rc["address"], rc["change"]["actions"])
        assert not rc["change"].get("replace_paths"), (rc["address"], rc["change"].get("replace_paths"))
    imported.apply()
    after = imported.resources()
    for address, values in built.items():
        differing = {k for k, v in values.items() if after[address].get(k) != v and k != "timeouts"}
        assert not differing, f"{address} imported with different {sorted(differing)}"
    assert imported.plan_exitcode().returncode == 0


def test_secret_environment_reaches_the_task_but_no_plan_or_log(terraform, sandbox):
    terraform.write(cluster_block() + head_block()
                    + pool_block("alpha", 1, 'secret_environment = { TOKEN = "s3cr3t-value" }\n'
                                             '  environment = { MODE = "plain" }'))
    terraform.init()
    text = plan_text(terraform)
    assert "s3cr3t-value" not in text and "secret_environment" in text and "(sensitive value)" in text
    log = terraform.run("apply", "-auto-approve", "-input=false", "-no-color", extra_env={"TF_LOG": "TRACE"})
    assert "s3cr3t-value" not in log.output
    pool = terraform.resources()["raydog_worker_pool.alpha"]
    task = platform_client(sandbox).list_tasks(pool["task_group_id"])[0]
    assert task.environment["TOKEN"] == "s3cr3t-value" and task.environment["MODE"] == "plain"
    assert task.environment["RAYDOG_SECRET_NAMES"] == "TOKEN"
    assert terraform.plan_exitcode().returncode == 0


def test_platform_mistakes_fail_the_plan_on_the_attribute_before_anything_is_created(terraform, sandbox):
    terraform.write(cluster_block() + head_block() + pool_block("alpha", template="sandbox/ray-wrker")
                    + pool_block("beta") + pool_block("gamma") + pool_block("delta"))
    terraform.init()
    sandbox.reset_requests()
    result = terraform.plan_exitcode()
    assert result.returncode == 1
    assert "Compute requirement template not found" in result.output
    assert 'compute requirement template "sandbox/ray-wrker"' in " ".join(result.output.split())
    assert re.search(r'in resource "raydog_worker_pool" "alpha":\n\s*\d+:\s+compute_requirement_template_id',
                     result.output), result.output
    routes = sandbox.requests()["routes"]
    template_reads = {r: n for r, n in routes.items() if "templates" in r}
    assert sum(template_reads.values()) == 3, routes  # ray-head, ray-worker (4 pools) and ray-wrker: once each
    assert view(sandbox).nothing_live()

    # cluster_name that does not match cluster_id, once the cluster exists
    terraform.write(cluster_block() + head_block())
    terraform.apply()
    terraform.write(cluster_block() + head_block() + """
resource "raydog_worker_pool" "wrong" {
  cluster_id                      = raydog_cluster.c.id
  cluster_name                    = "other"
  name                            = "wrong"
  compute_requirement_template_id = "sandbox/ray-worker"
  head_private_ip                 = raydog_head.h.private_ip
  node_count                      = 1
}
""")
    result = terraform.plan_exitcode()
    assert result.returncode == 1 and "cluster_name does not match the cluster" in result.output, result.output
    assert "cluster_name = raydog_cluster.<name>.name" in " ".join(result.output.split())

    # a live pool of the same name that this configuration did not create
    client = platform_client(sandbox)
    client.provision_pool(PoolSpec(namespace="tests", name=f"{CLUSTER}-taken", template_id="sandbox/ray-worker",
                                   images_id=None, userdata=None, instance_tags={}, metrics_enabled=False,
                                   node_count=1, worker_tag="someone-else"))
    terraform.write(cluster_block() + head_block() + pool_block("taken"))
    result = terraform.plan_exitcode()
    flat = " ".join(result.output.split())
    assert result.returncode == 1 and "Worker pool name already in use" in result.output, result.output
    assert f'"tests/{CLUSTER}-taken"' in flat and "import block" in flat


def test_growing_a_pool_past_its_platform_limit_fails_the_plan_on_node_count(terraform, sandbox):
    terraform.write(cluster_block() + head_block())
    terraform.init()
    terraform.apply()
    state = terraform.resources()
    client = platform_client(sandbox)
    from raydog.yellowdog import TaskGroupSpec, TaskSpec

    pool = client.provision_pool(PoolSpec(namespace="tests", name=f"{CLUSTER}-small", template_id="sandbox/ray-worker",
                                          images_id=None, userdata=None, instance_tags={}, metrics_enabled=False,
                                          node_count=1, worker_tag=f"{CLUSTER}-small", max_nodes=2))
    group = client.ensure_task_group(state["raydog_cluster.c"]["id"], TaskGroupSpec(
        name="small-0a1b2c3d", worker_tag=f"{CLUSTER}-small", namespace="tests", task_timeout=None))
    client.add_tasks(group.id, [TaskSpec(name="node-1", task_data=default_script("worker"), environment={
        "RAY_HEAD_IP": state["raydog_head.h"]["private_ip"],
        "RAY_HEAD_NODE_PRIVATE_IP": state["raydog_head.h"]["private_ip"]}, timeout=None)])
    adopted = f'\nimport {{\n  to = raydog_worker_pool.small\n  id = "{pool.id}"\n}}\n'
    terraform.write(cluster_block() + head_block() + pool_block("small", 1) + adopted)
    terraform.apply()
    terraform.write(cluster_block() + head_block() + pool_block("small", 3))
    result = terraform.plan_exitcode()
    flat = " ".join(result.output.split())
    assert result.returncode == 1 and "node_count is above the pool's limit" in result.output, result.output
    assert "allows at most 2 nodes" in flat and "set node_count to 2 or less" in flat
    assert re.search(r"\d+:\s+node_count\s+= 3", result.output), result.output


def test_name_length_errors_state_the_limit_for_that_name(terraform, sandbox):
    long_cluster = "c" * 58
    terraform.write(cluster_block(long_cluster))
    terraform.init()
    result = terraform.run("validate", "-no-color", check=False)
    flat = " ".join(result.output.split())
    assert result.returncode == 1 and "is 58 characters long; at most 55 are allowed" in flat, result.output
    assert "<cluster_name>-head must fit YellowDog's 60" in flat
    terraform.write(cluster_block("c" * 50) + head_block() + pool_block("abcdefghij"))
    result = terraform.plan_exitcode()  # cluster_name comes from the cluster: known at plan
    flat = " ".join(result.output.split())
    expected = 'with cluster name "' + "c" * 50 + '" (50 characters) name may be at most 9 characters'
    assert expected in flat, result.output


def readme_first_configuration() -> str:
    from harness.terraform import REPO

    readme = (REPO / "README.md").read_text()
    section = readme.split("## First configuration", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```hcl\n(.*?)```", section, re.S)[0]


def test_readme_first_configuration_plans_what_it_says_and_applies(terraform, sandbox):
    terraform.write(readme_first_configuration(), provider_block=False)
    terraform.init()
    plan = terraform.plan_json()
    head, _ = planned(plan, "raydog_head.head")
    pool, _ = planned(plan, "raydog_worker_pool.cpu")
    assert (head["yellowdog_name"], pool["yellowdog_name"]) == ("first-head", "first-cpu")
    assert head["namespace"] == pool["namespace"] == "tutorial" and pool["script_sha256"] == DEFAULT_WORKER_SHA
    terraform.apply()
    assert terraform.outputs()["ray_client"].startswith("ray://")
    assert terraform.plan_exitcode().returncode == 0
    terraform.destroy()
    assert view(sandbox).nothing_live()


def test_state_from_before_null_default_scripts_plans_no_change(terraform):
    """State written when the default script was stored in the script attribute (and no
    script_sha256 existed) upgrades to null + hash: the next plan is empty."""
    terraform.write(cluster_block() + head_block() + pool_block("alpha"))
    terraform.init()
    terraform.apply()
    state = json.loads(terraform.run("state", "pull").stdout)
    for resource in state["resources"]:
        for instance in resource["instances"]:
            attributes = instance["attributes"]
            if resource["type"] == "raydog_worker_pool":
                attributes["task_script"] = default_script("worker")
            if resource["type"] == "raydog_head":
                attributes["ray_start_script"] = default_script("head")
            attributes.pop("script_sha256", None)
            attributes.pop("secret_environment", None)
    state["serial"] += 1
    (terraform.workdir / "old.tfstate").write_text(json.dumps(state))
    terraform.run("state", "push", "old.tfstate")
    assert terraform.plan_exitcode().returncode == 0
    terraform.apply()  # nothing to change; the upgraded state is written
    pool = terraform.resources()["raydog_worker_pool.alpha"]
    assert pool["task_script"] is None and pool["script_sha256"] == DEFAULT_WORKER_SHA
