"""The base of the raydog resources: the configured client, the attribute table, full states."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, ClassVar, Optional, Protocol

from tf.iface import Resource
from tf.schema import Schema
from tf.types import Unknown
from tf.utils import Diagnostics

from raydog import tfcompat
from raydog.config.fields import Table
from raydog.lifecycle.diagnostics import lint_script_attribute
from raydog.lifecycle.node_pool import NodePool, PoolClaims
from raydog.lifecycle.ownership import OwnershipJournal
from raydog.lifecycle.planning import PlanLookups

if TYPE_CHECKING:
    from raydog.yellowdog import YellowDogClient
    from raydog.yellowdog.rest import RestReader


class ProviderContext(Protocol):
    """What a resource needs of the configured provider (raydog.provider.RaydogProvider)."""

    @property
    def client(self) -> "YellowDogClient": ...

    @property
    def reader(self) -> "RestReader": ...

    @property
    def configured(self) -> bool: ...

    @property
    def api_url(self) -> str: ...

    stopping: threading.Event
    pool_claims: PoolClaims
    ownership: OwnershipJournal
    lookups: PlanLookups


class RaydogResource(Resource):
    """A resource whose schema and validation both come from its attribute table."""

    table: ClassVar[Table]
    description: ClassVar[str]
    script_attribute: ClassVar[Optional[str]] = None
    script_role: ClassVar[Optional[str]] = None  # lint the script as a head's or a worker's

    def __init__(self, provider: ProviderContext) -> None:
        self.provider = provider

    @property
    def client(self) -> "YellowDogClient":
        return self.provider.client

    def node_pool(self, diags: Diagnostics) -> NodePool:
        return NodePool(self.client, diags, self.provider.stopping, self.provider.pool_claims, self.provider.ownership)

    @classmethod
    def get_schema(cls) -> Schema:
        return cls.table.schema(cls.description)

    @classmethod
    def full(cls, state: Optional[dict]) -> Optional[dict]:
        return tfcompat.complete_state(cls.get_schema(), state)

    @staticmethod
    def applied(current: dict, planned: dict) -> dict:
        """The state after an in-place update: the planned values, and the current ones where
        the plan left them unknown."""
        return {k: current.get(k) if v is Unknown else v for k, v in planned.items()}

    def validate(self, diags: Diagnostics, type_name: str, config: dict) -> None:
        super().validate(diags, type_name, config)
        self.table.report(diags, config)
        if self.script_attribute and self.script_role:
            lint_script_attribute(diags, config, self.script_attribute, self.script_role)

    def take_ownership(self, diags: Diagnostics, state: dict) -> None:
        """Record an imported pool's token in the ownership journal: it is this configuration's now."""
        from raydog.lifecycle.node_pool import WORKER_POOL
        from raydog.yellowdog import PlatformError

        try:
            pool = self.client.get_pool(state["id"], details=False)
        except PlatformError as exc:
            diags.add_warning("Cannot record the imported pool as this configuration's", str(exc))
            return
        if pool is not None and pool.worker_tag and state.get("namespace") and state.get("yellowdog_name"):
            self.provider.ownership.record(WORKER_POOL, state["namespace"], state["yellowdog_name"], pool.worker_tag)

    def upgrade(self, ctx, version: int, old: dict) -> dict:
        return self.full(old)
