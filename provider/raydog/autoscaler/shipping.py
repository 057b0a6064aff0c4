"""What the provider sends to a head that runs Ray's autoscaler, and the bounds it writes on pools.

The node provider (``raydog_node_provider.py`` beside this file) reaches the head as the text of
an environment variable of the head task, with the API URL the nodes can reach, the cluster's
work requirement and the autoscaler's own application key; the head script writes the module
and the key (mode 0600) to disk, drops the key from its environment and starts Ray with
``--autoscaling-config``. The provider never imports the node provider (it needs Ray).

A pool's bounds travel in its compute requirement's tag, which the provider can change in
place, so new bounds reach the running autoscaler without replacing the head.
"""

from __future__ import annotations

import functools
from datetime import timedelta
from pathlib import Path

# The tag's shape; raydog_node_provider.parse_bounds reads it back (a test checks both agree).
TAG_PREFIX = "raydog-autoscaling"
# A pool an update is sizing: out of the autoscaler's hands until the new bounds are written.
HELD_TAG = f"{TAG_PREFIX}-held"
MODULE_FILE = "raydog_node_provider.py"
MODULE_VARIABLE = "RAYDOG_AUTOSCALER_MODULE"
API_URL_VARIABLE = "RAYDOG_AUTOSCALER_API_URL"
KEY_ID_VARIABLE = "RAYDOG_AUTOSCALER_KEY_ID"
KEY_SECRET_VARIABLE = "RAYDOG_AUTOSCALER_KEY_SECRET"
CLUSTER_ID_VARIABLE = "RAYDOG_CLUSTER_ID"
CLUSTER_NAME_VARIABLE = "RAYDOG_CLUSTER_NAME"
HEAD_VARIABLES = frozenset({MODULE_VARIABLE, API_URL_VARIABLE, KEY_ID_VARIABLE, KEY_SECRET_VARIABLE,
                            CLUSTER_ID_VARIABLE, CLUSTER_NAME_VARIABLE})


def bounds_tag(min_nodes: int, max_nodes: int, idle_timeout: timedelta) -> str:
    """The compute requirement tag of an autoscaled pool (a YellowDog name: at most 60 characters)."""
    return f"{TAG_PREFIX}-{min_nodes}-{max_nodes}-{int(idle_timeout.total_seconds())}"


def bounds_block(tag: str | None) -> dict | None:
    """The autoscaling block a compute requirement's tag stands for (an import reads it back), or None."""
    prefix, _, rest = (tag or "").rpartition(f"{TAG_PREFIX}-")
    numbers = rest.split("-")
    if prefix or len(numbers) != 3 or not all(n.isdigit() for n in numbers):
        return None
    min_nodes, max_nodes, idle_seconds = map(int, numbers)
    return {"min_nodes": min_nodes, "max_nodes": max_nodes, "idle_timeout": f"{idle_seconds}s"}


@functools.lru_cache(maxsize=1)
def node_provider_source() -> str:
    return (Path(__file__).resolve().parent / MODULE_FILE).read_text()


def head_environment(api_url: str, key_id: str, key_secret: str, cluster_id: str,
                     cluster_name: str) -> dict[str, str]:
    """The head task's variables that start the autoscaler (see scripts/head.sh.j2)."""
    return {
        MODULE_VARIABLE: node_provider_source(),
        API_URL_VARIABLE: api_url,
        KEY_ID_VARIABLE: key_id,
        KEY_SECRET_VARIABLE: key_secret,
        CLUSTER_ID_VARIABLE: cluster_id,
        CLUSTER_NAME_VARIABLE: cluster_name,
    }
