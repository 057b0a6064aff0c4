"""The base of the raydog resources: the configured client, the attribute table, full states."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, ClassVar, Optional, Protocol

from tf.iface import Resource
from tf.schema import Schema
from tf.utils import Diagnostics

from raydog import tfcompat
from raydog.config.fields import Table
from raydog.lifecycle.diagnostics import lint_script_attribute
from raydog.lifecycle.node_pool import NodePool, PoolClaims

if TYPE_CHECKING:
    from raydog.yellowdog import YellowDogClient


class ProviderContext(Protocol):
    """What a resource needs of the configured provider (raydog.provider.RaydogProvider)."""

    @property
    def client(self) -> "YellowDogClient": ...

    stopping: threading.Event
    pool_claims: PoolClaims


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
        return NodePool(self.client, diags, self.provider.stopping, self.provider.pool_claims)

    @classmethod
    def get_schema(cls) -> Schema:
        return cls.table.schema(cls.description)

    @classmethod
    def full(cls, state: Optional[dict]) -> Optional[dict]:
        return tfcompat.complete_state(cls.get_schema(), state)

    def validate(self, diags: Diagnostics, type_name: str, config: dict) -> None:
        super().validate(diags, type_name, config)
        self.table.report(diags, config)
        if self.script_attribute and self.script_role:
            lint_script_attribute(diags, config, self.script_attribute, self.script_role)

    def upgrade(self, ctx, version: int, old: dict) -> dict:
        return self.full(old)
