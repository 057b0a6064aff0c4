"""The attributes of autoscaling: a worker pool's ``autoscaling`` block and the head's autoscaler key.

Ray's autoscaler on the head moves an autoscaled pool between ``min_nodes`` and ``max_nodes``
and removes nodes idle for ``idle_timeout``; see docs/guides/autoscaling.md.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Mapping

from raydog.config import rules
from raydog.config.durations import parse_duration
from raydog.config.fields import NUMBER, STRING, Field, Rule, SingleBlock

DEFAULT_IDLE_TIMEOUT = "5m"
MIN_IDLE_TIMEOUT = timedelta(seconds=5)
MAX_IDLE_TIMEOUT = timedelta(days=7)


def node_bound(least: int):
    return lambda given: rules.whole_nodes(given, least)


def node_count_or_zero(given) -> None:
    """node_count: 0 only with an autoscaling block (the pool's validate says so when there is none)."""
    if given == 0 or given == "0":
        return
    rules.node_count(given)


def idle_timeout(value: str) -> None:
    parsed = parse_duration(value)
    if not MIN_IDLE_TIMEOUT <= parsed <= MAX_IDLE_TIMEOUT:
        raise ValueError(f'must be between "5s" and "168h" (got "{value}"): Ray\'s autoscaler checks every few '
                         "seconds")


AUTOSCALING = SingleBlock(
    "autoscaling",
    "Let Ray's autoscaler on the head size this pool by demand, between `min_nodes` and `max_nodes`. "
    "Needs the head's `autoscaler_application_key_id`/`_secret`. Changing the bounds is an in-place update.",
    (
        Field("min_nodes", NUMBER, "Fewest nodes the autoscaler keeps (0 or more).", required=True,
              check=node_bound(0)),
        Field("max_nodes", NUMBER, "Most nodes the autoscaler launches (at least 1 and at least `min_nodes`).",
              required=True, check=node_bound(1)),
        Field("idle_timeout", STRING,
              f'How long a node stays idle before the autoscaler removes it (default "{DEFAULT_IDLE_TIMEOUT}"). '
              "The head runs one autoscaler: it uses the shortest idle_timeout of the cluster's pools.",
              optional=True, check=idle_timeout),
    ),
)


def bounds_in_order(block: Mapping[str, Any]) -> None:
    if block.get("min_nodes") is not None and block.get("max_nodes") is not None \
            and block["max_nodes"] < block["min_nodes"]:
        raise ValueError(f"must be at least autoscaling.min_nodes ({int(block['min_nodes'])}); got "
                         f"{int(block['max_nodes'])}")


def initial_size_in_bounds(node_count, block: Mapping[str, Any]) -> None:
    low, high = block.get("min_nodes"), block.get("max_nodes")
    if low is not None and high is not None and not low <= node_count <= high:
        raise ValueError(f"with autoscaling, node_count is the initial size and must lie between "
                         f"autoscaling.min_nodes ({int(low)}) and autoscaling.max_nodes ({int(high)}); got "
                         f"{int(node_count)}. Leave it unset to start at min_nodes.")


# initial_size_in_bounds is checked by the pool's create plan: Terraform also validates planned
# states, where node_count may be the recorded size that new bounds move.
POOL_RULES = (Rule(("autoscaling",), "autoscaling.max_nodes", bounds_in_order),)

HEAD_FIELDS = (
    Field("autoscaler_application_key_id", STRING,
          "Id of the application key Ray's autoscaler on the head uses to resize the cluster's autoscaled pools "
          "(see the autoscaling guide for the least privileges it needs). Unset: no autoscaler.",
          optional=True, replace=True, check=rules.application_key_id),
    Field("autoscaler_application_key_secret", STRING,
          "Secret of that application key; reaches the head in its task's environment, never in plans or logs.",
          optional=True, sensitive=True, replace=True, check=rules.application_key),
    Field("autoscaler_api_url", STRING,
          "YellowDog API URL as the head node reaches it (default: the provider's `api_url`).",
          optional=True, replace=True, check=rules.api_url),
)
