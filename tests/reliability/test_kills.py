"""`kill -9` of Terraform or of the provider at a random moment of an apply (issue 13, item 2).

Nothing gets a chance to clean up: no StopProvider, no partial state, and Terraform may not
have written the objects already created into its state. The next apply in the same working
directory must converge (each object once, nothing live outside state: what the killed run
made is proven its own through the ownership journal and adopted or removed), and destroy
must leave nothing of the cluster live.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter

import pytest
from harness.platform_view import view
from harness.waits import wait_until
from raydog.names import base_name
from reliability_helpers import (
    assert_state_owns_the_platform,
    cluster_config,
    live_pools,
    pools_named,
    provider_processes,
    record,
    scale,
)

KILL_SEEDS = list(range(1, scale("RAYDOG_KILL_SEEDS", 2) + 1))
POOLS = scale("RAYDOG_KILL_POOLS", 6)
PROVISION_DELAY = 1.5  # seconds: every create spends time waiting, so kills land inside them


def kill_terraform(tf, proc) -> str:
    os.kill(proc.pid, signal.SIGKILL)
    return "terraform"


def kill_provider(tf, proc) -> str:
    running = provider_processes(tf)
    assert running, "no provider process is running at the kill point"
    for p in running:
        p.send_signal(signal.SIGKILL)
    return "provider"


KILLERS = {"terraform": kill_terraform, "provider": kill_provider}


@pytest.mark.parametrize("seed", KILL_SEEDS)
@pytest.mark.parametrize("target", sorted(KILLERS))
def test_kill_9_at_a_random_moment_then_the_next_apply_converges_and_destroy_leaves_nothing(
        target, seed, sandbox_factory, terraform_factory):
    rng = random.Random(f"{target}-{seed}")
    sandbox = sandbox_factory(provision_delay=PROVISION_DELAY, faults=f"latency=0-100ms,seed={seed}")
    tf = terraform_factory(f"kill-{target}-{seed}", sandbox=sandbox)
    pools = pools_named("k", POOLS, node_count=2)
    tf.write(cluster_config("kill", pools, wait_for_nodes=True))
    tf.init()

    proc = tf.popen("apply", "-auto-approve", "-input=false", "-no-color", "-parallelism=10")
    # Kill points cover the apply from its first create: the cluster's, the head's wait for
    # its node, and the pools being provisioned and waited for.
    wait_until(lambda: bool(view(sandbox).live_work_requirements()) or proc.poll() is not None,
               "the cluster's work requirement is created", timeout=120)
    started = time.monotonic()
    delay = rng.uniform(0.0, 0.5 + 2 * PROVISION_DELAY)
    time.sleep(delay)  # the random kill point itself, not a wait for anything
    if proc.poll() is not None:
        pytest.fail(f"the apply ended {time.monotonic() - started:.1f}s in, before the kill point ({delay:.2f}s)")
    killed = KILLERS[target](tf, proc)
    proc.communicate(timeout=60)
    # A provider whose Terraform was killed notices and exits by itself.
    wait_until(lambda: not provider_processes(tf), "the provider processes exit", timeout=15)
    live_at_kill = [base_name(p["name"]) for p in live_pools(view(sandbox))]
    recorded = set(tf.resources())

    sandbox.set_faults("none")
    tf.apply("-parallelism=10")
    assert_state_owns_the_platform(tf, sandbox)
    names = Counter(base_name(p["name"]) for p in live_pools(view(sandbox)))
    assert names == Counter(["kill-head", *(f"kill-{name}" for name in pools)]), names
    live_wrs = [base_name(w["name"]) for w in view(sandbox).live_work_requirements()]
    assert live_wrs == ["kill"], live_wrs
    assert tf.plan_exitcode().returncode == 0

    tf.destroy()
    assert view(sandbox).nothing_live(), view(sandbox).live
    record("kill", {"target": killed, "seed": seed, "kill_point": round(delay, 2),
                    "pools_live_at_kill": len(live_at_kill),
                    "in_state_at_kill": len(recorded), "cluster_in_state_at_kill": "raydog_cluster.c" in recorded})


def test_a_cluster_created_by_a_killed_run_before_terraform_recorded_it_is_adopted_and_its_pools_removed(
        sandbox, terraform_factory):
    """The narrowest kill window, made deterministic: the killed run's work requirement and
    head pool exist, its journal holds their tokens, and Terraform's state holds nothing.
    The next apply adopts the requirement (its token is in the journal), removes the pool
    that no resource in state holds, and creates the nodes again."""
    from datetime import timedelta

    from raydog.lifecycle.node_pool import WORK_REQUIREMENT, WORKER_POOL
    from raydog.lifecycle.ownership import OwnershipJournal
    from raydog.yellowdog import PoolSpec, TaskGroupSpec, TaskSpec, YellowDogClient

    tf = terraform_factory("killed-early", sandbox=sandbox)
    tf.write(cluster_config("early", {}))
    tf.init()
    journal = OwnershipJournal(tf.workdir / ".terraform" / "raydog-ownership.json")
    client = YellowDogClient.connect(sandbox.url, sandbox.key_id, sandbox.key_secret)
    wr = client.create_work_requirement("tests", "early",
                                        owner_token=journal.issue(WORK_REQUIREMENT, "tests", "early"))
    token = journal.issue(WORKER_POOL, "tests", "early-head")
    pool = client.provision_pool(PoolSpec(
        namespace="tests", name="early-head", template_id="sandbox/ray-head", images_id=None, userdata=None,
        instance_tags={}, metrics_enabled=False, node_count=1, worker_tag=token,
        idle_node_shutdown=timedelta(minutes=5), idle_pool_shutdown=timedelta(minutes=10), node_boot_timeout=None))
    group = client.ensure_task_group(wr.id, TaskGroupSpec(name="head-0badc0de", worker_tag=token,
                                                          namespace="tests", tag="early-head"))
    client.add_tasks(group.id, [TaskSpec("head", "sleep 3600", {}, None)])
    assert tf.resources() == {}

    tf.apply()

    state = tf.resources()
    assert state["raydog_cluster.c"]["id"] == wr.id, "the killed run's work requirement is adopted"
    assert state["raydog_head.h"]["id"] != pool.id, "the killed run's head pool is replaced"
    assert_state_owns_the_platform(tf, sandbox)
    assert [base_name(p["name"]) for p in live_pools(view(sandbox))] == ["early-head"]  # or its next generation
    assert tf.plan_exitcode().returncode == 0
    tf.destroy()
    assert view(sandbox).nothing_live(), view(sandbox).live


def test_a_same_named_cluster_whose_token_the_journal_never_held_is_not_adopted(sandbox, terraform_factory):
    """The same situation from another working directory: nothing proves the requirement is
    this configuration's, so the apply stops and nothing of the other one is touched."""
    from raydog.yellowdog import YellowDogClient

    client = YellowDogClient.connect(sandbox.url, sandbox.key_id, sandbox.key_secret)
    other = client.create_work_requirement("tests", "early")
    tf = terraform_factory("elsewhere", sandbox=sandbox)
    tf.write(cluster_config("early", {}))
    tf.init()

    refused = tf.apply(check=False)

    assert refused.returncode != 0 and "Cluster name taken" in refused.output, refused.output
    assert client.get_work_requirement(other.id).status == "RUNNING"
    assert tf.resources() == {}
