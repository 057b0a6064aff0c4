"""Pydantic models of each resource's configuration: the one place input is validated.

Terraform hands ``validate`` a configuration in which some values are still unknown
(they depend on other resources). Unknown values are validated later, when they are
known; a rule that needs several values runs once all of them are known. Every problem
is reported against the attribute path it belongs to, before any API call is made.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, ClassVar, Iterable, Optional
from urllib.parse import urlparse

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator

from raydog import names

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
# Ray's ports on the head node.
RAY_GCS_PORT = 6379
RAY_CLIENT_PORT = 10001
RAY_DASHBOARD_PORT = 8265


def parse_duration(text: str) -> timedelta:
    """Parse a Terraform-style duration ("90s", "10m", "2h", "1h30m") into a positive timedelta."""
    if not isinstance(text, str) or not text:
        raise ValueError('must be a duration such as "90s", "10m" or "2h"')
    position, seconds = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            break
        seconds += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        position = match.end()
    if position != len(text):
        raise ValueError(f'"{text}" is not a duration; use a number and a unit (ms, s, m, h), such as "90s", "10m" or "2h"')
    if seconds <= 0:
        raise ValueError(f'"{text}" must be longer than zero')
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """The shortest Terraform-style spelling of a timedelta ("2h", "1h30m", "90s")."""
    total = int(value.total_seconds())
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (seconds, "s")) if n]
    return "".join(parts) or "0s"


def _check_name(value: Optional[str], what: str) -> Optional[str]:
    if value is None:
        return value
    problem = names.name_problem(value)
    if problem:
        raise ValueError(f'{what} "{value}" {problem}')
    return value


def _check_derived(cluster: Optional[str], suffix: Optional[str], what: str) -> None:
    if cluster is None or suffix is None:
        return
    derived = names.pool_name(cluster, suffix)
    problem = names.name_problem(derived)
    if problem:
        raise ValueError(f'the YellowDog name of this {what}, "{derived}" (<cluster_name>-{suffix}), {problem}')


def _check_tag_key(key: str) -> str:
    if not key:
        raise ValueError("instance tag keys must not be empty")
    return key


def _check_env_name(key: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
        raise ValueError(
            f'environment variable name "{key}" is not valid in bash; use letters, digits and "_", '
            "not starting with a digit"
        )
    if key in PROVIDER_SET_VARIABLES:
        raise ValueError(
            f'environment variable "{key}" is set by the provider; use the matching attribute instead'
        )
    return key


# Map keys validated one by one, so each error points at its key (loc: attribute, key, "[key]").
TagKey = Annotated[str, AfterValidator(_check_tag_key)]
EnvName = Annotated[str, AfterValidator(_check_env_name)]

# Task environment variables the provider sets itself from resource attributes.
PROVIDER_SET_VARIABLES = frozenset({"RAY_HEAD_IP", "RAY_HEAD_NODE_PRIVATE_IP", "OBSERVABILITY_HOST"})


class _Spec(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)


class ProviderSpec(_Spec):
    api_url: Optional[str] = None
    application_key_id: Optional[str] = None
    application_key_secret: Optional[str] = None

    @field_validator("api_url")
    @classmethod
    def _url(cls, v: Optional[str]) -> Optional[str]:
        if v is None:
            return v
        parsed = urlparse(v)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f'"{v}" is not an http(s) URL, such as "https://api.yellowdog.ai"')
        return v

    @field_validator("application_key_id", "application_key_secret")
    @classmethod
    def _not_blank(cls, v: Optional[str]) -> Optional[str]:
        if v is not None and not v.strip():
            raise ValueError("must not be empty")
        return v


class ClusterSpec(_Spec):
    name: Optional[str] = None
    namespace: Optional[str] = None
    tag: Optional[str] = None

    @field_validator("name")
    @classmethod
    def _name(cls, v):
        _check_name(v, "cluster name")
        _check_derived(v, names.HEAD_SUFFIX, "cluster's head pool")
        return v

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, v):
        return _check_name(v, "namespace")

    @field_validator("tag")
    @classmethod
    def _tag(cls, v):
        return _check_name(v, "tag")


class TimeoutsSpec(_Spec):
    create: Optional[str] = None
    update: Optional[str] = None
    delete: Optional[str] = None

    @field_validator("create", "update", "delete")
    @classmethod
    def _duration(cls, v):
        if v is not None:
            parse_duration(v)
        return v


class NodeSpec(_Spec):
    """What the head, the observability node and every worker pool have in common."""

    cluster_id: Optional[str] = None
    cluster_name: Optional[str] = None
    compute_requirement_template_id: Optional[str] = None
    images_id: Optional[str] = None
    userdata: Optional[str] = None
    instance_tags: Optional[dict[TagKey, str]] = None
    metrics_enabled: Optional[bool] = None
    environment: Optional[dict[EnvName, str]] = None
    lifetime: Optional[str] = None
    timeouts: Optional[TimeoutsSpec] = None

    @field_validator("cluster_id")
    @classmethod
    def _cluster_id(cls, v):
        if v is not None and not v.startswith("ydid:workreq:"):
            raise ValueError(f'"{v}" is not a work requirement id (ydid:workreq:...); use raydog_cluster.<name>.id')
        return v

    @field_validator("cluster_name")
    @classmethod
    def _cluster_name(cls, v):
        return _check_name(v, "cluster name")

    @field_validator("compute_requirement_template_id")
    @classmethod
    def _template(cls, v):
        if v is not None and not v.strip():
            raise ValueError("must not be empty")
        return v

    @field_validator("lifetime")
    @classmethod
    def _lifetime(cls, v):
        if v is not None:
            parse_duration(v)
        return v


class _SingleNodeSpec(NodeSpec):
    """Head and observability: one pool named ``<cluster>-<suffix>[-<name_suffix>]``."""

    pool_suffix: ClassVar[str]
    what: ClassVar[str]
    # Declared after cluster_name so its validator sees it.
    name_suffix: Optional[str] = None

    @field_validator("cluster_name")
    @classmethod
    def _derived(cls, v):
        _check_derived(v, cls.pool_suffix, cls.what)
        return v

    @field_validator("name_suffix")
    @classmethod
    def _suffix(cls, v, info: ValidationInfo):
        if v is None:
            return v
        if not re.fullmatch(r"[a-z0-9_-]*[a-z0-9]", v):
            raise ValueError(f'name suffix "{v}" may contain only lowercase letters, digits, "-" and "_", '
                             "and must end with a letter or digit")
        _check_derived(info.data.get("cluster_name"), names.suffixed(cls.pool_suffix, v), cls.what)
        return v


class HeadSpec(_SingleNodeSpec):
    pool_suffix: ClassVar[str] = names.HEAD_SUFFIX
    what: ClassVar[str] = "head pool"
    ray_start_script: Optional[str] = None
    observability_host: Optional[str] = None


class ObservabilitySpec(_SingleNodeSpec):
    pool_suffix: ClassVar[str] = names.OBSERVABILITY_SUFFIX
    what: ClassVar[str] = "observability pool"
    start_script: Optional[str] = None


class WorkerPoolSpec(NodeSpec):
    head_private_ip: Optional[str] = None
    observability_host: Optional[str] = None
    task_script: Optional[str] = None
    node_count: Optional[float] = None
    wait_for_nodes: Optional[bool] = None
    # Declared last so its validator sees cluster_name.
    name: Optional[str] = None

    @field_validator("node_count")
    @classmethod
    def _count(cls, v):
        if v is None:
            return v
        if v != int(v):
            raise ValueError(f"must be a whole number of nodes, not {v}")
        if v < 1:
            raise ValueError(f"must be at least 1 (got {int(v)}); remove the pool to have no nodes")
        if v > 10000:
            raise ValueError(f"must be at most 10000, YellowDog's limit of nodes per worker pool (got {int(v)})")
        return v

    @field_validator("head_private_ip")
    @classmethod
    def _ip(cls, v):
        if v is not None and not v.strip():
            raise ValueError("must not be empty; use raydog_head.<name>.private_ip")
        return v

    @field_validator("name")
    @classmethod
    def _name(cls, v, info: ValidationInfo):
        _check_name(v, "worker pool name")
        if v in names.RESERVED_POOL_NAMES:
            raise ValueError(f'"{v}" is reserved for the cluster\'s own {v} pool; choose another name')
        if v is not None and len(v) > names.MAX_NAME_LENGTH - 9:
            raise ValueError(
                f'worker pool name "{v}" is {len(v)} characters long; at most {names.MAX_NAME_LENGTH - 9} '
                "are allowed so that its task group name (<name>-<8 hex>) fits YellowDog's 60"
            )
        _check_derived(info.data.get("cluster_name"), v, "worker pool")
        return v


def problems(spec: type[_Spec], config: dict[str, Any]) -> list[tuple[list, str]]:
    """Validate the known values of ``config``; return (attribute path, message) pairs."""
    from tf.types import Unknown

    known = {k: _known(v, Unknown) for k, v in config.items()}
    try:
        spec.model_validate(known)
    except ValidationError as exc:
        return [(_path(err["loc"]), _message(err)) for err in exc.errors()]
    return []


def _known(value: Any, unknown: Any) -> Any:
    """Replace unknown values (at any depth) by None: they are validated once known."""
    if value is unknown:
        return None
    if isinstance(value, dict):
        return {k: _known(v, unknown) for k, v in value.items() if _known(v, unknown) is not None}
    if isinstance(value, list):
        return [_known(v, unknown) for v in value]
    return value


# Blocks whose members are attributes (path steps by name), not map or list elements.
_BLOCKS = frozenset({"timeouts"})


def _path(loc: Iterable) -> list:
    steps = [s for s in loc if s != "[key]"]
    if not steps:
        return []
    if steps[0] in _BLOCKS:
        return [str(s) for s in steps]
    return [steps[0], *[(s,) for s in steps[1:]]]


def _message(err: dict) -> str:
    msg = err.get("msg", "is not valid")
    return msg.removeprefix("Value error, ")
