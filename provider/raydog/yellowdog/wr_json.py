"""A work requirement as the API's JSON, for the read-modify-write of its task-group list.

Appending a pool's task group is a read and an update of the whole requirement (reference
§1: no task-group endpoint), and the requirement grows with every group. Converting it to
and from the SDK's model (cattrs) costs several times the JSON parsing itself, three times
per update (the read, the body, the answer): at a few hundred groups that conversion was
most of a pool create's CPU, and grew with the number of pools. The update needs none of
it: the groups are read, kept and sent back exactly as the platform gave them (fields the
SDK does not model are kept too), and only the new groups are built from the SDK's model.
The requests go through the SDK's own work proxy: its session (retry, status hook),
authentication and error types, as every other call. The body is written compactly and
compressed at level 1 rather than the SDK's 9: at a few hundred groups the SDK's compression
alone cost as much CPU as everything else in the update, for a body barely smaller.
"""

from __future__ import annotations

import gzip
import json
from typing import Any

from yellowdog_client.common.json import Json
from yellowdog_client.model import TaskGroup, TaskGroupStatus, WorkRequirementStatus

from .core import ClientCore
from .models import TaskGroupInfo, WorkRequirementInfo
from .ownership import is_owner_group


# What of the SDK's Proxy the JSON requests use (its raw_execute, less the compression level).
_PROXY_PARTS = ("raw_execute", "_session", "_base_url", "_authentication_headers_provider",
                "_get_user_agent_headers", "_handle_response", "_connection_timeout", "_read_timeout",
                "GZIP_THRESHOLD_BYTES")


class WorkRequirementJson(ClientCore):
    """Reads and updates of a work requirement as JSON (dicts), under ``YellowDogClient``."""

    def _wr_json(self, wr_id: str) -> dict:
        """The requirement as the platform answers it; PlatformError (not found included) otherwise."""
        return self._call("read work requirement", wr_id,
                          lambda: self._work_proxy().raw_execute("GET", f"requirements/{wr_id}").json())

    def _wr_json_or_none(self, wr_id: str) -> dict | None:
        """The requirement as the platform answers it, or None if the platform has no such id."""
        return self._get_or_none("read work requirement", wr_id,
                                 lambda: self._work_proxy().raw_execute("GET", f"requirements/{wr_id}").json())

    def _put_wr_json(self, operation: str, wr: dict) -> dict:
        """Update the requirement with ``wr`` (the whole of it); the platform's answer."""
        return self._call(operation, wr.get("id"), lambda: _send_json(self._work_proxy(), "PUT", "requirements", wr))

    def _work_proxy(self) -> Any:
        """The SDK's proxy for /work/ (kept private by the SDK, whose version is pinned)."""
        service = getattr(self._sdk.work_client, "_WorkClientImpl__service_proxy", None)
        proxy = getattr(service, "_proxy", None)
        if proxy is None or not all(hasattr(proxy, name) for name in _PROXY_PARTS):
            raise RuntimeError("yellowdog-sdk changed: its work client has no proxy to send JSON with")
        return proxy


def _send_json(proxy: Any, method: str, path: str, body: object) -> Any:
    """``proxy.raw_execute`` with a compact body, gzipped at level 1 (see the module's docstring)."""
    import requests

    raw = json.dumps(body, separators=(",", ":")).encode()
    headers = {**proxy._get_user_agent_headers(), "Content-Type": "application/json"}
    if len(raw) > proxy.GZIP_THRESHOLD_BYTES:
        raw = gzip.compress(raw, compresslevel=1)
        headers["Content-Encoding"] = "gzip"
    session = proxy._session
    prepared = session.prepare_request(requests.Request(
        method=method, url=proxy._base_url + path, auth=proxy._authentication_headers_provider, headers=headers,
        data=raw))
    settings = session.merge_environment_settings(prepared.url, {}, None, None, None)
    response = session.send(request=prepared, timeout=(proxy._connection_timeout, proxy._read_timeout), **settings)
    return proxy._handle_response(response).json()


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


def wr_info(wr: dict) -> WorkRequirementInfo:
    """What the provider reads of a requirement (its node groups; the owner marker's token)."""
    groups = groups_of(wr)
    return WorkRequirementInfo(
        id=wr.get("id"), namespace=wr.get("namespace"), name=wr.get("name"), tag=wr.get("tag"),
        status=wr.get("status") or None, finished=wr_finished(wr),
        task_groups=tuple(group_info(group) for group in groups if not is_owner_group(group.get("name"))),
        owner_token=next((group.get("tag") for group in groups if is_owner_group(group.get("name"))), None),
    )


def group_json(group: TaskGroup) -> dict:
    """A new group (the SDK's model) as the API's JSON."""
    return Json.dump(group)
