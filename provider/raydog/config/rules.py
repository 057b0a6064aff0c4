"""What a valid value is, for the attributes of more than one resource.

Each check raises ValueError with a message that says what is wrong and how to fix it;
``fields.Field`` attaches the attribute path.
"""

from __future__ import annotations

import math
import re

from raydog import names, settings
from raydog.config.durations import parse_duration

# Task environment variables the provider sets itself from resource attributes.
PROVIDER_SET_VARIABLES = frozenset({"RAY_HEAD_IP", "RAY_HEAD_NODE_PRIVATE_IP", "OBSERVABILITY_HOST"})
MAX_NODES_PER_POOL = 10000


def name(what: str, generations: bool = False):
    """A check of YellowDog's naming rule for a ``what`` (\"cluster name\", \"namespace\").

    ``generations``: the name is one the provider makes generations of (``<name>--2``), so
    it must not contain the generation separator itself."""
    def check(value: str) -> None:
        problem = names.name_problem(value)
        if problem:
            raise ValueError(f'{what} "{value}" {problem}')
        if generations and names.GENERATION_SEPARATOR in value:
            raise ValueError(f'{what} "{value}" must not contain "{names.GENERATION_SEPARATOR}": the provider '
                             "marks the later generations of a name with it (<name>--2)")
    return check


def derived_name(suffix: str, what: str):
    """A check that ``<cluster_name>-<suffix>``, the YellowDog name of a cluster's pool, is valid."""
    def check(cluster_name: str) -> None:
        derived = names.pool_name(cluster_name, suffix)
        problem = names.name_problem(derived)
        if problem:
            raise ValueError(f'the YellowDog name of this {what}, "{derived}" (<cluster_name>-{suffix}), {problem}')
    return check


def duration(value: str) -> None:
    parse_duration(value)


def not_blank(value: str) -> None:
    if not value.strip():
        raise ValueError("must not be empty")


def api_url(value: str) -> None:
    problem = settings.url_problem(value)
    if problem:
        raise ValueError(problem)


def application_key(value: str) -> None:
    problem = settings.key_problem(value)
    if problem:
        raise ValueError(problem)


def work_requirement_id(value: str) -> None:
    if not value.startswith("ydid:workreq:"):
        raise ValueError(f'"{value}" is not a work requirement id (ydid:workreq:...); use raydog_cluster.<name>.id')


def tag_key(key: str) -> None:
    if not key:
        raise ValueError("instance tag keys must not be empty")


def environment_name(key: str) -> None:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
        raise ValueError(
            f'environment variable name "{key}" is not valid in bash; use letters, digits and "_", '
            "not starting with a digit"
        )
    if key in PROVIDER_SET_VARIABLES:
        raise ValueError(f'environment variable "{key}" is set by the provider; use the matching attribute instead')


def name_suffix(value: str) -> None:
    if not re.fullmatch(r"[a-z0-9_-]*[a-z0-9]", value):
        raise ValueError(f'name suffix "{value}" may contain only lowercase letters, digits, "-" and "_", '
                         "and must end with a letter or digit")


def node_count(value: float) -> None:
    if not math.isfinite(value) or value != int(value):
        raise ValueError(f"must be a whole number of nodes, not {value}")
    if value < 1:
        raise ValueError(f"must be at least 1 (got {int(value)}); remove the pool to have no nodes")
    if value > MAX_NODES_PER_POOL:
        raise ValueError(f"must be at most {MAX_NODES_PER_POOL}, YellowDog's limit of nodes per worker pool "
                         f"(got {int(value)})")


def head_private_ip(value: str) -> None:
    if not value.strip():
        raise ValueError("must not be empty; use raydog_head.<name>.private_ip")


def worker_pool_name(value: str) -> None:
    name("worker pool name", generations=True)(value)
    if value in names.RESERVED_POOL_NAMES:
        raise ValueError(f'"{value}" is reserved for the cluster\'s own {value} pool; choose another name')
    longest = names.MAX_NAME_LENGTH - 9
    if len(value) > longest:
        raise ValueError(
            f'worker pool name "{value}" is {len(value)} characters long; at most {longest} '
            "are allowed so that its task group name (<name>-<8 hex>) fits YellowDog's 60"
        )
