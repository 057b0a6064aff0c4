"""A work requirement as the API's JSON, for the read-modify-write of its task-group list.

Appending a pool's task group is a read and an update of the whole requirement (reference
§1: no task-group endpoint), and the requirement grows with every group. Converting it to
and from the SDK's model (cattrs) costs several times the JSON parsing itself, three times
per update (the read, the body, the answer): at a few hundred groups that conversion was
most of a pool create's CPU, and grew with the number of pools. The update needs none of
it: the groups are read, kept and sent back exactly as the platform gave them (fields the
SDK does not model are kept too), and only the new groups are built from the SDK's model.
The requests go through the SDK's own work proxy: its session, retry, compression and error
types, as every other call.
"""

from __future__ import annotations

from typing import Any

from yellowdog_client.common.json import Json
from yellowdog_client.model import TaskGroup, TaskGroupStatus, WorkRequirementStatus

from .core import ClientCore
from .models import TaskGroupInfo


class WorkRequirementJson(ClientCore):
    """Reads and updates of a work requirement as JSON (dicts), under ``YellowDogClient``."""

    def _wr_json(self, wr_id: str) -> dict:
        """The requirement as the platform answers it; PlatformError (not found included) otherwise."""
        return self._call("read work requirement", wr_id,
                          lambda: self._work_proxy().raw_execute("GET", f"requirements/{wr_id}").json())

    def _put_wr_json(self, operation: str, wr: dict) -> dict:
        """Update the requirement with ``wr`` (the whole of it); the platform's answer."""
        return self._call(operation, wr.get("id"),
                          lambda: self._work_proxy().raw_execute("PUT", "requirements", json=wr).json())

    def _work_proxy(self) -> Any:
        """The SDK's proxy for /work/ (kept private by the SDK, whose version is pinned)."""
        service = getattr(self._sdk.work_client, "_WorkClientImpl__service_proxy", None)
        proxy = getattr(service, "_proxy", None)
        if proxy is None or not hasattr(proxy, "raw_execute"):
            raise RuntimeError("yellowdog-sdk changed: its work client has no proxy to send JSON with")
        return proxy


def wr_finished(wr: dict) -> bool:
    status = wr.get("status")
    return bool(status) and WorkRequirementStatus(status).finished


def groups_of(wr: dict) -> list[dict]:
    return list(wr.get("taskGroups") or [])


def group_named(wr: dict, name: str) -> dict | None:
    return next((group for group in groups_of(wr) if group.get("name") == name), None)


def group_worker_tags(group: dict) -> list[str]:
    return list((group.get("runSpecification") or {}).get("workerTags") or [])


def group_info(group: dict) -> TaskGroupInfo:
    status = group.get("status")
    return TaskGroupInfo(id=group.get("id"), name=group.get("name"), status=status or None,
                         finished=bool(status) and TaskGroupStatus(status).terminated)


def group_json(group: TaskGroup) -> dict:
    """A new group (the SDK's model) as the API's JSON."""
    return Json.dump(group)
