"""Ctrl-C during an apply: Terraform asks the provider to stop, and nothing created is lost (issue 6, item 2).

Every object created before the interrupt is in state afterwards (complete, or tainted if
its create was cut short), no provider process outlives Terraform, nothing on the sandbox
is unknown to state, and the next apply converges.
"""

from __future__ import annotations

import os
import random
import signal
import time

import pytest
from harness.platform_view import view
from harness.waits import wait_until
from raydog.names import base_name
from reliability_helpers import (
    assert_nothing_orphaned,
    assert_state_owns_the_platform,
    cluster_config,
    live_pools,
    pools_named,
    provider_processes,
    record,
    scale,
    tainted,
)

@pytest.mark.sandbox(provision_delay=600.0)
def test_ctrl_c_during_a_long_head_wait_ends_promptly_and_records_the_head(terraform, sandbox):
    terraform.write(cluster_config("intr", head_timeout="10m"))
    terraform.init()
    sandbox.reset_requests()
    proc = terraform.popen("apply", "-auto-approve", "-input=false", "-no-color")
    wait_until(lambda: list(view(sandbox).live_pools()), "the head pool is provisioned",
               until=lambda names: "intr-head" in names)
    wait_until(lambda: task_reads(sandbox), "the provider polls the head task", until=lambda reads: reads >= 2)

    interrupted = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    stdout, stderr = proc.communicate(timeout=60)
    stopped_after = time.monotonic() - interrupted

    assert proc.returncode != 0
    assert "Interrupted" in stdout + stderr, stdout + stderr
    assert stopped_after < 30, f"terraform took {stopped_after:.1f}s to stop"
    wait_until(lambda: provider_processes(terraform), "the provider processes exit", timeout=15,
               until=lambda running: not running)
    state = terraform.resources()
    head_pool = view(sandbox).live_pools()["intr-head"]
    assert state["raydog_head.h"]["id"] == head_pool["id"], "the head's pool must be in state (tainted)"
    tainted = [r for r in terraform.state()["values"]["root_module"]["resources"] if r.get("tainted")]
    assert [r["address"] for r in tainted] == ["raydog_head.h"]

    # The next apply replaces the tainted head (its old pool is removed); nothing is orphaned.
    sandbox.backend.provision_delay = 0.0
    terraform.apply()
    pools = view(sandbox).live_pools()
    assert list(pools) == ["intr-head"] and pools["intr-head"]["id"] != head_pool["id"]
    assert terraform.plan_exitcode().returncode == 0
    terraform.destroy()
    assert view(sandbox).nothing_live(), view(sandbox).live


def task_reads(sandbox) -> int:
    """How many single-task reads the sandbox has served (the head's create polls its task so)."""
    return sandbox.requests()["routes"].get("GET /work/tasks/{id}", 0)


def live_task_count(sandbox) -> int:
    return sum(len(group["tasks"]) for wr in view(sandbox).live_work_requirements() for group in wr["taskGroups"])


# ── Ctrl-C while several pools are being created ─────────────────────────────────────────



def interrupt(proc, timeout: float = 60.0) -> tuple[str, float]:
    """SIGINT to Terraform's process group (what Ctrl-C in a terminal does); wait for it to end."""
    sent = time.monotonic()
    if proc.poll() is None:  # not reaped, so its process group exists even if it has just ended
        os.killpg(proc.pid, signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=timeout)
    return stdout + stderr, time.monotonic() - sent


