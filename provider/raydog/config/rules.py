"""What a valid value is, for the attributes of more than one resource.

Each check raises ValueError with a message that says what is wrong and how to fix it;
``fields.Field`` attaches the attribute path.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re

from raydog import names, settings
from raydog.autoscaler.shipping import HEAD_VARIABLES
from raydog.config.durations import parse_duration, parse_duration_or_zero

# Task environment variables the provider sets itself from resource attributes (and the head's
# autoscaler variables). RAYDOG_SECRET_NAMES lists the names (never the values) of the
# secret_environment entries, so an import can tell them from the plain environment.

SECRET_NAMES_VARIABLE = "RAYDOG_SECRET_NAMES"
PROVIDER_SET_VARIABLES = frozenset({"RAY_HEAD_IP", "RAY_HEAD_NODE_PRIVATE_IP", "OBSERVABILITY_HOST",
                                    SECRET_NAMES_VARIABLE, *HEAD_VARIABLES})
MAX_NODES_PER_POOL = 10000


def name(what: str, generations: bool = False):
    """A check of YellowDog's naming rule for a ``what`` (\"cluster name\", \"namespace\").

    ``generations``: the name is one the provider makes generations of (``<name>--2``), so
    it must not contain the generation separator itself."""
    def check(value: str) -> None:
        problem = names.name_problem(value)
        if problem:
            raise ValueError(f"{what} {quoted(value)} {problem}")
        if generations:
            no_generation_separator(what, value)
    return check


def cluster_name(value: str) -> None:
    """A cluster name leaves room for its head pool's YellowDog name, ``<cluster_name>-head``."""
    problem = names.name_problem(value, names.MAX_CLUSTER_NAME_LENGTH,
                                 f"the head pool's YellowDog name <cluster_name>-{names.HEAD_SUFFIX} "
                                 f"must fit YellowDog's {names.MAX_NAME_LENGTH}")
    if problem:
        raise ValueError(f"cluster name {quoted(value)} {problem}")
    no_generation_separator("cluster name", value)


def no_generation_separator(what: str, value: str) -> None:
    """Names the provider makes generations of (``<name>--2``) must not hold the separator."""
    if names.GENERATION_SEPARATOR in value:
        raise ValueError(f'{what} {quoted(value)} must not contain "{names.GENERATION_SEPARATOR}": the provider '
                         "marks the later generations of a name with it (<name>--2)")


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
        message = f"the YellowDog name of this {what}, {quoted(derived)} (<cluster_name>-{suffix}), {problem}"
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


def quoted(value: str) -> str:
    """A value as a message quotes it: in double quotes, newlines and control characters escaped."""
    return json.dumps(value, ensure_ascii=False)


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


def application_key_id(value: str) -> None:
    problem = settings.key_id_problem(value)
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


# Instance tags: the limits the clouds YellowDog provisions on share (AWS: key 128, value
# 256 characters; GCP labels and Azure tags are stricter still in places), and the prefixes
# clouds and YellowDog keep for themselves.
MAX_TAG_KEY_LENGTH = 128
MAX_TAG_VALUE_LENGTH = 256
RESERVED_TAG_PREFIXES = ("aws:", "azure:", "microsoft:", "windows:", "gcp:", "google:", "goog", "yd:",
                         "yellowdog:", "oci:", "oracle:")


def tag_key(key: str) -> None:
    if not key:
        raise ValueError("instance tag keys must not be empty")
    if len(key) > MAX_TAG_KEY_LENGTH:
        raise ValueError(f"instance tag key is {len(key)} characters long; at most {MAX_TAG_KEY_LENGTH} are allowed")
    if not key.isprintable() or any(c.isspace() and c != " " for c in key) or "=" in key:
        raise ValueError(f'instance tag key {quoted(key)} may not contain "=", newlines, tabs or control characters')
    if key != key.strip():
        raise ValueError(f"instance tag key {quoted(key)} starts or ends with a space; remove it")
    reserved = next((p for p in RESERVED_TAG_PREFIXES if key.lower().startswith(p)), None)
    if reserved:
        raise ValueError(f'instance tag key {quoted(key)} starts with "{reserved}", a prefix the cloud or YellowDog '
                         "reserves; choose another key")


