"""Waits woken by the work requirement's update stream (raydog.yellowdog.updates): woken by a
change of what they watch and by nothing else, closed when the waits end, and waits that
still finish by polling when the stream is refused. Waits for a peer's node follow it, and so
do waits for tasks to execute that know their work requirement; a task first seen EXECUTING
by a poll an event woke counts as started only when a poll a tenth of a second later still
sees it so (one that fails as it starts must not pass for started, however soon the stream
wakes the wait)."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from harness.waits import wait_until

from raydog.yellowdog import PoolSpec, TaskFailedError, TaskGroupSpec, TaskSpec
from raydog.yellowdog.updates import UpdateStreams, group_counts

NS = "raydog-updates"
STREAM = "GET /work/requirements/{id}/updates"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def pool_and_group(platform, wr_id: str, nodes: int = 1):
    """A pool of ``nodes`` nodes and a task group of the requirement running on it."""
    name = unique("p")
    platform.provision_pool(PoolSpec(namespace=NS, name=name, template_id="sandbox/ray-worker", images_id=None,
                                     userdata="#!/bin/bash\ntrue", instance_tags={}, metrics_enabled=False,
                                     node_count=nodes, worker_tag=name))
    return platform.ensure_task_group(wr_id, TaskGroupSpec(name, name, NS, tag=name))


def test_a_subscription_wakes_for_its_own_groups_only(platform):
    wr = platform.create_work_requirement(NS, unique("c"))
    watched = pool_and_group(platform, wr.id)
    other = pool_and_group(platform, wr.id)

    with platform._updates.subscribe(wr.id, lambda p: group_counts(p, lambda g: g.get("id") == watched.id)) as wake:
        wake.start()
        wait_until(lambda: wake.streaming, "the stream open", timeout=10)  # changes before it are not sent
        platform.add_tasks(other.id, [TaskSpec("node-0", "sleep 100", {}, None)])
        assert wake.wait(20) is True  # the first event sets what the subscription has seen
        platform.add_tasks(other.id, [TaskSpec("node-1", "sleep 100", {}, None)])
        assert wake.wait(1.5) is False, "woken by another group's task"
        platform.add_tasks(watched.id, [TaskSpec("node-0", "sleep 100", {}, None)])
        assert wake.wait(20) is True, "not woken by its own group's new task"
    assert platform._updates._streams == {}, "the stream outlived its last wait"


@pytest.mark.sandbox(provision_delay=1.0)  # the waits begin before the node is up
def test_waits_on_one_requirement_share_one_stream_and_close_it(platform, sandbox):
    wr = platform.create_work_requirement(NS, unique("c"))
    first, second = pool_and_group(platform, wr.id), pool_and_group(platform, wr.id)
    for group in (first, second):
        platform.add_tasks(group.id, [TaskSpec("node-0", "sleep 100", {}, None)])
    sandbox.reset_requests()

    with ThreadPoolExecutor(2) as pool:
        addresses = [pool.submit(platform.wait_for_group_node, wr.id, group.name, 60) for group in (first, second)]
        assert all(address.result().private_ip for address in addresses)

    assert sandbox.requests()["routes"].get(STREAM) == 1
    assert platform._updates._streams == {}, "the stream outlived its waits"


@pytest.mark.sandbox(provision_delay=1.0)
def test_a_refused_stream_leaves_the_waits_to_their_polls(platform, sandbox):
    sandbox.set_faults(f"5xx=1,routes={STREAM}")
    wr = platform.create_work_requirement(NS, unique("c"))
    group = pool_and_group(platform, wr.id)
    platform.add_tasks(group.id, [TaskSpec("node-0", "sleep 100", {}, None)])

    address = platform.wait_for_group_node(wr.id, group.name, 60)

    assert address.private_ip
    assert sandbox.requests()["routes"].get(STREAM, 0) >= 1


@pytest.mark.parametrize("variable", ["http_proxy", "HTTP_PROXY"])
def test_no_stream_through_a_proxy(monkeypatch, variable):
    monkeypatch.setenv(variable, "http://proxy.invalid:3128")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    assert not UpdateStreams("http://yellowdog.invalid", "id", "secret").available
    monkeypatch.setenv("NO_PROXY", "yellowdog.invalid")
    assert UpdateStreams("http://yellowdog.invalid", "id", "secret").available


@pytest.mark.sandbox(provision_delay=1.0)
def test_a_wait_its_first_poll_answers_opens_no_stream_nor_an_executing_wait_without_its_requirement(
        platform, sandbox):
    wr = platform.create_work_requirement(NS, unique("c"))
    group = pool_and_group(platform, wr.id)
    [task] = platform.add_tasks(group.id, [TaskSpec("node-0", "sleep 100", {}, None)])
    platform.wait_until_executing([task.id], 60)  # paused for the node: polls, no stream
    assert STREAM not in sandbox.requests()["routes"]
    sandbox.reset_requests()

    platform.wait_for_group_node(wr.id, group.name, 60)  # placed already: answered by its first poll

    assert STREAM not in sandbox.requests()["routes"]


@pytest.mark.sandbox(provision_delay=1.0)  # the task starts while the wait pauses
def test_an_executing_wait_follows_the_stream_and_counts_a_woken_task_started_a_tenth_later(platform, sandbox):
    wr = platform.create_work_requirement(NS, unique("c"))
    group = pool_and_group(platform, wr.id)
    [task] = platform.add_tasks(group.id, [TaskSpec("node-0", "sleep 100", {}, None)])
    sandbox.reset_requests()

    [seen] = platform.wait_until_executing([task.id], 60, wr_id=wr.id)

    assert seen.status == "EXECUTING"
    assert sandbox.requests()["routes"].get(STREAM) == 1


@pytest.mark.sandbox(provision_delay=1.0)
def test_a_task_that_fails_as_it_starts_is_not_taken_for_started_when_the_stream_wakes_the_wait(platform):
    wr = platform.create_work_requirement(NS, unique("c"))
    group = pool_and_group(platform, wr.id)
    # EXECUTING for 50 ms, then FAILED with 3: the stream's event wakes the wait within that time.
    [task] = platform.add_tasks(group.id, [TaskSpec("node-0", "exit 3", {"SANDBOX_EXIT_CODE": "3",
                                                                          "SANDBOX_EXIT_AFTER": "0.05"}, None)])

    with pytest.raises(TaskFailedError) as caught:
        platform.wait_until_executing([task.id], 60, wr_id=wr.id)

    assert (caught.value.task_status, caught.value.exit_code) == ("FAILED", 3)
