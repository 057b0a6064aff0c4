"""What the four resources share: schema pieces, timeouts, state, error reporting, and the
life of a "node pool" (a provisioned worker pool plus its task group and one task per node).

Resources stay short sequences of calls into ``raydog.yellowdog``; this module holds the
few rules they have in common so each exists once.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Optional

from tf import types
from tf.iface import Resource
from tf.schema import Attribute, Block, Schema
from tf.types import Unknown
from tf.utils import Diagnostics

from raydog import names, node_scripts, tfcompat
from raydog.yellowdog import (
    PlatformError,
    PoolSpec,
    StoppedError,
    TaskFailedError,
    TaskGroupSpec,
    TaskSpec,
    WaitTimeoutError,
)

log = logging.getLogger("raydog.resources")

DEFAULT_TIMEOUTS = {"create": "20m", "update": "20m", "delete": "10m"}
# Nodes whose task has ended are shut down after this long; a pool with no claimed
# worker after this long is shut down too (RayDog's builder used 3 minutes).
IDLE_NODE_SHUTDOWN = timedelta(minutes=5)
IDLE_POOL_SHUTDOWN = timedelta(minutes=10)


def attr(name: str, type_, description: str, **flags) -> Attribute:
    """An attribute whose description says "Forces replacement." when it does."""
    if flags.get("requires_replace"):
        description = f"{description} Forces replacement."
    return Attribute(name, type_, description=description, **flags)


def timeouts_block() -> tfcompat.SingleNestedBlock:
    return tfcompat.SingleNestedBlock(
        "timeouts",
        Block(
            attributes=[
                Attribute(op, types.String(), description=f'How long {op} may take (default "{d}").', optional=True)
                for op, d in DEFAULT_TIMEOUTS.items()
            ],
            description="Operation timeouts, as durations such as \"90s\", \"10m\" or \"2h\".",
        ),
    )


def parse_lifetime(values: dict):
    """The ``lifetime`` attribute as a timedelta (None when unset)."""
    from raydog import specs

    return specs.parse_duration(values["lifetime"]) if values.get("lifetime") else None


def timeout_seconds(state: dict, operation: str) -> float:
    from raydog import specs

    configured = (state.get("timeouts") or {}).get(operation)
    return specs.parse_duration(configured or DEFAULT_TIMEOUTS[operation]).total_seconds()


def node_attributes() -> list[Attribute]:
    """Inputs and outputs every node resource (head, observability, worker pool) has."""
    return [
        attr("id", types.String(), "Worker pool id.", computed=True),
        attr("cluster_id", types.String(), "Id of the cluster (`raydog_cluster.<name>.id`).", required=True, requires_replace=True),
        attr(
            "cluster_name",
            types.String(),
            "Name of the cluster (`raydog_cluster.<name>.name`); prefixes this pool's YellowDog names.",
            required=True,
            requires_replace=True,
        ),
        attr(
            "compute_requirement_template_id",
            types.String(),
            "Compute requirement template the pool's nodes are provisioned from (id or `namespace/name`).",
            required=True,
            requires_replace=True,
        ),
        attr("images_id", types.String(), "Image family, group or image id for the nodes.", optional=True, requires_replace=True),
        attr("userdata", types.String(), "Userdata script run when a node boots.", optional=True, sensitive=True, requires_replace=True),
        attr("instance_tags", types.Map(types.String()), "Tags put on the pool's cloud instances.", optional=True, requires_replace=True),
        attr("metrics_enabled", types.Bool(), "Whether YellowDog collects node metrics.", optional=True, requires_replace=True),
        attr(
            "environment",
            types.Map(types.String()),
            "Extra environment variables for the node tasks.",
            optional=True,
            requires_replace=True,
        ),
        attr(
            "lifetime",
            types.String(),
            'Task timeout of the node tasks, such as "2h"; when it passes the nodes\' tasks end.',
            optional=True,
            requires_replace=True,
        ),
        attr("namespace", types.String(), "YellowDog namespace (the cluster's).", computed=True),
        attr("yellowdog_name", types.String(), "Name of the worker pool and compute requirement on YellowDog.", computed=True),
        attr("compute_requirement_id", types.String(), "Compute requirement id.", computed=True),
        attr("task_group_id", types.String(), "Task group id in the cluster's work requirement.", computed=True),
    ]


def name_suffix_attribute(role: str, suffix: str) -> Attribute:
    return attr(
        "name_suffix",
        types.String(),
        f"Appended to the pool's YellowDog name (`<cluster_name>-{suffix}-<name_suffix>`), so a replacement "
        f"{role} can be created before the old one is destroyed (create_before_destroy).",
        optional=True,
        requires_replace=True,
    )


def host_attributes() -> list[Attribute]:
    """Outputs of a single-node resource (head, observability)."""
    return [
        # requires_replace on a computed attribute: read() clears it when the task has ended
        # outside Terraform and plan() then plans a replacement (see SingleNodeResource.plan).
        Attribute("task_id", types.String(), description="Id of the node's task.", computed=True, requires_replace=True),
        attr("node_id", types.String(), "Id of the YellowDog node.", computed=True),
        attr("private_ip", types.String(), "Private IP address of the node.", computed=True),
        attr("public_ip", types.String(), "Public IP address of the node.", computed=True),
    ]


class RaydogResource(Resource):
    """Base of the raydog resources: access to the configured platform and full states."""

    spec_name = "NodeSpec"  # the raydog.specs model of the configuration
    script_attribute: Optional[str] = None
    script_role: Optional[str] = None

    def __init__(self, provider) -> None:
        self.provider = provider

    @property
    def platform(self):
        return self.provider.platform

    @classmethod
    def full(cls, state: Optional[dict]) -> Optional[dict]:
        return tfcompat.complete_state(cls.get_schema(), state)

    def validate(self, diags: Diagnostics, type_name: str, config: dict) -> None:
        from raydog import specs  # pydantic: imported when first needed, not in schema-only launches

        super().validate(diags, type_name, config)
        for path, message in specs.problems(getattr(specs, self.spec_name), config):
            diags.add_error(f"Invalid {'.'.join(str(p if isinstance(p, str) else p[0]) for p in path)}", message, path=path)
        if self.script_attribute and self.script_role:
            lint_script_attribute(diags, config, self.script_attribute, self.script_role)

    def upgrade(self, ctx, version: int, old: dict) -> dict:
        return self.full(old)


def lint_script_attribute(diags: Diagnostics, config: dict, attribute: str, role: str) -> None:
    """Plan-time warnings when a script given to a head or worker breaks the script contract."""
    content = config.get(attribute)
    if not isinstance(content, str) or content is Unknown:
        return
    for finding in node_scripts.lint_script(content, role):
        diags.add_warning(finding.summary, finding.detail, path=[attribute])


def report(diags: Diagnostics, summary: str, exc: Exception, path: Optional[list] = None) -> None:
    """The one place a platform error becomes a diagnostic."""
    detail = str(exc)
    if isinstance(exc, TaskFailedError) and exc.detail and exc.detail not in detail:
        detail = f"{detail}\n{exc.detail}"
    diags.add_error(summary, detail, path=path)


# (namespace, pool name) of every pool this provider process has created. One process serves
# a whole apply, so two resources of one configuration that would share a YellowDog pool
# (create adopts a live pool of its name, for crash recovery) are caught before any request.
_CLAIMED_POOLS: set[tuple[str, str]] = set()
_CLAIMS_LOCK = threading.Lock()


def claim_pool_name(namespace: str, pool_name: str) -> bool:
    """Record that this process creates ``namespace/pool_name``; False if it already does."""
    with _CLAIMS_LOCK:
        if (namespace, pool_name) in _CLAIMED_POOLS:
            return False
        _CLAIMED_POOLS.add((namespace, pool_name))
        return True


@dataclass
class NodePlan:
    """What to run on one pool: its YellowDog name, its task group role, one task per node."""

    suffix: str
    group_role: str
    task_names: list[str]
    script: str
    environment: dict[str, str]
    wait: bool
    finish_if_any_task_failed: bool = False
    extra_state: dict[str, Any] = field(default_factory=dict)


class NodePool:
    """Create, read and delete of a provisioned worker pool running one task per node."""

    def __init__(self, platform, diags: Diagnostics) -> None:
        self.platform = platform
        self.diags = diags
        # Filled by create(): the tasks added, and (when waited for) their executing state.
        self.tasks: list = []
        self.executing: list = []

    def cluster(self, state: dict):
        """The cluster's work requirement, or None (with an error) when it can't take new nodes."""
        try:
            wr = self.platform.get_work_requirement(state["cluster_id"])
        except PlatformError as exc:
            report(self.diags, "Cannot read the cluster's work requirement", exc, ["cluster_id"])
            return None
        if wr is None or wr.finished:
            status = "does not exist" if wr is None else f"is {wr.status}"
            self.diags.add_error(
                "The cluster is gone",
                f"Work requirement {state['cluster_id']} {status}; re-create the raydog_cluster.",
                path=["cluster_id"],
            )
            return None
        if wr.name != state["cluster_name"]:
            self.diags.add_error(
                "cluster_name does not match the cluster",
                f'cluster_name is "{state["cluster_name"]}" but work requirement {wr.id} is named "{wr.name}"; '
                "use raydog_cluster.<name>.name.",
                path=["cluster_name"],
            )
            return None
        return wr

    def create(self, planned: dict, plan: NodePlan) -> Optional[dict]:
        """Provision the pool, append its task group, add its tasks and (if asked) wait for them.

        Ids are recorded as soon as they exist. A task that fails or doesn't start in time
        makes us remove what we created; an interrupt or an unexpected error returns the
        partial state with the error, so Terraform keeps the object (tainted) and the next
        apply replaces it: nothing is ever left on the platform that state doesn't know.
        """
        deadline = time.monotonic() + timeout_seconds(planned, "create")
        state = dict(planned)
        wr = self.cluster(state)
        if wr is None:
            return None
        lifetime = parse_lifetime(state)
        pool_name = names.pool_name(state["cluster_name"], plan.suffix)
        if not claim_pool_name(wr.namespace, pool_name):
            self.diags.add_error(
                "Duplicate worker pool name",
                f'Another resource in this configuration already creates worker pool "{wr.namespace}/{pool_name}"; '
                "YellowDog pool names are unique, so give each pool its own name.",
                path=["name"] if "name" in state and state.get("name") else ["cluster_name"],
            )
            return None
        try:
            pool = self.platform.provision_pool(
                PoolSpec(
                    namespace=wr.namespace,
                    name=pool_name,
                    template_id=state["compute_requirement_template_id"],
                    images_id=state.get("images_id"),
                    userdata=state.get("userdata"),
                    instance_tags=dict(state.get("instance_tags") or {}),
                    metrics_enabled=bool(state.get("metrics_enabled")),
                    node_count=len(plan.task_names),
                    worker_tag=pool_name,
                    idle_node_shutdown=IDLE_NODE_SHUTDOWN,
                    idle_pool_shutdown=IDLE_POOL_SHUTDOWN,
                    node_boot_timeout=None,
                ),
                details=False,  # the ids are all a create needs: no read-back
            )
        except PlatformError as exc:
            report(self.diags, f"Cannot provision worker pool {pool_name}", exc, ["compute_requirement_template_id"])
            return None
        state.update(
            id=pool.id,
            compute_requirement_id=pool.compute_requirement_id,
            yellowdog_name=pool.name,
            namespace=wr.namespace,
        )
        try:
            group = self.platform.ensure_task_group(
                wr.id,
                TaskGroupSpec(
                    name=names.task_group_name(plan.group_role),
                    worker_tag=pool.worker_tag or pool_name,
                    namespace=wr.namespace,
                    task_timeout=lifetime,
                    finish_if_any_task_failed=plan.finish_if_any_task_failed,
                ),
            )
            state["task_group_id"] = group.id
            tasks = self.platform.add_tasks(
                group.id,
                [TaskSpec(name=n, task_data=plan.script, environment=plan.environment, timeout=lifetime) for n in plan.task_names],
            )
            self.tasks = list(tasks)
            state.update(plan.extra_state)
            if plan.wait:
                self.executing = self.platform.wait_until_executing(
                    [t.id for t in tasks], max(deadline - time.monotonic(), 1.0), stop_event=tfcompat.STOP
                )
            return state
        except (TaskFailedError, WaitTimeoutError) as exc:
            cleaned = self.remove(state, quiet=True)
            what = "did not start" if isinstance(exc, WaitTimeoutError) else "failed"
            report(self.diags, f"The {plan.group_role} node {what}", exc)
            if cleaned:
                return None
            self.diags.add_error(
                "Could not remove the pool after the failure",
                f"Worker pool {state['id']} is kept in state (tainted) so the next apply removes it.",
            )
            return state
        except StoppedError as exc:
            report(self.diags, "Interrupted", exc)
            return state
        except PlatformError as exc:
            report(self.diags, f"Cannot start the {plan.group_role} node tasks", exc)
            return state

    def read_pool(self, state: dict):
        """The live pool, None when it is gone, or the string "error" when we could not tell."""
        try:
            pool = self.platform.get_pool(state["id"], details=False)  # the pool alone answers `live`
        except PlatformError as exc:
            report(self.diags, "Cannot read the worker pool; keeping it in state", exc)
            return "error"
        if pool is None or not pool.live:
            log.info("worker pool %s is gone (%s)", state["id"], None if pool is None else pool.status)
            return None
        return pool

    def remove(self, state: dict, quiet: bool = False) -> bool:
        """Abort the pool's running tasks, then shut the pool down and terminate its compute requirement."""
        try:
            if state.get("task_group_id"):
                for task in self.platform.list_tasks(state["task_group_id"]):
                    self.platform.cancel_task(task.id, abort=True)
            if state.get("id"):
                self.platform.remove_pool(
                    state["id"],
                    state.get("compute_requirement_id"),
                    timeout_seconds=timeout_seconds(state, "delete"),
                    stop_event=tfcompat.STOP,
                )
            return True
        except PlatformError as exc:
            if not quiet:
                report(self.diags, f"Cannot remove worker pool {state.get('id')}", exc)
            else:
                log.warning("cleanup of worker pool %s failed: %s", state.get("id"), exc)
            return False


