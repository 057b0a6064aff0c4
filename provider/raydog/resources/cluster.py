"""raydog_cluster: the YellowDog work requirement that holds a Ray cluster's task groups."""

from __future__ import annotations

from typing import Optional

from tf.iface import CreateContext, DeleteContext, ImportContext, ReadContext, State, UpdateContext

from raydog import names
from raydog.config import rules
from raydog.config.fields import STRING, Field, Rule, Table
from raydog.config.models import ClusterConfig
from raydog.config.node_fields import TIMEOUTS
from raydog.lifecycle.diagnostics import report
from raydog.lifecycle.resource import RaydogResource
from raydog.yellowdog import PlatformError

TABLE = Table(
    fields=(
        Field("id", STRING, "Work requirement id.", computed=True),
        Field("name", STRING, "Cluster name: the work requirement's name and the prefix of every pool's name.",
              required=True, replace=True, check=rules.cluster_name),
        Field("namespace", STRING, "YellowDog namespace of the cluster.", required=True, replace=True,
              check=rules.name("namespace")),
        Field("tag", STRING, "Tag of the work requirement.", optional=True, check=rules.name("tag")),
        Field("status", STRING, "Work requirement status (RUNNING while the cluster is up).", computed=True),
    ),
    rules=(Rule(("name",), "name", rules.derived_name(names.HEAD_SUFFIX, "cluster's head pool")),),
    blocks=(TIMEOUTS,),
)


class ClusterResource(RaydogResource):
    table = TABLE
    description = "A Ray cluster on YellowDog: the work requirement that holds its nodes' task groups."

    @classmethod
    def get_name(cls) -> str:
        return "cluster"

    def create(self, ctx: CreateContext, planned: State) -> Optional[State]:
        config = ClusterConfig.parse(planned)
        try:
            wr = self.client.create_work_requirement(config.namespace, config.name, config.tag)
        except PlatformError as exc:
            report(ctx.diagnostics, f"Cannot create work requirement {config.namespace}/{config.name}", exc)
            return None
        return self.full({**planned, "id": wr.id, "status": wr.status})

    def read(self, ctx: ReadContext, current: State) -> Optional[State]:
        try:
            wr = self.client.get_work_requirement(current["id"])
        except PlatformError as exc:
            report(ctx.diagnostics, "Cannot read the cluster's work requirement; keeping it in state", exc)
            return current
        if wr is None or wr.finished:
            return None
        return self.full({**current, "name": wr.name, "namespace": wr.namespace, "tag": wr.tag, "status": wr.status})

    def update(self, ctx: UpdateContext, current: State, planned: State) -> Optional[State]:
        config = ClusterConfig.parse(planned)
        if current.get("tag") != config.tag:
            try:
                self.client.set_work_requirement_tag(current["id"], config.tag)
            except PlatformError as exc:
                report(ctx.diagnostics, "Cannot update the cluster's tag", exc, ["tag"])
                return current
        return self.full({**planned, "id": current["id"], "status": current.get("status")})

    def delete(self, ctx: DeleteContext, current: State) -> None:
        try:
            self.client.cancel_work_requirement(current["id"])
        except PlatformError as exc:
            report(ctx.diagnostics, f"Cannot cancel work requirement {current['id']}", exc)

    def import_(self, ctx: ImportContext, id: str) -> Optional[State]:
        try:
            wr = self.client.get_work_requirement(id)
        except PlatformError as exc:
            report(ctx.diagnostics, f"Cannot import work requirement {id}", exc)
            return None
        if wr is None or wr.finished:
            ctx.diagnostics.add_error("Cannot import", f"Work requirement {id} does not exist or has finished.")
            return None
        return self.full({"id": wr.id, "name": wr.name, "namespace": wr.namespace, "tag": wr.tag, "status": wr.status})
