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
# RAYDOG_SECRET_NAMES lists the names (never the values) of the secret_environment entries,
# so an import can tell them from the plain environment.
SECRET_NAMES_VARIABLE = "RAYDOG_SECRET_NAMES"
PROVIDER_SET_VARIABLES = frozenset({"RAY_HEAD_IP", "RAY_HEAD_NODE_PRIVATE_IP", "OBSERVABILITY_HOST",
                                    SECRET_NAMES_VARIABLE})
MAX_NODES_PER_POOL = 10000


def name(what: str):
    """A check of YellowDog's naming rule for a ``what`` (\"namespace\", \"tag\")."""
    def check(value: str) -> None:
        problem = names.name_problem(value)
        if problem:
            raise ValueError(f'{what} "{value}" {problem}')
    return check


def cluster_name(value: str) -> None:
    """A cluster name leaves room for its head pool's YellowDog name, ``<cluster_name>-head``."""
    problem = names.name_problem(value, names.MAX_CLUSTER_NAME_LENGTH,
                                 f"the head pool's YellowDog name <cluster_name>-{names.HEAD_SUFFIX} "
                                 f"must fit YellowDog's {names.MAX_NAME_LENGTH}")
    if problem:
        raise ValueError(f'cluster name "{value}" {problem}')


def derived_name(suffix: str, what: str, part: str = ""):
    """A check that ``<cluster_name>-<suffix>``, the YellowDog name of a cluster's pool, is valid.

    A name that is too long is told the length that applies: of ``part`` (the attribute
    that ends the suffix: a worker pool's ``name``, a head's ``name_suffix``) with this
    cluster name, or of the cluster name when ``part`` is empty.
    """
    def check(cluster_name: str) -> None:
        derived = names.pool_name(cluster_name, suffix)
        problem = names.name_problem(derived)
        if not problem:
            return
        message = f'the YellowDog name of this {what}, "{derived}" (<cluster_name>-{suffix}), {problem}'
        if len(derived) > names.MAX_NAME_LENGTH:
            if part:
                fixed = len(suffix) - len(_user_part(suffix, part))  # e.g. "head-" before a name_suffix
                room = max(names.longest_pool_suffix(cluster_name) - fixed, 0)
                message += (f'; with cluster name "{cluster_name}" ({len(cluster_name)} characters) '
                            f"{part} may be at most {room} characters")
            else:
                message += f"; the cluster name may be at most {names.MAX_NAME_LENGTH - len(suffix) - 1} characters"
        raise ValueError(message)
    return check


def _user_part(suffix: str, part: str) -> str:
    """The part of a pool suffix the user wrote: a worker pool's whole name, the name_suffix
    in ``head-<name_suffix>``."""
    return suffix.split("-", 1)[1] if part == "name_suffix" and "-" in suffix else suffix


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


def secret_names_disjoint(environment: dict, secret_environment: dict) -> None:
    both = sorted(set(environment) & set(secret_environment))
    if both:
        raise ValueError(f"{', '.join(both)} {'is' if len(both) == 1 else 'are'} set in both environment and "
                         "secret_environment; keep each variable in one of them")


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
    name("worker pool name")(value)
    if value in names.RESERVED_POOL_NAMES:
        raise ValueError(f'"{value}" is reserved for the cluster\'s own {value} pool; choose another name')
    longest = names.MAX_POOL_NAME_LENGTH
    if len(value) > longest:
        raise ValueError(
            f'worker pool name "{value}" is {len(value)} characters long; at most {longest} '
            f"are allowed so that its task group name (<name>-<8 hex>) fits YellowDog's {names.MAX_NAME_LENGTH}"
        )