@pytest.mark.sandbox(provision_delay=0.0)
def test_ctrl_c_while_pools_wait_for_nodes_keeps_every_pool_in_state_and_the_next_apply_converges(
        terraform, sandbox):
    pools = pools_named("w", 6, node_count=2)
    terraform.write(cluster_config("intp", {}))
    terraform.init()
    terraform.apply()
    # From now on nodes take 10 minutes to boot, so every worker pool's create is in flight
    # (waiting for its nodes) when the interrupt comes.
    sandbox.backend.provision_delay = 600.0
    terraform.write(cluster_config("intp", pools))
    sandbox.reset_requests()
    proc = terraform.popen("apply", "-auto-approve", "-input=false", "-no-color")

    def in_flight() -> list[dict]:
        return [p for p in live_pools(view(sandbox)) if base_name(p["name"]) != "intp-head"]

    wait_until(lambda: sorted(p["name"] for p in in_flight()), "every worker pool is provisioned",
               until=lambda names: len(names) == len(pools))
    # Every create has added its tasks and polls them (one task search per round).
    wait_until(lambda: live_task_count(sandbox), "every pool's tasks are added",
               until=lambda count: count == 1 + sum(pools.values()))
    wait_until(lambda: sandbox.requests()["routes"].get("GET /work/tasks", 0), "the creates poll their tasks",
               until=lambda searches: searches >= 2 * len(pools))
    assert all(not view(sandbox).live_nodes(p["id"]) for p in in_flight())

    output, stopped_after = interrupt(proc)
    assert proc.returncode != 0 and "Interrupted" in output, output
    assert stopped_after < 30, f"terraform took {stopped_after:.1f}s to stop"
    wait_until(lambda: provider_processes(terraform), "the provider processes exit", timeout=15,
               until=lambda running: not running)

    # Every object that was created is in state: the finished ones as they are, the
    # interrupted ones tainted; nothing on the sandbox is unknown to state.
    assert_nothing_orphaned(terraform, sandbox)
    state = terraform.resources()
    assert {f"raydog_worker_pool.{name}" for name in pools} <= set(state)
    assert {f"raydog_worker_pool.{name}" for name in pools} == set(tainted(terraform))
    for name in pools:
        assert state[f"raydog_worker_pool.{name}"]["task_group_id"], name

    sandbox.backend.provision_delay = 0.0
    terraform.apply()
    assert_state_owns_the_platform(terraform, sandbox)
    assert sorted(base_name(p["name"]) for p in live_pools(view(sandbox))) == sorted(
        ["intp-head", *(f"intp-{name}" for name in pools)])
    assert tainted(terraform) == []
    assert terraform.plan_exitcode().returncode == 0
    terraform.destroy()
    assert view(sandbox).nothing_live(), view(sandbox).live


INTERRUPT_SEEDS = list(range(1, scale("RAYDOG_INTERRUPT_SEEDS", 2) + 1))


@pytest.mark.parametrize("seed", INTERRUPT_SEEDS)
def test_ctrl_c_at_a_random_moment_of_a_slow_apply_orphans_nothing(seed, sandbox_factory, terraform_factory):
    """Latency makes every create take several requests' time; the interrupt lands anywhere in them."""
    rng = random.Random(seed)
    sandbox = sandbox_factory(faults=f"latency=50-400ms,seed={seed}")
    tf = terraform_factory(f"intr-{seed}", sandbox=sandbox)
    pools = pools_named("r", 12, node_count=1)
    tf.write(cluster_config("intr", pools, wait_for_nodes=False))
    tf.init()
    proc = tf.popen("apply", "-auto-approve", "-input=false", "-no-color", "-parallelism=10")
    wait_until(lambda: len(live_pools(view(sandbox))), "the first worker pool is provisioned", timeout=120,
               until=lambda count: count >= 2)
    # The random moment is a random number of further API requests into the apply (about 25
    # follow the first pool's; should the apply end first, it is interrupted after its end).
    after_requests = rng.randint(0, 20)
    target = sandbox.requests()["total"] + after_requests
    wait_until(lambda: (sandbox.requests()["total"], proc.poll()), f"the sandbox has served {target} requests",
               timeout=120, until=lambda seen: seen[0] >= target or seen[1] is not None)
    output, stopped_after = interrupt(proc)
    assert proc.returncode != 0 and "Interrupt received" in output, output
    live_at_interrupt = len(live_pools(view(sandbox)))
    wait_until(lambda: provider_processes(tf), "the provider processes exit", timeout=15,
               until=lambda running: not running)
    assert_nothing_orphaned(tf, sandbox)

    sandbox.set_faults("none")
    tf.apply()
    assert_state_owns_the_platform(tf, sandbox)
    assert len(live_pools(view(sandbox))) == len(pools) + 1
    assert tf.plan_exitcode().returncode == 0
    tf.destroy()
    assert view(sandbox).nothing_live(), view(sandbox).live
    record("interrupt", {"seed": seed, "after_requests": after_requests, "exit_code": proc.returncode,
                         "pools_live_at_interrupt": live_at_interrupt, "stopped_after": round(stopped_after, 1)})
