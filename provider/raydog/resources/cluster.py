"""raydog_cluster: the YellowDog work requirement that holds a Ray cluster's task groups."""

from __future__ import annotations

from typing import Optional

from tf import types
from tf.iface import CreateContext, DeleteContext, ImportContext, ReadContext, State, UpdateContext
from tf.schema import Schema

from raydog.resources.common import RaydogResource, attr, report, timeouts_block
from raydog.yellowdog import PlatformError


class ClusterResource(RaydogResource):
    spec_name = "ClusterSpec"

    @classmethod
    def get_name(cls) -> str:
        return "cluster"

    @classmethod
    def get_schema(cls) -> Schema:
        return Schema(
            version=0,
            description="A Ray cluster on YellowDog: the work requirement that holds its nodes' task groups.",
            attributes=[
                attr("id", types.String(), "Work requirement id.", computed=True),
                attr(
                    "name",
                    types.String(),
                    "Cluster name: the work requirement's name and the prefix of every pool's name.",
                    required=True,
                    requires_replace=True,
                ),
                attr("namespace", types.String(), "YellowDog namespace of the cluster.", required=True, requires_replace=True),
                attr("tag", types.String(), "Tag of the work requirement.", optional=True),
                attr("status", types.String(), "Work requirement status (RUNNING while the cluster is up).", computed=True),
            ],
            block_types=[timeouts_block()],
        )

    def create(self, ctx: CreateContext, planned: State) -> Optional[State]:
        try:
            wr = self.platform.create_work_requirement(planned["namespace"], planned["name"], planned.get("tag"))
        except PlatformError as exc:
            report(ctx.diagnostics, f"Cannot create work requirement {planned['namespace']}/{planned['name']}", exc)
            return None
        return self.full({**planned, "id": wr.id, "status": wr.status})

    def read(self, ctx: ReadContext, current: State) -> Optional[State]:
        try:
            wr = self.platform.get_work_requirement(current["id"])
        except PlatformError as exc:
            report(ctx.diagnostics, "Cannot read the cluster's work requirement; keeping it in state", exc)
            return current
        if wr is None or wr.finished:
            return None
        return self.full({**current, "name": wr.name, "namespace": wr.namespace, "tag": wr.tag, "status": wr.status})

    def update(self, ctx: UpdateContext, current: State, planned: State) -> Optional[State]:
        if current.get("tag") != planned.get("tag"):
            try:
                self.platform.set_work_requirement_tag(current["id"], planned.get("tag"))
            except PlatformError as exc:
                report(ctx.diagnostics, "Cannot update the cluster's tag", exc, ["tag"])
                return current
        return self.full({**planned, "id": current["id"], "status": current.get("status")})

    def delete(self, ctx: DeleteContext, current: State) -> None:
        try:
            self.platform.cancel_work_requirement(current["id"])
        except PlatformError as exc:
            report(ctx.diagnostics, f"Cannot cancel work requirement {current['id']}", exc)

    def import_(self, ctx: ImportContext, id: str) -> Optional[State]:
        try:
            wr = self.platform.get_work_requirement(id)
        except PlatformError as exc:
            report(ctx.diagnostics, f"Cannot import work requirement {id}", exc)
            return None
        if wr is None or wr.finished:
            ctx.diagnostics.add_error("Cannot import", f"Work requirement {id} does not exist or has finished.")
            return None
        return self.full({"id": wr.id, "name": wr.name, "namespace": wr.namespace, "tag": wr.tag, "status": wr.status})
