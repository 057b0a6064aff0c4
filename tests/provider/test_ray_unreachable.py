"""When the provider cannot reach Ray: readiness fails within the timeout with an error on
`readiness`, and a shrink or a removal goes on without draining, with a warning that says so.
Real Terraform against the sandbox in simulate mode, where no Ray runs at all.
"""

from __future__ import annotations

from harness.config import cluster_config
from harness.platform_view import view

# Nothing listens on port 1 of the loopback: every GCS call fails at once.
NOWHERE = "127.0.0.1:1"


def test_readiness_ray_fails_within_the_create_timeout_naming_the_attribute(terraform, sandbox):
    terraform.write(cluster_config("rdy", {"alpha": 1}, pool_attrs={
        "readiness": "ray", "ray_gcs_address": NOWHERE, "timeouts": {"create": "15s"}}))
    terraform.init()
    result = terraform.apply(check=False)
    assert result.returncode == 1
    assert "The nodes did not join Ray" in result.output and "timed out after" in result.output
    assert 'readiness = "ray"' in result.output and NOWHERE in result.output
    assert "with raydog_worker_pool.alpha" in result.output
    assert "readiness" in result.output.split("The nodes did not join Ray")[1][:1500]
    # The pool is kept in state (tainted): the next apply replaces it, destroy removes it.
    assert terraform.resources()["raydog_worker_pool.alpha"]["id"]
    terraform.destroy()
    assert view(sandbox).nothing_live(), view(sandbox).live


def test_head_readiness_ray_fails_when_its_gcs_never_answers(terraform, sandbox):
    terraform.write(cluster_config("rdh", {}, head_timeout="15s", head_attrs={"readiness": "ray"}))
    terraform.init()
    result = terraform.apply(check=False)
    assert result.returncode == 1
    assert "The head's Ray GCS did not answer" in result.output and "timed out after" in result.output
    assert "with raydog_head.h" in result.output
    terraform.destroy()
    assert view(sandbox).nothing_live(), view(sandbox).live


def test_shrink_and_removal_go_on_without_draining_when_ray_is_unreachable(terraform, sandbox):
    def config(pools: dict[str, int]) -> str:
        return cluster_config("rdn", pools, pool_attrs={"ray_gcs_address": NOWHERE})

    terraform.write(config({"alpha": 2}))
    terraform.init()
    terraform.apply()
    pool_id = terraform.resources()["raydog_worker_pool.alpha"]["id"]

    terraform.write(config({"alpha": 1}))
    shrunk = terraform.apply()
    assert "Warning: The nodes were not drained" in shrunk.output
    assert "Could not ask Ray which nodes are idle" in shrunk.output and NOWHERE in shrunk.output
    assert len(view(sandbox).live_nodes(pool_id)) == 1
    assert terraform.resources()["raydog_worker_pool.alpha"]["node_count"] == 1
    assert terraform.plan_exitcode().returncode == 0

    terraform.write(config({}))
    removed = terraform.apply()
    assert "Warning: The nodes were not drained" in removed.output
    assert "rdn-alpha" not in view(sandbox).live_pools()
    terraform.destroy()
    assert view(sandbox).nothing_live(), view(sandbox).live
