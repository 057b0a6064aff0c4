"""raydog_worker_pool: Ray worker nodes — one worker pool, one task group, one task per node.

``node_count`` changes in place: growing resizes the pool and adds tasks; shrinking aborts
the newest tasks (their EXIT trap stops Ray on those nodes), shuts their nodes down and
resizes the pool. Removing the resource leaves the head and the other pools running.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from dataclasses import replace
from typing import TYPE_CHECKING, Optional

from tf import types
from tf.iface import (
    CreateContext,
    DeleteContext,
    ImportContext,
    PlanContext,
    ReadContext,
    State,
    UpdateContext,
)
from tf.utils import Diagnostics

from raydog import names, settings
from raydog.autoscaler.shipping import bounds_block
from raydog.config import rules
from raydog.config.fields import BOOL, NUMBER, STRING, STRING_LIST, Field, Rule, Table
from raydog.config.autoscaling import AUTOSCALING, POOL_RULES, initial_size_in_bounds, node_count_or_zero
from raydog.config.models import Autoscaling, Timeouts, WorkerPoolConfig
from raydog.config.node_fields import (
    NODE_FIELDS,
    NODE_RULES,
    OBSERVABILITY_RULE,
    TIMEOUTS,
    observability_name_suffix_field,
)
from raydog.lifecycle.autoscaling import HEAD_WAIT_SECONDS, hold, pool_tag, require_autoscaler
from raydog.lifecycle.diagnostics import report
from raydog.lifecycle.importing import read_imported_pool
from raydog.lifecycle.node_pool import NodePlan, live_pool
from raydog.lifecycle.peers import head_environment
from raydog.lifecycle.planning import NodePlanning
from raydog.lifecycle.pool_in_ray import PoolInRay
from raydog.lifecycle.resource import RaydogResource
from raydog.lifecycle.scripts import script_sha256, stored_script
from raydog.yellowdog import (
    PlatformError,
    StoppedError,
    TaskFailedError,
    TaskInfo,
    TaskSpec,
    WaitTimeoutError,
)

if TYPE_CHECKING:
    from raydog.yellowdog import YellowDogClient

log = logging.getLogger("raydog.resources")

TABLE = Table(
    fields=(
        *NODE_FIELDS,
        Field("name", STRING, "The pool's name in the cluster (YellowDog name `<cluster_name>-<name>`).",
              required=True, replace=True, check=rules.worker_pool_name),
        Field("head_private_ip", STRING,
              "Private IP of the head (`raydog_head.<name>.private_ip`); sets `RAY_HEAD_IP` "
              "and the deprecated `RAY_HEAD_NODE_PRIVATE_IP`. Makes the pool wait for the head in Terraform's "
              "graph; leave it unset to have the head's address read from the platform (see `head_name_suffix`). "
              "Forces replacement.",
              optional=True, replace=True, check=rules.head_private_ip),
        Field("head_name_suffix", STRING,
              "The `name_suffix` of the cluster's `raydog_head` (unset or \"\" when it has none), used when "
              "`head_private_ip` is unset: the pool provisions its nodes at once and its tasks get the head's "
              "private IP as soon as the head's node is up. A change (a new head) re-tasks the nodes in place.",
              optional=True, check=rules.peer_name_suffix),
        Field("observability_host", STRING, "Private IP of the observability node; sets `OBSERVABILITY_HOST`.",
              optional=True, replace=True, check=rules.ip_address),
        observability_name_suffix_field(replace=False),
        Field("task_script", STRING,
              "Bash script every worker node runs; unset means the built-in `worker` template "
              "(the plan shows its `script_sha256`).", optional=True, replace=True, check=rules.script_size),
        Field("node_count", NUMBER,
              "Number of worker nodes (at least 1). Updated in place. With `autoscaling`, the initial size (default "
              "`min_nodes`): no diff is shown while the autoscaler keeps the pool inside its bounds.",
              optional=True, computed=True, check=node_count_or_zero),
        Field("wait_for_nodes", BOOL,
              "Whether create and update wait until every node's task is executing (default false).", optional=True),
        Field("readiness", STRING,
              'What the waits of `wait_for_nodes` wait for: "executing" (each node\'s task is executing; the default) '
              'or "ray" (each node has also joined Ray, as the head\'s GCS reports; implies wait_for_nodes). '
              "Updated in place.", optional=True, check=rules.readiness),
        Field("ray_gcs_address", STRING,
              "Where the provider reaches the head's Ray GCS (`host:port`) to wait for nodes to join, pick idle nodes "
              f"and drain them; default `<head_private_ip>:{settings.RAY_GCS_PORT}`, the head's IP as the pool's tasks "
              "were given it (head_private_ip, or learnt from the platform). Updated in place.",
              optional=True, check=rules.gcs_address),
        Field("drain_timeout", STRING,
              "How long Ray may drain the nodes that a lower node_count or the pool's removal ends, such as "
              f'"10m" (default "{settings.DEFAULT_DRAIN_TIMEOUT}"); "0s" ends them without draining. Updated in place.',
              optional=True, check=rules.drain_timeout),
        Field("task_ids", STRING_LIST,
              "Ids of the node tasks that are live, oldest first: growing a pool appends, shrinking drops the newest.",
              computed=True),
    ),
    rules=(*NODE_RULES, OBSERVABILITY_RULE,
           Rule(("head_private_ip", "head_name_suffix"), "head_name_suffix",
                rules.exclusive("head_private_ip", "head_name_suffix")),
           Rule(("cluster_name", "name"), "name",
                lambda cluster, name: rules.derived_name(name, "worker pool", "name")(cluster)),
           Rule(("wait_for_nodes", "readiness"), "readiness", rules.readiness_needs_wait),
           *POOL_RULES),
    blocks=(TIMEOUTS, AUTOSCALING),
)


class WorkerPoolResource(PoolInRay, NodePlanning, RaydogResource):
    table = TABLE
    description = "A pool of Ray worker nodes. `node_count` changes are made in place."
    script_attribute = "task_script"
    script_role = "worker"
    script_template = "worker"

    @classmethod
    def get_name(cls) -> str:
        return "worker_pool"

    def pool_suffix(self, values: dict):
        return values.get("name")

    def name_path(self) -> list:
        return ["name"]

    @classmethod
    def upgrade_state(cls, state: dict) -> dict:
        """State written before scripts defaulted to null held the default script itself."""
        script = state.get("task_script")
        if state.get("id") and not state.get("script_sha256"):
            state["script_sha256"] = script_sha256(script) if script else None
            state["task_script"] = stored_script(script, cls.script_template)
        return state

    def validate(self, diags: Diagnostics, type_name: str, config: dict) -> None:
        super().validate(diags, type_name, config)
        block, count = config.get("autoscaling"), config.get("node_count")
        if isinstance(block, dict):
            if isinstance(count, (int, float)) and not self.table.problems({"node_count": count, "autoscaling": block}):
                try:
                    initial_size_in_bounds(count, block)
                except ValueError as exc:
                    diags.add_error("Invalid node_count", str(exc), path=["node_count"])
            return
        if block is not None:
            return
        count = config.get("node_count")
        if count is None:
            diags.add_error("Missing node_count", "node_count is required unless the pool has an autoscaling block.",
                            path=["node_count"])
        elif count is not types.Unknown and count == 0:
            diags.add_error("Invalid node_count", "must be at least 1 (got 0); remove the pool to have no nodes, or "
                            "give it an autoscaling block with min_nodes = 0", path=["node_count"])

    def plan(self, ctx: PlanContext, current: Optional[State], planned: State) -> State:
        planned = super().plan(ctx, current, planned)
        retask = current is not None and current.get("id") and retasks(current, planned)
        if isinstance(planned.get("autoscaling"), dict):
            planned = self.plan_autoscaled(ctx, current, planned)
        if retask:
            # A new head (or observability node): every node gets a new task with its address.
            planned["task_ids"] = types.Unknown
        if retask or isinstance(planned.get("autoscaling"), dict):
            return planned
        count = planned.get("node_count")
        if current is None or "node_count" not in ctx.changed_fields or not isinstance(count, (int, float)):
            return planned
        # The tasks that stay keep their ids: growing appends unknown ids, shrinking drops the newest.
        ids = list(current.get("task_ids") or [])
        planned["task_ids"] = ids[:int(count)] + [types.Unknown] * max(int(count) - len(ids), 0)
        if int(count) < len(ids) and self.asks_ray_on_shrink(planned):
            planned["task_ids"] = types.Unknown  # Ray's idle nodes go first: known after apply
        self.check_pool_limit(ctx.diagnostics, current, int(count))
        return planned

    def plan_create(self, ctx, proposed: dict, planned: dict) -> dict:
        planned = super().plan_create(ctx, proposed, planned)
        if isinstance(planned.get("autoscaling"), dict):
            return self.plan_autoscaled(ctx, None, planned)
        return planned

    def plan_autoscaled(self, ctx: PlanContext, current: Optional[State], planned: State) -> State:
        """node_count starts at min_nodes when unset and follows the bounds: a size outside new
        bounds is planned to move to the nearest one. The live tasks may change with any update."""
        block = planned["autoscaling"]
        if any(v is types.Unknown for v in block.values()):
            return planned
        autoscaling = Autoscaling.parse(block)
        count = planned.get("node_count")
        if not isinstance(count, (int, float)):
            count = current.get("node_count") if current else None
            planned["node_count"] = autoscaling.min_nodes if count is None else count
        if current is None:
            try:
                initial_size_in_bounds(planned["node_count"], block)
            except ValueError as exc:
                ctx.diagnostics.add_error("Invalid node_count", str(exc), path=["node_count"])
                return planned
        elif autoscaling.clamp(int(planned["node_count"])) != planned["node_count"]:
            # The recorded size (or a configured one) outside new bounds: the update moves the pool.
            planned["node_count"] = autoscaling.clamp(int(planned["node_count"]))
        changed = current is None or current.get("autoscaling") != block \
            or current.get("node_count") != planned["node_count"]
        if current is not None and changed:
            planned["task_ids"] = types.Unknown
        cluster_id = planned.get("cluster_id")
        if changed and self.provider.configured and isinstance(cluster_id, str) and \
                (current is None or not current.get("autoscaling")):
            try:
                require_autoscaler(ctx.diagnostics, self.client, cluster_id, strict=False)
            except PlatformError as exc:
                ctx.diagnostics.add_warning("Could not check that the cluster's head runs an autoscaler",
                                            f"{exc}. The apply checks it again.")
        return planned

    def check_pool_limit(self, diags: Diagnostics, current: State, count: int) -> None:
        """A pool can't grow past its maxNodes on YellowDog (a pool adopted from RayDog may have a low one)."""
        if not self.provider.configured or not current.get("id"):
            return
        try:
            pool = self.client.get_pool(current["id"], details=False)
        except PlatformError as exc:
            diags.add_warning("Could not check the pool's node limit at plan time",
                              f"{exc}. The apply checks it again.")
            return
        if pool is not None and pool.max_nodes is not None and count > pool.max_nodes:
            diags.add_error(
                "node_count is above the pool's limit",
                f"Worker pool {pool.name} ({pool.id}) allows at most {pool.max_nodes} nodes on YellowDog (its "
                f"maxNodes); set node_count to {pool.max_nodes} or less, or replace the pool with a new one "
                "(change its name) to have more.",
                path=["node_count"])

    def create(self, ctx: CreateContext, planned: State) -> Optional[State]:
        config, started = WorkerPoolConfig.parse(planned), time.monotonic()
        if config.autoscaling is not None:
            try:
                head_wait = 0.0 if config.head_private_ip else min(HEAD_WAIT_SECONDS,
                                                                   config.timeouts.create.total_seconds())
                if not require_autoscaler(ctx.diagnostics, self.client, config.cluster_id, strict=True,
                                          head_wait=head_wait, stopping=self.provider.stopping):
                    return None
            except PlatformError as exc:
                report(ctx.diagnostics, "Cannot check that the cluster's head runs an autoscaler", exc, ["autoscaling"])
                return None
        created = self.node_pool(ctx.diagnostics).create(planned, config, NodePlan(
            suffix=config.name,
            group_role=config.name,
            task_names=[names.worker_task_name(i) for i in range(1, config.node_count + 1)],
            environment=worker_environment(config),
            wait=config.wait_for_nodes,
            name_path=["name"],
            peer_environment=self.peer_environment(config),
            autoscaled=config.autoscaling is not None,
        ))
        if created is None:
            return None
        state = {**created.state, "node_count": config.node_count, "task_ids": [t.id for t in created.tasks]}
        if config.autoscaling is not None and not ctx.diagnostics.has_errors():
            # The bounds go on last: the autoscaler sees the pool only once its first tasks exist.
            try:
                self.client.set_compute_requirement_tag(state["compute_requirement_id"], pool_tag(config.autoscaling))
            except PlatformError as exc:
                report(ctx.diagnostics, "Cannot give the pool its autoscaling bounds", exc, ["autoscaling"])
        if created.executing and not ctx.diagnostics.has_errors():
            self.wait_for_ray(ctx.diagnostics, self.with_head(ctx.diagnostics, config, created.executing),
                              created.executing, state["compute_requirement_id"], started,
                              config.timeouts.create.total_seconds())
        return self.full(state)

    def read(self, ctx: ReadContext, current: State) -> Optional[State]:
        autoscaling = Autoscaling.parse(current.get("autoscaling"))
        try:
            pool = live_pool(self.client, current["id"], details=autoscaling is not None)
            if pool is None:
                return None
            tasks = self.client.list_tasks(current["task_group_id"]) if current.get("task_group_id") else []
        except PlatformError as exc:
            report(ctx.diagnostics, "Cannot read the worker pool; keeping it in state", exc)
            return current
        if autoscaling is not None and pool.tag != pool_tag(autoscaling):
            # Bounds changed outside Terraform, or an update killed while it held the pool: the plan
            # writes the configured bounds again.
            current = {**current, "autoscaling": bounds_block(pool.tag)}
            autoscaling = Autoscaling.parse(current["autoscaling"])
        # Nodes lost outside Terraform show as a smaller node_count, so the plan restores them. An
        # autoscaled pool's size is the autoscaler's while it stays inside the bounds.
        count = len(tasks)
        if autoscaling is not None and autoscaling.clamp(count) == count and current.get("node_count") is not None:
            count = current["node_count"]
        return self.full({**current, "node_count": count, "task_ids": task_ids(current.get("task_ids"), tasks)})

    def update(self, ctx: UpdateContext, current: State, planned: State) -> Optional[State]:
        config, started = WorkerPoolConfig.parse(planned), time.monotonic()
        state = self.applied(current, planned)
        autoscaled_before = bool(current.get("autoscaling"))
        try:
            if autoscaled_before:
                # Out of the autoscaler's hands while this update sizes the pool: one actor at a time.
                hold(self.client, current, config.timeouts.update.total_seconds(), self.provider.stopping)
            live = self.client.list_tasks(current["task_group_id"])
            if config.autoscaling is not None:
                # The autoscaler owns the size inside the bounds; only a size outside them moves.
                config = replace(config, node_count=config.autoscaling.clamp(len(live)))
            if retasks(current, planned):
                live = self.retask(current, config, live)
                if config.wait_for_nodes:
                    self.wait_for_ray(ctx.diagnostics, self.with_head(ctx.diagnostics, config, live), live,
                                      current.get("compute_requirement_id"), started,
                                      config.timeouts.update.total_seconds())
            elif config.node_count > len(live):
                added = self.grow(current, config, live)
                live = live + added
                if config.wait_for_nodes:
                    executing = self.client.wait_until_executing(
                        [t.id for t in added], config.timeouts.update.total_seconds(), stop_event=self.provider.stopping,
                        wr_id=current.get("cluster_id"))
                    self.wait_for_ray(ctx.diagnostics, self.with_head(ctx.diagnostics, config, live), executing,
                                      current.get("compute_requirement_id"), started,
                                      config.timeouts.update.total_seconds())
            elif config.node_count < len(live):
                live = self.shrink(current, live, self.with_head(ctx.diagnostics, config, live),
                                   planned.get("task_ids"), ctx.diagnostics)
            if autoscaled_before or config.autoscaling is not None:
                # The new bounds (none: a fixed size from now on) hand the pool back to the autoscaler.
                self.client.set_compute_requirement_tag(current["compute_requirement_id"], pool_tag(config.autoscaling))
        except (PlatformError, StoppedError, TaskFailedError, WaitTimeoutError) as exc:
            report(ctx.diagnostics, f"Cannot change worker pool {current['id']} to {config.node_count} nodes", exc,
                   ["node_count"])
            if autoscaled_before:
                self.hand_back(current)
            return self.read(ReadContext(ctx.diagnostics, ctx.type_name), current) or current
        state["task_ids"] = task_ids(current.get("task_ids"), live)
        return self.full(state)

    def hand_back(self, current: State) -> None:
        """After a failed update, the pool goes back to the autoscaler with its old bounds (a refresh
        shows bounds that differ from the state's, so the next plan writes them, if this fails too)."""
        try:
            self.client.set_compute_requirement_tag(current["compute_requirement_id"],
                                                    pool_tag(Autoscaling.parse(current.get("autoscaling"))))
        except PlatformError as exc:
            log.warning("worker pool %s stays out of the autoscaler's hands until the next apply: %s",
                        current["id"], exc)

    def grow(self, current: State, config: WorkerPoolConfig, live: list[TaskInfo]) -> list[TaskInfo]:
        """Resize the pool up and add one task per new node, named after the highest index so far.

        The index counts finished tasks too: task names are unique in a group, and a new task
        named like one that ended (a lost node's) would be taken for it. New tasks run the
        script and environment the pool was created with (both force replacement): the script
        of a live task, so a default script stays the one the pool started with.
        """
        created_with = WorkerPoolConfig.parse(current)
        script = next((t.task_data for t in live if t.task_data), created_with.script)
        self.client.resize_pool(current["id"], config.node_count)
        # A live task's environment holds the addresses its pool learnt from the platform.
        environment = next((t.environment for t in live if t.environment), None) or worker_environment(created_with)
        find = self.peer_environment(created_with)
        if find is not None and "RAY_HEAD_IP" not in environment:
            environment = {**environment, **find(config.cluster_id, config.timeouts.update.total_seconds())}
        return self.add_node_tasks(current, config.node_count - len(live), script, environment, config.lifetime, live)

    def add_node_tasks(self, current: State, count: int, script: str, environment: dict[str, str],
                       lifetime: Optional[timedelta], known: list[TaskInfo]) -> list[TaskInfo]:
        """Add ``count`` node tasks to the pool's group, named after the highest index so far
        (finished tasks included: task names are unique in a group)."""
        every = self.client.list_tasks(current["task_group_id"], include_finished=True)
        highest = max((names.worker_task_index(t.name) or 0 for t in [*every, *known]), default=0)
        return self.client.add_tasks(current["task_group_id"], [
            TaskSpec(name=names.worker_task_name(highest + i), task_data=script, environment=environment,
                     timeout=lifetime)
            for i in range(1, count + 1)
        ])

    def peer_environment(self, config: WorkerPoolConfig):
        """The head's address (and the observability node's) from the platform, unless head_private_ip is set."""
        if config.head_private_ip is not None:
            return None
        return head_environment(self.provider, self.client, config)

    def retask(self, current: State, config: WorkerPoolConfig, live: list[TaskInfo]) -> list[TaskInfo]:
        """Give every node a new task that knows the new head's (or observability node's) address:
        abort the old tasks (their EXIT traps stop Ray), resize if node_count changed too, add the new ones."""
        environment = worker_environment(config)
        find = self.peer_environment(config)
        if find is not None:
            environment.update(find(config.cluster_id, config.timeouts.update.total_seconds()))
        for task in live:
            self.client.cancel_task(task.id, abort=True)
        if config.node_count != len(live):
            self.client.resize_pool(current["id"], config.node_count)
        script = next((t.task_data for t in live if t.task_data), config.script)
        added = self.add_node_tasks(current, config.node_count, script, environment, config.lifetime, live)
        if config.wait_for_nodes:  # as last seen: placed on their nodes, for a wait for Ray
            added = self.client.wait_until_executing([t.id for t in added], config.timeouts.update.total_seconds(),
                                                     stop_event=self.provider.stopping, wr_id=current.get("cluster_id"))
        return added

    def shrink(self, current: State, live: list[TaskInfo], config: WorkerPoolConfig, listed: Optional[list],
               diags: Diagnostics) -> list[TaskInfo]:
        """Keep the tasks the plan's task_ids list (idle Ray nodes go first; without Ray, the
        newest), ask Ray to drain the others' nodes (up to drain_timeout), abort those tasks and
        wait until they have ended (their EXIT trap stops Ray), shut their nodes down and wait
        until those are gone, then set the pool's target to what is left.

        Right whichever way the platform treats a node shutdown: at once and lowering the
        target, or later and leaving it. The resize comes when only the kept nodes are left,
        so a platform that picks which nodes a resize removes never picks a kept one."""
        pool_id, target, timeout = current["id"], config.node_count, config.timeouts.update.total_seconds()
        by_id = {t.id: t for t in live}
        ray_answered = False
        if not isinstance(listed, list):  # the plan left the choice to Ray
            listed, ray_answered = self.kept_on_shrink(diags, current, config, live,
                                                       task_ids(current.get("task_ids"), live), target)
        ordered = [by_id[i] for i in task_ids(listed, live)]
        keep, drop = ordered[:target], ordered[target:]
        deadline = time.monotonic() + timeout
        if ray_answered:
            self.drain_before_removal(diags, config, drop, current.get("compute_requirement_id"), "node_count lowered",
                                      timeout)
        for task in drop:
            self.client.cancel_task(task.id, abort=True)
        stopping = self.provider.stopping
        self.client.wait_until_ended([t.id for t in drop], max(deadline - time.monotonic(), 1.0), stopping)
        dropped_nodes = [t.node_id for t in drop if t.node_id]
        for node_id in dropped_nodes:
            self.client.shutdown_node(node_id)
        self.client.wait_until_nodes_gone(dropped_nodes, max(deadline - time.monotonic(), 1.0), stopping)
        self.client.resize_pool(pool_id, target)
        return keep

    def delete(self, ctx: DeleteContext, current: State) -> None:
        if current.get("autoscaling") and current.get("compute_requirement_id"):
            try:  # first out of the autoscaler's hands, so it launches nothing into a pool going away
                self.client.set_compute_requirement_tag(current["compute_requirement_id"], None)
            except PlatformError as exc:
                log.info("could not clear the bounds of %s before removing it: %s", current["id"], exc)
        self.drain_pool(ctx.diagnostics, current)
        self.node_pool(ctx.diagnostics).remove(current, Timeouts.parse(current.get("timeouts")))

    def import_(self, ctx: ImportContext, id: str) -> Optional[State]:
        state = import_worker_pool(self.client, ctx.diagnostics, id)
        if state is not None:
            self.take_ownership(ctx.diagnostics, state)
        return self.full(state)


