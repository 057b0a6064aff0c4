"""API economy of worker pools through real Terraform: what one more pool costs a create, a
refresh and a destroy in requests, and that none of it grows with the pool's node count (the
bench measures the same slopes at scale)."""

from __future__ import annotations

from harness.config import cluster, head, provider, worker_pool
from harness.platform_view import view

CLUSTER = "eco"


def config(pools: int, nodes: int, prefix: str = "p") -> str:
    """Pools of each lifecycle get their own names: on a strict platform a finished pool keeps
    its name, and the search for the next generation would be counted as the pools' cost."""
    return "\n".join([
        provider(), cluster(CLUSTER), head(),
        *(worker_pool(f"{prefix}{i}", nodes, head_private_ip=None) for i in range(pools)),
    ])


def lifecycle(terraform, sandbox, pools: int, nodes: int, prefix: str) -> dict[str, int]:
    """Requests of the pools' create (apply - the same plan), refresh (plan - the base plan) and
    delete (the destroying apply - its plan's refresh of the pools)."""
    def counted(run) -> int:
        sandbox.reset_requests()
        run()
        seen = sandbox.requests()
        return seen["total"]

    terraform.write(config(0, nodes))
    terraform.apply()
    base_plan = counted(terraform.plan_exitcode)
    terraform.write(config(pools, nodes, prefix))
    plan = counted(terraform.plan_exitcode)
    create = counted(terraform.apply) - plan
    groups = [state["task_group_id"] for address, state in terraform.resources().items()
              if address.startswith("raydog_worker_pool.")]
    refresh = counted(terraform.plan_exitcode) - base_plan
    terraform.write(config(0, nodes))
    destroy = counted(terraform.apply) - base_plan - refresh
    platform = view(sandbox)
    assert set(platform.live_pools()) == {f"{CLUSTER}-head"}
    # Every task was aborted (SIGTERM: its EXIT trap ran) before its node went, none lost with it.
    ended = {task["status"] for group in groups for task in platform.tasks(group)}
    assert ended == {"ABORTED"}, ended
    return {"create": create, "refresh": refresh, "destroy": destroy}


def test_one_more_pool_costs_a_few_requests_whatever_its_node_count(terraform, sandbox):
    terraform.write(config(0, 2))
    terraform.init()
    one = lifecycle(terraform, sandbox, 1, 2, "a")
    three = lifecycle(terraform, sandbox, 3, 2, "b")
    bigger = lifecycle(terraform, sandbox, 3, 6, "c")
    per_pool = {step: (three[step] - one[step]) / 2 for step in one}
    assert per_pool["create"] <= 5, (one, three)
    assert per_pool["refresh"] <= 2, (one, three)
    assert per_pool["destroy"] <= 4, (one, three)
    # Nodes per pool change nothing: a request per node would add 3 pools x 4 nodes = 12. (Creates
    # and deletes vary by a few: appends and group drops batched or not, the plan's name checks.)
    assert bigger["refresh"] == three["refresh"], (three, bigger)
    assert abs(bigger["destroy"] - three["destroy"]) <= 2, (three, bigger)
    assert bigger["create"] - three["create"] < 12, (three, bigger)
    terraform.destroy()
    assert view(sandbox).nothing_live()
