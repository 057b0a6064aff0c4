"""Read the sandbox's /sandbox/v1/state the way tests ask questions of it."""

from __future__ import annotations

from raydog.names import base_name
from raydog.yellowdog.ownership import OWNER_GROUP

FINISHED_POOL = {"SHUTDOWN", "TERMINATED"}
FINISHED_TASK = {"COMPLETED", "FAILED", "ABORTED", "CANCELLED", "DISCARDED", "RESUBMITTED"}


class PlatformView:
    def __init__(self, state: dict) -> None:
        self.state = state

    @property
    def live(self) -> dict:
        return self.state["live"]

    def nothing_live(self) -> bool:
        return all(count == 0 for count in self.live.values())

    def live_pools(self) -> dict[str, dict]:
        """Live worker pools by the name the provider derives (``lc-alpha`` for its later
        generations ``lc-alpha--2`` ... too, which a strict platform makes it use)."""
        return {base_name(p["name"]): p for p in self.state["workerPools"] if p["status"] not in FINISHED_POOL}

    def pool(self, pool_id: str) -> dict:
        return next(p for p in self.state["workerPools"] if p["id"] == pool_id)

    def live_nodes(self, pool_id: str) -> list[dict]:
        return [n for n in self.state["nodes"] if n["workerPoolId"] == pool_id and n["status"] in ("RUNNING", "LATE")]

    def work_requirement(self, wr_id: str) -> dict:
        return next(w for w in self.state["workRequirements"] if w["id"] == wr_id)

    def live_work_requirements(self) -> list[dict]:
        return [w for w in self.state["workRequirements"] if w["status"] in ("RUNNING", "HELD", "FINISHING", "CANCELLING")]

    def node_groups(self, wr_id: str) -> list[dict]:
        return node_groups(self.work_requirement(wr_id))

    def group(self, group_id: str) -> dict:
        for wr in self.state["workRequirements"]:
            for group in [*wr["taskGroups"], *wr.get("removedTaskGroups", [])]:
                if group["id"] == group_id:
                    return group
        raise KeyError(group_id)

    def tasks(self, group_id: str, status: str | None = None) -> list[dict]:
        tasks = self.group(group_id)["tasks"]
        return [t for t in tasks if status is None or t["status"] == status]

    def live_tasks(self, group_id: str) -> list[dict]:
        return [t for t in self.group(group_id)["tasks"] if t["status"] not in FINISHED_TASK]

    def pool_tasks_know_their_peers(self, group_id: str, count: int, head_ip: str, observability_ip: str) -> bool:
        """Whether the group's ``count`` tasks are all EXECUTING with the head's and the observability
        node's private IPs in their environment (RAY_HEAD_IP, its deprecated twin, OBSERVABILITY_HOST)."""
        wanted = {"RAY_HEAD_IP": head_ip, "RAY_HEAD_NODE_PRIVATE_IP": head_ip, "OBSERVABILITY_HOST": observability_ip}
        tasks = self.tasks(group_id)
        return [t["status"] for t in tasks] == ["EXECUTING"] * count and all(
            t["environment"].get(name) == value for t in tasks for name, value in wanted.items())

    def node(self, node_id: str) -> dict:
        return next(n for n in self.state["nodes"] if n["id"] == node_id)


def view(sandbox) -> PlatformView:
    return PlatformView(sandbox.state())


def node_groups(wr: dict) -> list[dict]:
    """A work requirement's task groups (as /sandbox/v1/state shows them) without its owner
    marker, the empty group that carries the token of the create that made it."""
    return [g for g in wr["taskGroups"] if g["name"] != OWNER_GROUP]
