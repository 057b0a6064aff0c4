"""Waiting for tasks to execute, against the sandbox over HTTP (simulate mode).

The sandbox's simulate-mode knob ``SANDBOX_EXIT_CODE`` makes a task end with that code.
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from raydog.yellowdog import (
    YellowDogClient,
    PlatformError,
    PoolSpec,
    StoppedError,
    TaskFailedError,
    TaskGroupSpec,
    TaskSpec,
    WaitTimeoutError,
)

NS = "raydog-ops"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def cluster(platform: YellowDogClient, node_count: int, finish_if_any_task_failed: bool = False):
    """A work requirement with one group whose tasks run on a pool of ``node_count`` nodes (0: no pool)."""
    tag = unique("p")
    if node_count:
        spec = PoolSpec(NS, tag, "sandbox/ray-worker", None, None, {}, False, node_count, tag)
        platform.provision_pool(spec)
    wr = platform.create_work_requirement(NS, unique("c"))
    group = platform.ensure_task_group(
        wr.id, TaskGroupSpec("nodes", tag, NS, None, finish_if_any_task_failed))
    return wr, group


def tasks(count: int, **environment: str) -> list[TaskSpec]:
    return [TaskSpec(f"node-{i}", "sleep 1000", dict(environment), None) for i in range(count)]


@pytest.mark.sandbox(provision_delay=0.3, task_start_delay=0.2)
def test_returns_every_task_once_all_execute(platform):
    _, group = cluster(platform, node_count=4)
    added = platform.add_tasks(group.id, tasks(4))
    seen: list[list[str]] = []

    executing = platform.wait_until_executing([t.id for t in added], timeout_seconds=30,
                                              on_progress=lambda now: seen.append([t.status for t in now]))

    assert [t.id for t in executing] == [t.id for t in added]
    assert {t.status for t in executing} == {"EXECUTING"}
    assert all(t.node_id and t.worker_id for t in executing)
    assert seen and seen[-1] == ["EXECUTING"] * 4


def test_one_search_per_round_serves_many_tasks(platform, sandbox):
    _, group = cluster(platform, node_count=6)
    added = platform.add_tasks(group.id, tasks(6))
    sandbox.reset_requests()

    platform.wait_until_executing([t.id for t in added], timeout_seconds=30, task_group_id=group.id)

    routes = sandbox.requests()["routes"]
    assert routes.get("GET /work/tasks/{id}", 0) == 0
    assert routes.get("GET /work/tasks", 0) >= 1


def test_a_wait_on_tasks_this_client_added_reads_no_task(platform, sandbox):
    _, group = cluster(platform, node_count=4)
    added = platform.add_tasks(group.id, tasks(4))
    sandbox.reset_requests()

    platform.wait_until_executing([t.id for t in added], timeout_seconds=30)

    routes = sandbox.requests()["routes"]
    assert routes.get("GET /work/tasks/{id}", 0) == 0
    assert routes.get("GET /work/tasks", 0) >= 1


def test_times_out_with_the_last_status_when_no_node_comes(platform):
    _, group = cluster(platform, node_count=0)
    [task] = platform.add_tasks(group.id, tasks(1))

    with pytest.raises(WaitTimeoutError) as caught:
        platform.wait_until_executing([task.id], timeout_seconds=1.0)

    assert caught.value.object_id == task.id
    assert caught.value.last_status in ("PENDING", "READY")
    assert caught.value.waited_seconds >= 1.0


def test_a_failed_task_ends_the_wait_with_its_exit_code(platform):
    _, group = cluster(platform, node_count=2, finish_if_any_task_failed=True)
    added = platform.add_tasks(group.id, [TaskSpec("head", "exit 3", {"SANDBOX_EXIT_CODE": "3"}, None),
                                          TaskSpec("other", "sleep 1000", {}, None)])

    with pytest.raises(TaskFailedError) as caught:
        platform.wait_until_executing([t.id for t in added], timeout_seconds=30)

    assert caught.value.task_id == added[0].id
    assert (caught.value.task_status, caught.value.exit_code) == ("FAILED", 3)
    assert caught.value.detail


def test_a_cancelled_task_ends_the_wait(platform):
    _, group = cluster(platform, node_count=0)
    [task] = platform.add_tasks(group.id, tasks(1))
    threading.Timer(0.3, platform.cancel_task, args=(task.id,)).start()

    with pytest.raises(TaskFailedError) as caught:
        platform.wait_until_executing([task.id], timeout_seconds=30)

    assert caught.value.task_status == "CANCELLED" and caught.value.exit_code is None


def test_a_stop_request_ends_the_wait(platform):
    _, group = cluster(platform, node_count=0)
    [task] = platform.add_tasks(group.id, tasks(1))
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()

    with pytest.raises(StoppedError):
        platform.wait_until_executing([task.id], timeout_seconds=60, stop_event=stop)


def test_transient_errors_do_not_end_a_wait(platform, sandbox):
    _, group = cluster(platform, node_count=3)
    added = platform.add_tasks(group.id, tasks(3))
    sandbox.set_faults("5xx=0.5,methods=GET,seed=11")

    executing = platform.wait_until_executing([t.id for t in added], timeout_seconds=60)

    sandbox.set_faults(None)
    assert {t.status for t in executing} == {"EXECUTING"}


def test_an_empty_wait_returns_at_once(platform):
    assert platform.wait_until_executing([], timeout_seconds=0) == []


def peer_group(platform: YellowDogClient, node_count: int):
    """A work requirement with one group tagged like a node pool (its tag is the pool's name)."""
    tag = unique("p")
    if node_count:
        platform.provision_pool(PoolSpec(NS, tag, "sandbox/ray-head", None, None, {}, False, node_count, tag))
    wr = platform.create_work_requirement(NS, unique("c"))
    group = platform.ensure_task_group(wr.id, TaskGroupSpec("head", tag, NS, None, tag=tag))
    return wr, group, tag


@pytest.mark.sandbox(provision_delay=0.3)
def test_a_peers_address_is_its_nodes_private_ip(platform, sandbox):
    wr, group, tag = peer_group(platform, node_count=1)
    platform.add_tasks(group.id, tasks(1))

    address = platform.wait_for_group_node(wr.id, tag, 30)

    node = next(n for n in sandbox.state()["nodes"] if n["id"] == address.node_id)
    assert address.private_ip == node["privateIp"] and address.public_ip is None


def test_a_peer_whose_task_ended_fails_the_wait_after_the_grace_not_the_timeout(platform):
    wr, group, tag = peer_group(platform, node_count=0)
    [task] = platform.add_tasks(group.id, tasks(1))
    platform.cancel_task(task.id)  # the peer's create failed: its task ended before it had a node

    started = time.monotonic()
    with pytest.raises(PlatformError, match=r"ended \(CANCELLED\) before its node was known.*within 1 s") as raised:
        platform.wait_for_group_node(wr.id, tag, timeout_seconds=60, gone_grace=1.0)
    assert not isinstance(raised.value, WaitTimeoutError)
    assert time.monotonic() - started < 30, "failed after the grace, not at the 60 s timeout"