def address_state(platform, diags: Diagnostics, state: dict, task) -> bool:
    """Fill task_id, node_id, private_ip and public_ip of a single-node resource."""
    try:
        address = platform.node_address(task.worker_id or task.node_id, state["compute_requirement_id"])
    except PlatformError as exc:
        report(diags, "Cannot resolve the node's addresses", exc)
        return False
    state.update(task_id=task.id, node_id=address.node_id, private_ip=address.private_ip, public_ip=address.public_ip)
    return True


def script_or_default(value: Optional[str], template: str) -> str:
    return value if value else node_scripts.render_builtin(template, {})


def plan_script_default(proposed: dict, planned: dict, attribute: str, template: str) -> None:
    """Show the built-in script in the create plan when the configuration gives none."""
    if proposed.get(attribute) is None:
        planned[attribute] = node_scripts.render_builtin(template, {})


def schema(attributes: list[Attribute], description: str) -> Schema:
    return Schema(version=0, attributes=attributes, block_types=[timeouts_block()], description=description)


class SingleNodeResource(RaydogResource):
    """A resource that is one pool of one node running one long-lived task (head, observability).

    Subclasses name their pool suffix, task group role, task and script template, and say
    which environment the task gets and which addresses the node's IP yields.
    """

    suffix: str
    group_role: str
    task_name: str
    script_template: str

    def environment(self, planned: dict) -> dict[str, str]:
        return dict(planned.get("environment") or {})

    def outputs(self, private_ip: str) -> dict[str, str]:
        return {}

    def plan_create(self, ctx, proposed: dict, planned: dict) -> dict:
        plan_script_default(proposed, planned, self.script_attribute, self.script_template)
        return planned

    def create(self, ctx, planned: dict) -> Optional[dict]:
        pool = NodePool(self.platform, ctx.diagnostics)
        state = pool.create(
            planned,
            NodePlan(
                suffix=names.suffixed(self.suffix, planned.get("name_suffix")),
                group_role=self.group_role,
                task_names=[self.task_name],
                script=planned[self.script_attribute],
                environment=self.environment(planned),
                wait=True,
                finish_if_any_task_failed=True,
            ),
        )
        if state is None:
            return None
        if pool.tasks:
            state["task_id"] = pool.tasks[0].id
        if pool.executing and not ctx.diagnostics.has_errors():
            if address_state(self.platform, ctx.diagnostics, state, pool.executing[0]):
                state.update(self.outputs(state["private_ip"]))
        return self.full(state)

    def read(self, ctx, current: dict) -> Optional[dict]:
        pool = NodePool(self.platform, ctx.diagnostics).read_pool(current)
        if pool == "error":
            return current
        if pool is None:
            return None
        try:
            task = self.platform.get_task(current["task_id"]) if current.get("task_id") else None
        except PlatformError as exc:
            report(ctx.diagnostics, f"Cannot read the {self.group_role} task; keeping it in state", exc)
            return current
        if task is None or task.finished:
            # The node's task has ended but its pool lives on. Keep the pool in state (so a
            # destroy still removes it, and a re-create doesn't adopt a pool that may have lost
            # its node) with no task: plan() turns that into a replacement.
            log.info("%s task %s has ended (%s): the resource will be replaced", self.group_role,
                     current.get("task_id"), None if task is None else task.status)
            return self.full({**current, "task_id": None})
        return self.full(current)

    def plan(self, ctx, current: Optional[dict], planned: dict) -> dict:
        if current is not None and current.get("id") and not current.get("task_id"):
            planned["task_id"] = Unknown  # task_id forces replacement: a new node, task and address
        return planned

    def update(self, ctx, current: dict, planned: dict) -> Optional[dict]:
        # Only timeouts change in place; every other input forces replacement.
        return self.full({**current, "timeouts": planned.get("timeouts")})

    def delete(self, ctx, current: dict) -> None:
        NodePool(self.platform, ctx.diagnostics).remove(current)

    def import_(self, ctx, id: str) -> Optional[dict]:
        from raydog.resources.imports import import_node_pool

        state = import_node_pool(self.platform, ctx.diagnostics, id, self.suffix, self.script_attribute)
        if state is None:
            return None
        if state.get("private_ip"):
            state.update(self.outputs(state["private_ip"]))
        return self.full(state)