def import_worker_pool(client: "YellowDogClient", diags: Diagnostics, id: str) -> Optional[dict]:
    """State of a raydog_worker_pool from its pool id."""
    found = read_imported_pool(client, diags, id)
    if found is None:
        return None
    sample = found.tasks[0] if found.tasks else None
    environment = sample.environment if sample else {}
    return {
        **found.base_state("task_script", "worker"),
        "name": names.internal_pool_name(found.cluster.name, found.pool.name, found.group.name),
        "head_private_ip": environment.get("RAY_HEAD_IP") or environment.get("RAY_HEAD_NODE_PRIVATE_IP"),
        "observability_host": environment.get("OBSERVABILITY_HOST"),
        "node_count": len(found.tasks),
        "task_ids": task_ids(None, found.tasks),
        "autoscaling": bounds_block(found.pool.tag),
    }


def retasks(current: State, planned: State) -> bool:
    """Whether the nodes need new tasks: the head (or observability node) they learn their address from changed."""
    return any(current.get(a) != planned.get(a) for a in ("head_name_suffix", "observability_name_suffix"))


def worker_environment(config: WorkerPoolConfig) -> dict[str, str]:
    """The node tasks' environment; the addresses learnt from the platform are added at create."""
    provider_set = {}
    if config.head_private_ip is not None:
        provider_set = {"RAY_HEAD_IP": config.head_private_ip, "RAY_HEAD_NODE_PRIVATE_IP": config.head_private_ip}
    if config.observability_host:
        provider_set["OBSERVABILITY_HOST"] = config.observability_host
    return config.task_environment(provider_set)


def task_ids(previous: Optional[list], tasks: list[TaskInfo]) -> list[str]:
    """The live tasks' ids, oldest first: those already listed keep their places, new ones follow
    by node index, so a plan can say which ids stay."""
    live = {t.id for t in tasks}
    kept = [i for i in previous or [] if i in live]
    new = sorted((t for t in tasks if t.id not in kept), key=lambda t: names.worker_task_index(t.name) or 0)
    return kept + [t.id for t in new]
