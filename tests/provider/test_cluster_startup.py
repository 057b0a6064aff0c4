"""How a cluster comes up (docs/guides/cluster-startup.md), through real Terraform against
the sandbox with a provisioning delay: the observability node, the head and every worker
pool start provisioning together; the head's and observability node's addresses reach the
tasks from the platform; a new head re-tasks the workers in place.
"""

from __future__ import annotations


import pytest

from harness.config import Expr, cluster, head, observability, output, provider, worker_pool
from harness.platform_view import view
from harness.processes import fork_servers, served_terraform
from harness.terraform import changes
from harness.waits import wait_until

CLUSTER = "up"
DELAY = 2.0
POOLS = ("alpha", "beta", "gamma")


def config(head_suffix: str | None = None) -> str:
    """Cluster, observability node, head and three pools, every node depending on the cluster only."""
    learnt = {"observability_name_suffix": ""}
    return "\n".join([
        provider(),
        cluster(CLUSTER),
        observability(),
        head(name_suffix=head_suffix, **learnt, timeouts={"create": "2m"}),
        *(worker_pool(name, 2, head_private_ip=None, head_name_suffix=head_suffix, wait_for_nodes=True, **learnt)
          for name in POOLS),
        output("head_ip", Expr("raydog_head.h.private_ip")),
    ])


def compute_requirement_seq(state: dict) -> dict[str, int]:
    """Creation order of each compute requirement, by name."""
    return {cr["name"]: cr["seq"] for cr in state["computeRequirements"]}


@pytest.mark.sandbox(provision_delay=DELAY)
def test_every_pool_provisions_before_the_head_is_up_and_learns_its_address(terraform, sandbox):
    terraform.write(config())
    terraform.init()
    terraform.apply()

    resources = terraform.resources()
    head_state, obs_state = resources["raydog_head.h"], resources["raydog_observability.obs"]
    state = sandbox.state()
    platform = view(sandbox)
    head_node = platform.node(head_state["node_id"])
    # Every compute requirement (observability, head, pools) exists before the head's node does.
    created = compute_requirement_seq(state)
    assert set(created) == {f"{CLUSTER}-obs", f"{CLUSTER}-head", *(f"{CLUSTER}-{p}" for p in POOLS)}
    assert max(created.values()) < head_node["seq"], (created, head_node)

    assert [t["status"] for t in platform.tasks(head_state["task_group_id"])] == ["EXECUTING"]
    assert platform.tasks(head_state["task_group_id"])[0]["environment"]["OBSERVABILITY_HOST"] == \
        obs_state["private_ip"]
    for name in POOLS:
        group_id = resources[f"raydog_worker_pool.{name}"]["task_group_id"]
        assert platform.pool_tasks_know_their_peers(group_id, 2, head_node["privateIp"], obs_state["private_ip"]), \
            platform.tasks(group_id)
    assert terraform.outputs()["head_ip"] == head_node["privateIp"]
    assert terraform.plan_exitcode().returncode == 0

    terraform.destroy()
    assert view(sandbox).nothing_live()


@pytest.mark.sandbox(provision_delay=0.5)
def test_a_new_head_shows_in_the_plan_and_retasks_every_pool_in_place(terraform, sandbox):
    terraform.write(config())
    terraform.init()
    terraform.apply()
    before = terraform.resources()

    terraform.write(config("v2"))
    plan = changes(terraform.plan_json())
    assert plan["raydog_head.h"] == ["delete", "create"]
    for name in POOLS:
        assert plan[f"raydog_worker_pool.{name}"] == ["update"], plan
    terraform.apply()

    after = terraform.resources()
    platform = view(sandbox)
    new_ip = platform.node(after["raydog_head.h"]["node_id"])["privateIp"]
    for name in POOLS:
        old, new = before[f"raydog_worker_pool.{name}"], after[f"raydog_worker_pool.{name}"]
        assert new["id"] == old["id"]  # the same pool and nodes
        assert set(new["task_ids"]).isdisjoint(old["task_ids"])
        live = platform.live_tasks(new["task_group_id"])
        assert sorted(t["id"] for t in live) == sorted(new["task_ids"])
        assert all(t["environment"]["RAY_HEAD_IP"] == new_ip for t in live)
    assert terraform.plan_exitcode().returncode == 0
    terraform.destroy()
    assert view(sandbox).nothing_live()


def test_a_plan_of_new_resources_checks_the_platform_without_the_sdk(terraform, sandbox, tmp_path):
    """The plan still asks the platform (the key, the templates, the names) but through the
    standard library: the SDK's ~0.35 s import is left to the apply (its client is built on
    first use and says so in the provider's log)."""
    log = tmp_path / "terraform.log"
    env = {"TF_LOG_PROVIDER": "INFO", "TF_LOG_PATH": str(log)}
    terraform.write(config())
    terraform.init()
    sandbox.reset_requests()

    plan = terraform.run("plan", "-input=false", "-no-color", extra_env=env)

    routes = sandbox.requests()["routes"]
    assert routes.get("GET /compute/namespaces/{namespace}/templates/requirements/{name}") == 3, routes
    assert "platform client for" not in log.read_text(errors="replace"), "the plan built the SDK client"
    assert "Plan: 6 to add" in plan.output

    broken = config().replace('"sandbox/ray-worker"', '"sandbox/no-such-template"', 1)
    terraform.write(broken)
    refused = terraform.run("plan", "-input=false", "-no-color", check=False, extra_env=env)
    assert refused.returncode == 1
    assert "Compute requirement template not found" in refused.output
    assert 'sandbox/no-such-template' in refused.output and "compute_requirement_template_id" in refused.output


def fork_servers_of(terraform_pid: int) -> list[int]:
    """The provider's fork servers serving the Terraform process ``terraform_pid``."""
    return [pid for pid, argv in fork_servers().items() if served_terraform(argv) == terraform_pid]


def test_an_applys_later_launches_fork_from_the_commands_warm_copy_which_leaves_with_terraform(
        terraform, sandbox, tmp_path):
    """Terraform starts the provider four times in an apply; the first launch starts the
    command's fork server and the later ones are forked from it (raydog.launcher). Nothing of
    it outlives the command, and the apply is the same apply."""
    log = tmp_path / "terraform.log"
    terraform.write(config())
    terraform.init()
    proc = terraform.popen("apply", "-auto-approve", "-input=false", "-no-color",
                           extra_env={"TF_LOG_PROVIDER": "DEBUG", "TF_LOG_PATH": str(log)})
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stdout + stderr
    assert "Apply complete! Resources: 6 added" in stdout
    text = log.read_text(errors="replace")
    forked = text.count("launched from the warm copy of the provider")
    started = text.count("provider: plugin started")
    assert started >= 3 and 1 <= forked < started, (forked, started)  # the first launch serves itself
    wait_until(lambda: fork_servers_of(proc.pid), "the command's fork server exits after it",
               until=lambda pids: pids == [])
    terraform.destroy()


def test_an_apply_checks_the_application_key_once(terraform, sandbox):
    """The plan's launch checks the key (one GET /work/requirements); the apply's launch, forked
    from the same command's fork server, finds that check recorded (raydog.command_state)."""
    terraform.write(config())
    terraform.init()
    sandbox.reset_requests()
    terraform.apply()
    checks = [route for _, route in sandbox.requests()["timeline"] if route == "GET /work/requirements"]
    assert len(checks) == 1, sandbox.requests()["routes"]
    terraform.destroy()