def tag_values(tags: dict) -> None:
    for key, value in tags.items():
        if len(value) > MAX_TAG_VALUE_LENGTH:
            raise ValueError(f"the value of instance tag {quoted(key)} is {len(value)} characters long; at most "
                             f"{MAX_TAG_VALUE_LENGTH} are allowed")
        if not value.isprintable():
            raise ValueError(f"the value of instance tag {quoted(key)} contains newlines or control characters")


# Environment variables a task must not set: they change how bash, the dynamic loader or
# the YellowDog agent behave (YD_* is the agent's own namespace), so a value there breaks
# the node, or runs code the script never shows.
RESERVED_ENVIRONMENT = frozenset({"PATH", "LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "BASH_ENV", "ENV", "IFS",
                                  "SHELLOPTS", "BASHOPTS", "PS4", "PROMPT_COMMAND"})
RESERVED_ENVIRONMENT_PREFIXES = ("YD_", "LD_", "BASH_FUNC_")


def environment_name(key: str) -> None:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
        raise ValueError(
            f"environment variable name {quoted(key)} is not valid in bash; use letters, digits and \"_\", "
            "not starting with a digit"
        )
    if key in PROVIDER_SET_VARIABLES:
        raise ValueError(f'environment variable "{key}" is set by the provider; use the matching attribute instead')
    reserved = key in RESERVED_ENVIRONMENT or key.startswith(RESERVED_ENVIRONMENT_PREFIXES)
    if reserved:
        raise ValueError(f'environment variable "{key}" would change how the node\'s shell, loader or YellowDog '
                         "agent behave; set it inside the script instead, or choose another name")


# The size of what a task carries. YellowDog documents no limit on task data; these are
# ours, chosen to stay well inside what a node can take: a task script of 1 MiB (Terraform
# keeps it in state and in every plan), userdata of 16 KiB (AWS EC2's limit, the strictest
# of the clouds YellowDog provisions on), and a task environment of 128 KiB (Linux's limit
# on one environment string is 128 KiB).
MAX_SCRIPT_BYTES = 1 << 20
MAX_USERDATA_BYTES = 16 << 10
MAX_ENVIRONMENT_BYTES = 128 << 10


def _utf8_size(value: str) -> int:
    return len(value.encode("utf-8", "surrogatepass"))


def script_size(value: str) -> None:
    size = _utf8_size(value)
    if size > MAX_SCRIPT_BYTES:
        raise ValueError(f"the script is {size} bytes; at most {MAX_SCRIPT_BYTES} ({MAX_SCRIPT_BYTES >> 20} MiB) "
                         "are allowed: download large files from the script instead of inlining them")


def userdata(value: str) -> None:
    size = _utf8_size(value)
    if size > MAX_USERDATA_BYTES:
        raise ValueError(f"userdata is {size} bytes; at most {MAX_USERDATA_BYTES} ({MAX_USERDATA_BYTES >> 10} KiB, "
                         "the cloud's limit) are allowed: move the work into the node's task script")


def environment(values: dict) -> None:
    size = sum(_utf8_size(k) + _utf8_size(v) + 2 for k, v in values.items())
    if size > MAX_ENVIRONMENT_BYTES:
        raise ValueError(f"the environment is {size} bytes; at most {MAX_ENVIRONMENT_BYTES} "
                         f"({MAX_ENVIRONMENT_BYTES >> 10} KiB) are allowed: pass large data in a file")
    for key, value in values.items():
        if "\x00" in value:
            raise ValueError(f"environment variable {quoted(key)} contains a NUL character, which no process can receive")


def name_suffix(value: str) -> None:
    if not re.fullmatch(r"[a-z0-9_-]*[a-z0-9]", value):
        raise ValueError(f'name suffix "{value}" may contain only lowercase letters, digits, "-" and "_", '
                         "and must end with a letter or digit")


def peer_name_suffix(value: str) -> None:
    """The name_suffix of the node (head, observability) another node learns its address from; "" for none."""
    if value:
        name_suffix(value)


def exclusive(first: str, second: str):
    def check(_a, _b) -> None:
        raise ValueError(f"set {first} or {second}, not both")
    return check


