"""A configuration only touches what it created (issue 13, item 1).

Two working directories that name the same cluster: the second one's apply is refused with
the first one's id and the import block to use, and its destroy leaves the first one's
cluster running. A lost reply never makes a duplicate, and an import takes ownership.
"""

from __future__ import annotations

from harness.platform_view import view

CLUSTER_AND_HEAD = """
resource "raydog_cluster" "c" {
  name      = "dup"
  namespace = "adv"
}

resource "raydog_head" "h" {
  cluster_id                      = raydog_cluster.c.id
  cluster_name                    = raydog_cluster.c.name
  compute_requirement_template_id = "sandbox/ray-head"
}
"""


def test_a_second_configuration_naming_the_same_cluster_is_refused_and_its_destroy_touches_nothing(
        sandbox, terraform_factory):
    first = terraform_factory("first", sandbox=sandbox)
    first.write(CLUSTER_AND_HEAD)
    first.init()
    first.apply()
    owned = first.resources()
    second = terraform_factory("second", sandbox=sandbox)
    second.write(CLUSTER_AND_HEAD)
    second.init()

    refused = second.apply(check=False)

    assert refused.returncode != 0
    assert "Cluster name taken" in refused.output, refused.output
    assert owned["raydog_cluster.c"]["id"] in refused.output
    folded = " ".join(refused.output.split())  # Terraform wraps diagnostics
    assert f'import {{ to = raydog_cluster.<name>, id = "{owned["raydog_cluster.c"]["id"]}" }}' in folded
    second.destroy()
    platform = view(sandbox)
    assert platform.work_requirement(owned["raydog_cluster.c"]["id"])["status"] == "RUNNING"
    assert platform.tasks(owned["raydog_head.h"]["task_group_id"], "EXECUTING")
    assert list(platform.live_pools()) == ["dup-head"]
    assert first.plan_exitcode().returncode == 0  # the first configuration sees no change


def test_an_imported_cluster_becomes_the_importing_configurations_own(sandbox, terraform_factory):
    first = terraform_factory("first", sandbox=sandbox)
    first.write(CLUSTER_AND_HEAD)
    first.init()
    first.apply()
    wr_id = first.resources()["raydog_cluster.c"]["id"]
    first.run("state", "rm", "raydog_cluster.c", "raydog_head.h")  # hand the cluster over
    second = terraform_factory("second", sandbox=sandbox)
    second.write(f"""
import {{
  to = raydog_cluster.c
  id = "{wr_id}"
}}

resource "raydog_cluster" "c" {{
  name      = "dup"
  namespace = "adv"
}}
""")
    second.init()
    second.apply()
    assert second.resources()["raydog_cluster.c"]["id"] == wr_id

    # Destroying it from the importing directory also removes the head pool, which no
    # resource there holds: it serves the cluster.
    second.destroy()
    assert view(sandbox).nothing_live(), view(sandbox).live
