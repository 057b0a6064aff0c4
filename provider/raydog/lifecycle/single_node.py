"""The head and the observability node: each one pool of one node running one long-lived task."""

from __future__ import annotations

import logging
from typing import ClassVar, Optional

from tf.types import Unknown
from tf.utils import Diagnostics

from raydog import names
from raydog.config.models import SingleNodeConfig, Timeouts
from raydog.lifecycle.diagnostics import report
from raydog.lifecycle.importing import import_node_pool
from raydog.lifecycle.node_pool import NodePlan, live_pool
from raydog.lifecycle.peers import observability_environment
from raydog.lifecycle.planning import NodePlanning
from raydog.lifecycle.resource import RaydogResource
from raydog.lifecycle.scripts import script_sha256, stored_script
from raydog.yellowdog import PlatformError, TaskInfo

log = logging.getLogger("raydog.resources")


class SingleNodeResource(NodePlanning, RaydogResource):
    """CRUD of a single-node resource. Subclasses name their pool suffix, task group role,
    task and script template, and say which addresses the node's IP yields."""

    suffix: ClassVar[str]
    group_role: ClassVar[str]
    task_name: ClassVar[str]
    script_attribute: ClassVar[str]
    script_template: ClassVar[str]

    def environment(self, config: SingleNodeConfig, planned: dict) -> dict[str, str]:
        provider_set = {"OBSERVABILITY_HOST": config.observability_host} if config.observability_host else {}
        return config.task_environment(provider_set)

    def outputs(self, private_ip: str) -> dict[str, str]:
        return {}

    def peer_environment(self, config: SingleNodeConfig):
        """OBSERVABILITY_HOST learnt from the platform, when observability_name_suffix says so."""
        if getattr(config, "observability_name_suffix", None) is None:
            return None
        return observability_environment(self.provider, self.client, config)

    def pool_suffix(self, values: dict):
        name_suffix = values.get("name_suffix")
        return name_suffix if name_suffix is Unknown else names.suffixed(self.suffix, name_suffix)

    def name_path(self) -> list:
        return ["name_suffix"]

    @classmethod
    def upgrade_state(cls, state: dict) -> dict:
        """State written before scripts defaulted to null held the default script itself."""
        script = state.get(cls.script_attribute)
        if state.get("id") and not state.get("script_sha256"):
            state["script_sha256"] = script_sha256(script) if script else None
            state[cls.script_attribute] = stored_script(script, cls.script_template)
        return state

    def create(self, ctx, planned: dict) -> Optional[dict]:
        config = SingleNodeConfig.parse(planned, self.script_attribute, self.script_template)
        created = self.node_pool(ctx.diagnostics).create(planned, config, NodePlan(
            suffix=names.suffixed(self.suffix, config.name_suffix),
            group_role=self.group_role,
            task_names=[self.task_name],
            environment=self.environment(config, planned),
            wait=True,
            name_path=["cluster_name"],
            finish_if_any_task_failed=True,
            peer_environment=self.peer_environment(config),
        ))
        if created is None:
            return None
        state = created.state
        if created.tasks:
            state["task_id"] = created.tasks[0].id
        if created.executing and not ctx.diagnostics.has_errors():
            if self._fill_address(ctx.diagnostics, state, created.executing[0]):
                state.update(self.outputs(state["private_ip"]))
        return self.full(state)

    def _fill_address(self, diags: Diagnostics, state: dict, task: TaskInfo) -> bool:
        """Fill node_id, private_ip and public_ip from the node running ``task``."""
        try:
            address = self.client.node_address(task.worker_id or task.node_id, state["compute_requirement_id"])
        except PlatformError as exc:
            report(diags, "Cannot resolve the node's addresses", exc)
            return False
        state.update(node_id=address.node_id, private_ip=address.private_ip, public_ip=address.public_ip)
        return True

    def read(self, ctx, current: dict) -> Optional[dict]:
        try:
            pool = live_pool(self.client, current["id"])
            if pool is None:
                return None
            task = self.client.get_task(current["task_id"]) if current.get("task_id") else None
        except PlatformError as exc:
            report(ctx.diagnostics, f"Cannot read the {self.group_role} node; keeping it in state", exc)
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
        planned = super().plan(ctx, current, planned)
        if current is not None and current.get("id") and not current.get("task_id"):
            planned["task_id"] = Unknown  # task_id forces replacement: a new node, task and address
        return planned

    def update(self, ctx, current: dict, planned: dict) -> Optional[dict]:
        # Nothing changes on the platform: timeouts, or values the plan showed to be the same
        # (a template by id or by name, a configured value after an import) are recorded.
        return self.full(self.applied(current, planned))

    def delete(self, ctx, current: dict) -> None:
        self.node_pool(ctx.diagnostics).remove(current, Timeouts.parse(current.get("timeouts")))

    def import_(self, ctx, id: str) -> Optional[dict]:
        state = import_node_pool(self.client, ctx.diagnostics, id, self.suffix, self.script_attribute,
                                 self.script_template)
        if state is None:
            return None
        self.take_ownership(ctx.diagnostics, state)
        if state.get("private_ip"):
            state.update(self.outputs(state["private_ip"]))
        return self.full(state)