def _number(value) -> float:
    """A number as Terraform sent it: beyond a float64 (1e400) it arrives as decimal text."""
    if isinstance(value, str):
        from decimal import Decimal, InvalidOperation  # here: rare, and ~2 ms of every launch at the top

        try:
            exact = Decimal(value)
        except InvalidOperation:
            raise ValueError(f'"{value}" is not a number') from None
        return int(exact) if exact.is_finite() and exact == exact.to_integral_value() and abs(exact) < 2 ** 63 \
            else float(exact)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    raise ValueError(f"must be a number, not {value!r}")


def _show(value: float) -> str:
    return f"{value:.6g}" if not isinstance(value, int) or abs(value) >= 10 ** 9 else str(value)


def node_count(given) -> None:
    whole_nodes(given, 1, "; remove the pool to have no nodes")


def whole_nodes(given, least: int, hint: str = "") -> None:
    """A whole number of nodes from ``least`` to YellowDog's per-pool limit."""
    value = _number(given)
    shown = given if isinstance(given, str) else _show(value)
    if isinstance(value, float) and math.isnan(value):
        raise ValueError("must be a whole number of nodes, not NaN")
    if value > MAX_NODES_PER_POOL:
        raise ValueError(f"must be at most {MAX_NODES_PER_POOL}, YellowDog's limit of nodes per worker pool "
                         f"(got {shown})")
    if value < least:
        raise ValueError(f"must be at least {least} (got {shown}){hint}")
    if value != int(value):
        raise ValueError(f"must be a whole number of nodes, not {value}")


def ip_address(value: str) -> None:
    """An IPv4 or IPv6 address (no host name, port or CIDR suffix)."""
    if not value.strip():
        raise ValueError("must not be empty; use the private_ip attribute of the node")
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"{quoted(value)} is not an IP address; use the private_ip attribute of the node, "
                         'such as "10.0.0.12"') from None


def head_private_ip(value: str) -> None:
    if not value.strip():
        raise ValueError("must not be empty; use raydog_head.<name>.private_ip")
    ip_address(value)


def worker_pool_name(value: str) -> None:
    name("worker pool name", generations=True)(value)
    if value in names.RESERVED_POOL_NAMES:
        raise ValueError(f'"{value}" is reserved for the cluster\'s own {value} pool; choose another name')
    longest = names.MAX_POOL_NAME_LENGTH
    if len(value) > longest:
        raise ValueError(
            f'worker pool name "{value}" is {len(value)} characters long; at most {longest} '
            f"are allowed so that its task group name (<name>-<8 hex>) fits YellowDog's {names.MAX_NAME_LENGTH}"
        )


def readiness(value: str) -> None:
    if value not in settings.READINESS_VALUES:
        choices = " or ".join(f'"{v}"' for v in settings.READINESS_VALUES)
        raise ValueError(f"{quoted(value)} is not a readiness; use {choices}")


def readiness_needs_wait(wait_for_nodes, value) -> None:
    if value == settings.READINESS_RAY and wait_for_nodes is False:
        raise ValueError('"ray" waits for the nodes to join Ray, but wait_for_nodes = false says not to wait; '
                         "remove wait_for_nodes (or set it to true), or remove readiness")


def drain_timeout(value: str) -> None:
    """A duration, or zero ("0s") for no drain."""
    parse_duration_or_zero(value)


def gcs_address(value: str) -> None:
    """``host:port`` of the head's Ray GCS: a host name or IP (IPv6 in brackets) and a port."""
    example = f'such as "203.0.113.7:{settings.RAY_GCS_PORT}" or "localhost:16379" (an SSH tunnel)'
    if not value.strip() or any(c.isspace() or not c.isprintable() for c in value):
        raise ValueError(f"{quoted(value)} must be host:port without spaces or control characters, {example}")
    if "/" in value or "@" in value:
        raise ValueError(f"{quoted(value)} must be host:port, not a URL, {example}")
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{quoted(value)} needs a host and a port from 1 to 65535, {example}")
    if host.startswith("[") != host.endswith("]") or (":" in host and not host.startswith("[")):
        raise ValueError(f"{quoted(value)}: write an IPv6 address in brackets, such as \"[2001:db8::7]:6379\"")
