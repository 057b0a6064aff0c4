"""Which nodes a shrink removes first (lifecycle.ray_nodes.idle_first), from Ray's node states."""

from __future__ import annotations

from raydog.lifecycle.ray_nodes import idle_first
from raydog.ray_gcs import RayNode


def node(ip: str, busy: float, status: str = "RUNNING") -> RayNode:
    return RayNode(node_id=ip.replace(".", "") * 2, ip=ip, status=status, idle_ms=0, busy=busy)


ORDERED = ["t1", "t2", "t3", "t4", "t5"]  # oldest first
IPS = {"t1": "10.0.0.1", "t2": "10.0.0.2", "t3": "10.0.0.3", "t4": "10.0.0.4", "t5": "10.0.0.5"}


def test_nodes_missing_from_ray_go_first_then_idle_then_least_busy():
    nodes = [node("10.0.0.1", 0), node("10.0.0.2", 2), node("10.0.0.3", 1), node("10.0.0.4", 0, "IDLE"),
             node("10.0.0.5", 1, "DEAD")]  # t5's node died: it is not in Ray any more
    assert idle_first(ORDERED, IPS, nodes) == ["t5", "t4", "t1", "t3", "t2"]


def test_among_equals_the_newest_go_first_as_without_ray():
    nodes = [node(ip, 1) for ip in IPS.values()]
    assert idle_first(ORDERED, IPS, nodes) == list(reversed(ORDERED))


def test_a_task_without_a_node_address_counts_as_not_in_ray():
    nodes = [node(ip, 1) for ip in IPS.values()]
    assert idle_first(ORDERED, {k: v for k, v in IPS.items() if k != "t2"}, nodes)[0] == "t2"
