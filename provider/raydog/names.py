"""The one place that says what things are called on YellowDog.

Every name the provider gives YellowDog derives from the cluster's name, so one cluster's
objects are recognisable on the platform and in RayDog's tools:

| object | name |
|---|---|
| work requirement | ``<cluster>`` |
| head / observability worker pool (and compute requirement) | ``<cluster>-head`` / ``<cluster>-obs`` |
| worker pool (and compute requirement) | ``<cluster>-<pool>`` |
| task group | ``<role>-<8 random hex>`` (new for every create, so a re-created pool never collides) |
| task | ``head``, ``observability``, ``node-<n>`` |

Where the platform keeps a finished object's name (a destroyed cluster's work requirement,
a removed or replaced pool: YellowDog documents names as unique and does not say they are
freed), a create takes the next *generation* of its name: ``<name>--2``, ``<name>--3``, ...
(the base cut short if the whole would pass 60 characters). Names the provider gives can't
contain ``--`` themselves, so ``base_name`` always recovers the configured name.
"""

from __future__ import annotations

import re

# YellowDog's naming rule (namespaces, tags, work requirements, task groups, tasks, pools),
# always matched in full: with ``match`` a "$" also matches before a trailing newline.
NAME_PATTERN = r"[a-z](?:[a-z0-9_-]{0,58}[a-z0-9])?"
NAME_RE = re.compile(NAME_PATTERN)
MAX_NAME_LENGTH = 60

HEAD_SUFFIX = "head"
OBSERVABILITY_SUFFIX = "obs"
RESERVED_POOL_NAMES = frozenset({HEAD_SUFFIX, OBSERVABILITY_SUFFIX})

HEAD_GROUP_ROLE = "head"
OBSERVABILITY_GROUP_ROLE = "observability"
HEAD_TASK = "head"
OBSERVABILITY_TASK = "observability"


# The longest names that leave room for what is derived from them: a cluster's head pool
# is <cluster>-head (the longest fixed suffix), a worker pool's task groups <pool>-<8 hex>.
MAX_CLUSTER_NAME_LENGTH = MAX_NAME_LENGTH - len(f"-{HEAD_SUFFIX}")
MAX_POOL_NAME_LENGTH = MAX_NAME_LENGTH - len("-12345678")


def name_problem(value: str, limit: int = MAX_NAME_LENGTH, why: str = "") -> str | None:
    """Why ``value`` breaks YellowDog's naming rule, or None when it is valid.

    ``limit`` is the length that applies to this name (shorter than YellowDog's 60 when
    other names derive from it) and ``why`` says where that limit comes from.
    """
    if not value:
        return "must not be empty"
    if len(value) > limit:
        reason = why or "YellowDog's limit"
        return f"is {len(value)} characters long; at most {limit} are allowed ({reason})"
    if not NAME_RE.fullmatch(value):
        return (
            "must start with a lowercase letter, end with a letter or digit, and contain only "
            "lowercase letters, digits, '-' and '_'"
        )
    return None


def longest_pool_suffix(cluster: str) -> int:
    """How long the part after ``<cluster>-`` of one of this cluster's pool names may be."""
    return MAX_NAME_LENGTH - len(cluster) - 1


GENERATION_SEPARATOR = "--"
MAX_GENERATIONS = 1000  # a cluster holds at most 1000 task groups, so no pool is made more often


def generations(name: str, limit: int = MAX_GENERATIONS):
    """``name``, then ``name--2``, ``name--3`` ... : the names a create tries in turn."""
    yield name
    for n in range(2, limit + 1):
        tail = f"{GENERATION_SEPARATOR}{n}"
        yield name[:MAX_NAME_LENGTH - len(tail)].rstrip("-_") + tail


def base_name(yellowdog_name: str) -> str:
    """The configured name behind a generation's name (``lc-alpha--3`` -> ``lc-alpha``)."""
    match = re.fullmatch(rf"(.+?){GENERATION_SEPARATOR}\d+", yellowdog_name or "")
    return match.group(1) if match else yellowdog_name


def is_generation_of(yellowdog_name: str, name: str) -> bool:
    """True when ``yellowdog_name`` is ``name`` or one of its generations."""
    if yellowdog_name == name:
        return True
    return base_name(yellowdog_name) != yellowdog_name and yellowdog_name in generations(name)


def pool_name(cluster: str, suffix: str) -> str:
    """The YellowDog worker pool (and compute requirement) name of one of a cluster's pools."""
    return f"{cluster}-{suffix}"


def suffixed(suffix: str, name_suffix: str | None) -> str:
    """The pool suffix of a head or observability node, with its optional name_suffix."""
    return f"{suffix}-{name_suffix}" if name_suffix else suffix


def name_suffix_of(cluster: str, suffix: str, yellowdog_name: str | None) -> str | None:
    """The name_suffix of a head or observability pool named ``<cluster>-<suffix>-<name_suffix>``."""
    prefix = f"{cluster}-{suffix}-"
    yellowdog_name = base_name(yellowdog_name) if yellowdog_name else yellowdog_name
    if yellowdog_name and yellowdog_name.startswith(prefix) and len(yellowdog_name) > len(prefix):
        return yellowdog_name[len(prefix):]
    return None


def task_group_name(role: str) -> str:
    """A fresh task group name for one create of a pool.

    Groups can't be deleted or renamed, and a finished group keeps its name, so every create
    (including a re-create that adopts a live pool of the same name) appends a new group.
    The name is fixed once per create call, so retries inside that call stay idempotent.
    """
    import secrets  # only creates need it; it costs a launch ~10 ms before the handshake

    return f"{role}-{secrets.token_hex(4)}"


def worker_task_name(index: int) -> str:
    return f"node-{index}"


def worker_task_index(name: str | None) -> int | None:
    match = re.fullmatch(r"node-(\d+)", name or "")
    return int(match.group(1)) if match else None


def internal_pool_name(cluster: str, yellowdog_name: str | None, task_group_name: str) -> str:
    """A worker pool's name in the cluster, recovered from the platform (for import).

    Pools this provider made are ``<cluster>-<name>``. Pools RayDog made are
    ``<cluster>-NN-wrkrs`` (not a valid name here: it starts with a digit); they import
    under their task group's name, ``worker-nodes-NN``, RayDog's own name for the pool.
    """
    prefix = f"{cluster}-"
    yellowdog_name = base_name(yellowdog_name) if yellowdog_name else yellowdog_name
    cluster = base_name(cluster)
    prefix = f"{cluster}-"
    if yellowdog_name and yellowdog_name.startswith(prefix):
        suffix = yellowdog_name[len(prefix):]
        if name_problem(suffix) is None and suffix not in RESERVED_POOL_NAMES:
            return suffix
    match = re.fullmatch(r"(.+)-[0-9a-f]{8}", task_group_name)
    return match.group(1) if match and not task_group_name.startswith("worker-nodes-") else task_group_name

