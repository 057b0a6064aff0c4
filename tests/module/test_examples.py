"""Examples applied through the module against a simulate-mode sandbox, then destroyed."""

from __future__ import annotations

from harness.terraform import changes


def assert_nothing_live(sandbox) -> None:
    live = sandbox.state()["live"]
    assert not any(live.values()), f"objects left live: {live}"


def test_quickstart_applies_through_the_module_and_destroys(in_tree, sandbox):
    tf = in_tree("examples/quickstart")
    tf.init()
    tf.apply()

    outputs = tf.outputs()
    head_ip = outputs["head_private_ip"]
    assert outputs["ray_address"] == f"{head_ip}:6379"
    assert outputs["client_address"] == f"ray://{head_ip}:10001"
    assert outputs["dashboard_url"] == f"http://{head_ip}:8265"
    assert outputs["head_public_ip"]
    assert sorted(outputs["worker_pool_ids"]) == ["alpha", "beta"]
    resources = tf.resources()
    assert {a for a in resources if a.startswith("module.ray.raydog_")} == {
        "module.ray.raydog_cluster.this",
        "module.ray.raydog_head.this",
        'module.ray.raydog_worker_pool.this["alpha"]',
        'module.ray.raydog_worker_pool.this["beta"]',
    }
    assert resources["module.ray.raydog_head.this"]["timeouts"]["create"] == "5m"
    assert all(resources[f'module.ray.raydog_worker_pool.this["{p}"]']["wait_for_nodes"] for p in ("alpha", "beta"))
    assert tf.plan_exitcode().returncode == 0, "the second plan after apply must be empty"

    tf.destroy()
    assert_nothing_live(sandbox)


def test_scaling_example_resizes_in_place_and_adds_and_removes_pools(in_tree, sandbox):
    tf = in_tree("examples/scaling")
    tf.init()
    tf.apply()
    first = tf.outputs()["worker_pool_ids"]
    assert sorted(first) == ["cpu", "io"]

    plan = changes(tf.plan_json("-var", "pools={cpu=3, burst=1}"))
    assert plan == {
        'module.ray.raydog_worker_pool.this["cpu"]': ["update"],
        'module.ray.raydog_worker_pool.this["burst"]': ["create"],
        'module.ray.raydog_worker_pool.this["io"]': ["delete"],
    }
    tf.apply("tfplan")
    second = tf.outputs()["worker_pool_ids"]
    assert sorted(second) == ["burst", "cpu"]
    assert second["cpu"] == first["cpu"], "a node_count change must keep the pool"
    assert len(tf.resources()['module.ray.raydog_worker_pool.this["cpu"]']["task_ids"]) == 3

    too_big = tf.run("plan", "-input=false", "-no-color", "-var", "pools={cpu=100}", check=False)
    assert too_big.returncode == 1 and "max_nodes" in too_big.output

    tf.destroy()
    assert_nothing_live(sandbox)
