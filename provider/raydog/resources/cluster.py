"""raydog_cluster: the YellowDog work requirement that holds a Ray cluster's task groups."""

from __future__ import annotations

import logging
from typing import Optional

from tf.iface import CreateContext, DeleteContext, ImportContext, ReadContext, State, UpdateContext

from raydog import names
from raydog.config import rules
from raydog.config.fields import STRING, Field, Rule, Table
from raydog.config.models import ClusterConfig, Timeouts
from raydog.config.node_fields import TIMEOUTS
from raydog.lifecycle.diagnostics import report
from raydog.lifecycle.node_pool import WORK_REQUIREMENT, release_pool
from raydog.lifecycle.resource import RaydogResource
from raydog.lifecycle.scripts import warm_default_scripts
from raydog.yellowdog import OwnedElsewhereError, PlatformError, WaitTimeoutError, WorkRequirementInfo

log = logging.getLogger("raydog.resources")

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
            wr, token = self._create_work_requirement(config)
            if wr.owner_token != token:
                # Made by a run of this configuration that was killed before Terraform recorded
                # it: no resource in state holds its pools, so they go; the requirement is kept.
                self._release_pools(wr, Timeouts.parse(planned.get("timeouts")))
        except OwnedElsewhereError as exc:
            ctx.diagnostics.add_error(
                "Cluster name taken",
                f"{exc}. To manage it with this configuration, import it "
                f'(import {{ to = raydog_cluster.<name>, id = "{exc.existing_id}" }}), or choose another name '
                "or namespace.",
                path=["name"],
            )
            return None
        except PlatformError as exc:
            report(ctx.diagnostics, f"Cannot create work requirement {config.namespace}/{config.name}", exc)
            return None
        warm_default_scripts()  # while Terraform records the cluster, for the node resources that plan next
        return self.full({**planned, "id": wr.id, "status": wr.status})

    def _create_work_requirement(self, config: ClusterConfig) -> tuple[WorkRequirementInfo, str]:
        """Create (or adopt, when proven ours) the work requirement under the first generation of
        the cluster's name the platform does not keep for a finished one (names.generations)."""
        journal = self.provider.ownership
        for name in names.generations(config.name):
            token = journal.issue(WORK_REQUIREMENT, config.namespace, name)  # before any request
            try:
                return self.client.create_work_requirement(
                    config.namespace, name, config.tag, owner_token=token,
                    proven_tokens=journal.tokens(WORK_REQUIREMENT, config.namespace, name)), token
            except OwnedElsewhereError:
                raise
            except PlatformError as exc:
                if not exc.name_taken:
                    raise
                log.info("work requirement name %s/%s is kept by a finished one; trying the next", config.namespace,
                         name)
        raise PlatformError("create work requirement", f"every generation of {config.namespace}/{config.name} is "
                            "taken", object_id=config.name)

    def _release_pools(self, wr: WorkRequirementInfo, timeouts: Timeouts) -> list[str]:
        """Remove every live pool serving the cluster; the ids of those that could not be removed."""
        left = []
        for pool in self.client.live_pools_serving(wr.id):
            try:
                release_pool(self.client, wr.id, pool, timeouts, self.provider.stopping)
            except PlatformError as exc:
                left.append(f"{pool.id} ({exc})")
        return left

    def _wait_terminated(self, wr: WorkRequirementInfo, timeouts: Timeouts) -> None:
        try:
            self.client.wait_until_terminated(wr.namespace, names.pool_name(names.base_name(wr.name), ""),
                                              timeouts.delete.total_seconds(), self.provider.stopping)
        except WaitTimeoutError as exc:
            log.warning("cluster %s: its pools' compute requirements are still terminating (%s)", wr.id, exc)

    def read(self, ctx: ReadContext, current: State) -> Optional[State]:
        try:
            wr = self.client.get_work_requirement(current["id"])
        except PlatformError as exc:
            report(ctx.diagnostics, "Cannot read the cluster's work requirement; keeping it in state", exc)
            return current
        if wr is None or wr.finished:
            return None
        return self.full({**current, "name": names.base_name(wr.name), "namespace": wr.namespace, "tag": wr.tag,
                          "status": wr.status})

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
        """Cancel the work requirement (its tasks are aborted, so their EXIT traps run), then
        shut down every pool still serving it: those of node resources that are no longer in
        state (a killed apply's). Success only when none is left live."""
        wr_id = current["id"]
        try:
            wr = self.client.cancel_work_requirement(wr_id)
            if wr is None:
                return
            timeouts = Timeouts.parse(current.get("timeouts"))
            left = self._release_pools(wr, timeouts)
            if not left:  # verify: a pool the platform still counts as live is not removed
                left = [p.id for p in self.client.live_pools_serving(wr_id)]
            if not left:  # the pools' compute requirements, all TERMINATING by now, to TERMINATED
                self._wait_terminated(wr, timeouts)
        except PlatformError as exc:
            report(ctx.diagnostics, f"Cannot cancel work requirement {wr_id}", exc)
            return
        if left:
            ctx.diagnostics.add_error(
                "Cluster pools still live",
                f"Work requirement {wr_id} is cancelled, but these worker pools serving it are still live: "
                f"{', '.join(left)}. Run terraform destroy again to retry.",
            )

    def import_(self, ctx: ImportContext, id: str) -> Optional[State]:
        try:
            wr = self.client.get_work_requirement(id)
        except PlatformError as exc:
            report(ctx.diagnostics, f"Cannot import work requirement {id}", exc)
            return None
        if wr is None or wr.finished:
            ctx.diagnostics.add_error("Cannot import", f"Work requirement {id} does not exist or has finished.")
            return None
        # Importing takes ownership: the journal holds the requirement's token from now on.
        journal = self.provider.ownership
        try:
            if wr.owner_token is None:
                wr = self.client.mark_owner(wr.id, journal.issue(WORK_REQUIREMENT, wr.namespace, wr.name))
            else:
                journal.record(WORK_REQUIREMENT, wr.namespace, wr.name, wr.owner_token)
        except PlatformError as exc:
            report(ctx.diagnostics, f"Cannot import work requirement {id}", exc)
            return None
        return self.full({"id": wr.id, "name": names.base_name(wr.name), "namespace": wr.namespace, "tag": wr.tag,
                          "status": wr.status})
