"""raydog_worker_pool: Ray worker nodes — one worker pool, one task group, one task per node.

``node_count`` changes in place: growing resizes the pool and adds tasks; shrinking aborts
the newest tasks (their EXIT trap stops Ray on those nodes), shuts their nodes down and
resizes the pool. Removing the resource leaves the head and the other pools running.
"""

from __future__ import annotations

from typing import Optional

from tf import types
from tf.iface import CreateContext, DeleteContext, ImportContext, PlanContext, ReadContext, State, UpdateContext
from tf.schema import Schema

from raydog import names, tfcompat
from raydog.resources.common import (
    NodePlan,
    NodePool,
    RaydogResource,
    attr,
    node_attributes,
    parse_lifetime,
    plan_script_default,
    report,
    schema,
    timeout_seconds,
)
from raydog.yellowdog import PlatformError, StoppedError, TaskFailedError, TaskSpec, WaitTimeoutError


class WorkerPoolResource(RaydogResource):
    spec_name = "WorkerPoolSpec"
    script_attribute = "task_script"
    script_role = "worker"

    @classmethod
    def get_name(cls) -> str:
        return "worker_pool"

    @classmethod
    def get_schema(cls) -> Schema:
        return schema(
            [
                *node_attributes(),
                attr(
                    "name",
                    types.String(),
                    "The pool's name in the cluster (YellowDog name `<cluster_name>-<name>`).",
                    required=True,
                    requires_replace=True,
                ),
                attr(
                    "head_private_ip",
                    types.String(),
                    "Private IP of the head (`raydog_head.<name>.private_ip`); sets `RAY_HEAD_IP` "
                    "and the deprecated `RAY_HEAD_NODE_PRIVATE_IP`.",
                    required=True,
                    requires_replace=True,
                ),
                attr(
                    "observability_host",
                    types.String(),
                    "Private IP of the observability node; sets `OBSERVABILITY_HOST`.",
                    optional=True,
                    requires_replace=True,
                ),
                attr(
                    "task_script",
                    types.String(),
                    "Bash script every worker node runs (default: the built-in `worker` template).",
                    optional=True,
                    computed=True,
                    requires_replace=True,
                ),
                attr("node_count", types.Number(), "Number of worker nodes (at least 1). Updated in place.", required=True),
                attr(
                    "wait_for_nodes",
                    types.Bool(),
                    "Whether create and update wait until every node's task is executing (default false).",
                    optional=True,
                ),
                attr("task_ids", types.List(types.String()), "Ids of the node tasks that are live.", computed=True),
            ],
            "A pool of Ray worker nodes. `node_count` changes are made in place.",
        )

    def plan_create(self, ctx: PlanContext, proposed: State, planned: State) -> State:
        plan_script_default(proposed, planned, "task_script", "worker")
        return planned

    def plan(self, ctx: PlanContext, current: Optional[State], planned: State) -> State:
        if "node_count" in ctx.changed_fields:
            planned["task_ids"] = types.Unknown
        return planned

    def create(self, ctx: CreateContext, planned: State) -> Optional[State]:
        count = int(planned["node_count"])
        pool = NodePool(self.platform, ctx.diagnostics)
        state = pool.create(
            planned,
            NodePlan(
                suffix=planned["name"],
                group_role=planned["name"],
                task_names=[names.worker_task_name(i) for i in range(1, count + 1)],
                script=planned["task_script"],
                environment=worker_environment(planned),
                wait=bool(planned.get("wait_for_nodes")),
            ),
        )
        if state is None:
            return None
        state["task_ids"] = [t.id for t in pool.tasks]
        return self.full(state)

    def read(self, ctx: ReadContext, current: State) -> Optional[State]:
        nodes = NodePool(self.platform, ctx.diagnostics)
        pool = nodes.read_pool(current)
        if pool == "error":
            return current
        if pool is None:
            return None
        try:
            tasks = self.platform.list_tasks(current["task_group_id"]) if current.get("task_group_id") else []
        except PlatformError as exc:
            report(ctx.diagnostics, "Cannot read the pool's tasks; keeping it in state", exc)
            return current
        # Nodes lost outside Terraform show as a smaller node_count, so the plan restores them.
        return self.full({**current, "node_count": len(tasks), "task_ids": [t.id for t in tasks]})

    def update(self, ctx: UpdateContext, current: State, planned: State) -> Optional[State]:
        state = {**current, "node_count": planned["node_count"], "wait_for_nodes": planned.get("wait_for_nodes"),
                 "timeouts": planned.get("timeouts")}
        try:
            live = self.platform.list_tasks(current["task_group_id"])
            target = int(planned["node_count"])
            if target > len(live):
                added = self.grow(current, planned, live, target)
                live = live + added
                if planned.get("wait_for_nodes"):
                    self.platform.wait_until_executing(
                        [t.id for t in added], timeout_seconds(planned, "update"), stop_event=tfcompat.STOP
                    )
            elif target < len(live):
                live = self.shrink(current, live, target)
        except (PlatformError, StoppedError, TaskFailedError, WaitTimeoutError) as exc:
            report(ctx.diagnostics, f"Cannot change worker pool {current['id']} to {planned['node_count']} nodes", exc,
                   ["node_count"])
            return self.read(ReadContext(ctx.diagnostics, ctx.type_name), current) or current
        state["task_ids"] = [t.id for t in live]
        return self.full(state)

    def grow(self, current: State, planned: State, live: list, target: int) -> list:
        """Resize the pool up and add one task per new node, named after the highest index so far.

        The index counts finished tasks too: task names are unique in a group, and a new task
        named like one that ended (a lost node's) would be taken for it.
        """
        self.platform.resize_pool(current["id"], target)
        every = self.platform.list_tasks(current["task_group_id"], include_finished=True)
        highest = max((names.worker_task_index(t.name) or 0 for t in [*every, *live]), default=0)
        lifetime = parse_lifetime(planned)
        new = [
            TaskSpec(
                name=names.worker_task_name(highest + i),
                task_data=current["task_script"],
                environment=worker_environment(current),
                timeout=lifetime,
            )
            for i in range(1, target - len(live) + 1)
        ]
        return self.platform.add_tasks(current["task_group_id"], new)

    def shrink(self, current: State, live: list, target: int) -> list:
        """Abort the newest tasks, shut their nodes down, and resize the pool to what is left."""
        ordered = sorted(live, key=lambda t: names.worker_task_index(t.name) or 0)
        keep, drop = ordered[:target], ordered[target:]
        for task in drop:
            self.platform.cancel_task(task.id, abort=True)
        for task in drop:
            if task.node_id:
                self.platform.shutdown_node(task.node_id)
        self.platform.resize_pool(current["id"], target)
        return keep

    def delete(self, ctx: DeleteContext, current: State) -> None:
        NodePool(self.platform, ctx.diagnostics).remove(current)

    def import_(self, ctx: ImportContext, id: str) -> Optional[State]:
        from raydog.resources.imports import import_worker_pool

        return self.full(import_worker_pool(self.platform, ctx.diagnostics, id))


def worker_environment(state: State) -> dict[str, str]:
    environment = dict(state.get("environment") or {})
    environment["RAY_HEAD_IP"] = state["head_private_ip"]
    environment["RAY_HEAD_NODE_PRIVATE_IP"] = state["head_private_ip"]
    if state.get("observability_host"):
        environment["OBSERVABILITY_HOST"] = state["observability_host"]
    return environment
