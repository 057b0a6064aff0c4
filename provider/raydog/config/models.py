"""The typed configuration each CRUD call works from, parsed once from Terraform's state.

Terraform gives a resource a dict of attribute values; ``parse`` turns it into one of these
frozen objects (numbers as ints, durations as timedeltas, maps never None), and the
lifecycle code below the resource reads nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Mapping, Optional

from raydog import settings
from raydog.config.durations import parse_duration, parse_duration_or_zero
from raydog.config.node_fields import DEFAULT_TIMEOUTS


@dataclass(frozen=True)
class Timeouts:
    create: timedelta
    update: timedelta
    delete: timedelta

    @classmethod
    def parse(cls, block: Optional[Mapping[str, Any]]) -> "Timeouts":
        block = block or {}
        return cls(**{op: parse_duration(block.get(op) or default) for op, default in DEFAULT_TIMEOUTS.items()})


@dataclass(frozen=True)
class ClusterConfig:
    name: str
    namespace: str
    tag: Optional[str]

    @classmethod
    def parse(cls, state: Mapping[str, Any]) -> "ClusterConfig":
        return cls(name=state["name"], namespace=state["namespace"], tag=state.get("tag"))


@dataclass(frozen=True)
class NodeConfig:
    """What the head, the observability node and every worker pool are configured with."""

    cluster_id: str
    cluster_name: str
    template_id: str
    images_id: Optional[str]
    userdata: Optional[str]
    instance_tags: dict[str, str]
    metrics_enabled: bool
    environment: dict[str, str]
    secret_environment: dict[str, str]
    namespace: Optional[str]  # None: the cluster's
    lifetime: Optional[timedelta]
    timeouts: Timeouts
    script: str  # the node task's bash script (ray_start_script, start_script or task_script, else the default)

    @staticmethod
    def common(state: Mapping[str, Any], script_attribute: str, template: str) -> dict[str, Any]:
        from raydog.lifecycle.scripts import effective_script

        return dict(
            cluster_id=state["cluster_id"],
            cluster_name=state["cluster_name"],
            template_id=state["compute_requirement_template_id"],
            images_id=state.get("images_id"),
            userdata=state.get("userdata"),
            instance_tags=dict(state.get("instance_tags") or {}),
            metrics_enabled=bool(state.get("metrics_enabled")),
            environment=dict(state.get("environment") or {}),
            secret_environment=dict(state.get("secret_environment") or {}),
            namespace=state.get("namespace") if isinstance(state.get("namespace"), str) else None,
            lifetime=parse_duration(state["lifetime"]) if state.get("lifetime") else None,
            timeouts=Timeouts.parse(state.get("timeouts")),
            script=effective_script(state.get(script_attribute), template),
        )

    def task_environment(self, provider_set: Mapping[str, str]) -> dict[str, str]:
        """The node task's environment: the configured one, the secrets (with the list of their
        names, never their values, so an import can tell them apart) and what the provider sets."""
        from raydog.config.rules import SECRET_NAMES_VARIABLE

        environment = {**self.environment, **self.secret_environment, **provider_set}
        if self.secret_environment:
            environment[SECRET_NAMES_VARIABLE] = ",".join(sorted(self.secret_environment))
        return environment


@dataclass(frozen=True)
class SingleNodeConfig(NodeConfig):
    """A head or an observability node: one pool of one node."""

    name_suffix: Optional[str]
    observability_host: Optional[str]
    observability_name_suffix: Optional[str]  # None: OBSERVABILITY_HOST not learnt from the platform

    @classmethod
    def parse(cls, state: Mapping[str, Any], script_attribute: str, template: str) -> "SingleNodeConfig":
        return cls(**cls.common(state, script_attribute, template), name_suffix=state.get("name_suffix"),
                   observability_host=state.get("observability_host"),
                   observability_name_suffix=state.get("observability_name_suffix"))


@dataclass(frozen=True)
class Autoscaling:
    """A worker pool's autoscaling block: Ray's autoscaler keeps it between the bounds."""

    min_nodes: int
    max_nodes: int
    idle_timeout: timedelta

    @classmethod
    def parse(cls, block: Optional[Mapping[str, Any]]) -> Optional["Autoscaling"]:
        from raydog.config.autoscaling import DEFAULT_IDLE_TIMEOUT

        if not block:
            return None
        return cls(min_nodes=int(block["min_nodes"]), max_nodes=int(block["max_nodes"]),
                   idle_timeout=parse_duration(block.get("idle_timeout") or DEFAULT_IDLE_TIMEOUT))

    def clamp(self, size: int) -> int:
        """The size nearest ``size`` inside the bounds."""
        return min(max(size, self.min_nodes), self.max_nodes)


@dataclass(frozen=True)
class AutoscalerKey:
    """The head's autoscaler: its own application key and the API URL as the head reaches it."""

    key_id: str
    key_secret: str
    api_url: Optional[str]  # None: the provider's

    @classmethod
    def parse(cls, state: Mapping[str, Any]) -> Optional["AutoscalerKey"]:
        key_id, secret = state.get("autoscaler_application_key_id"), state.get("autoscaler_application_key_secret")
        if not key_id or not secret:
            return None
        return cls(key_id=key_id, key_secret=secret, api_url=state.get("autoscaler_api_url"))


@dataclass(frozen=True)
class WorkerPoolConfig(NodeConfig):
    name: str
    head_private_ip: Optional[str]  # None: learnt from the platform (the head named by head_name_suffix)
    head_name_suffix: Optional[str]
    observability_host: Optional[str]
    observability_name_suffix: Optional[str]
    node_count: int
    wait_for_nodes: bool
    ray: "RayAccess"
    autoscaling: Optional[Autoscaling] = None

    @classmethod
    def parse(cls, state: Mapping[str, Any]) -> "WorkerPoolConfig":
        autoscaling = Autoscaling.parse(state.get("autoscaling"))
        count = state.get("node_count")
        node_count = int(count) if isinstance(count, (int, float)) else (autoscaling.min_nodes if autoscaling else 0)
        return cls(**cls.common(state, "task_script", "worker"), name=state["name"],
                   head_private_ip=state.get("head_private_ip"), head_name_suffix=state.get("head_name_suffix"),
                   observability_host=state.get("observability_host"),
                   observability_name_suffix=state.get("observability_name_suffix"),
                   node_count=node_count,
                   wait_for_nodes=bool(state.get("wait_for_nodes")) or state.get("readiness") == settings.READINESS_RAY,
                   ray=RayAccess.parse(state, state.get("head_private_ip")), autoscaling=autoscaling)


@dataclass(frozen=True)
class RayAccess:
    """How the provider reaches the head's Ray GCS, and what it asks of it (lifecycle.ray_nodes)."""

    readiness: str  # "executing" or "ray"
    gcs_address: Optional[str]  # host:port; None when the head's IP is not known yet
    drain_timeout: timedelta  # zero: no drain

    @classmethod
    def parse(cls, state: Mapping[str, Any], head_ip: Optional[str]) -> "RayAccess":
        address = state.get("ray_gcs_address") or (settings.gcs_address(head_ip) if isinstance(head_ip, str) else None)
        drain = state.get("drain_timeout") or settings.DEFAULT_DRAIN_TIMEOUT
        return cls(readiness=state.get("readiness") or settings.READINESS_EXECUTING, gcs_address=address,
                   drain_timeout=parse_duration_or_zero(drain))
