"""The attributes every node resource (head, observability, worker pool) declares."""

from __future__ import annotations

from raydog import names
from raydog.config import rules
from raydog.config.fields import BOOL, STRING, STRING_MAP, Field, Rule, SingleBlock

DEFAULT_TIMEOUTS = {"create": "20m", "update": "20m", "delete": "10m"}

TIMEOUTS = SingleBlock(
    "timeouts",
    'Operation timeouts, as durations such as "90s", "10m" or "2h".',
    tuple(Field(op, STRING, f'How long {op} may take (default "{default}").', optional=True, check=rules.duration)
          for op, default in DEFAULT_TIMEOUTS.items()),
)

# Checks across the attributes every node resource has.
NODE_RULES = (
    Rule(("environment", "secret_environment"), "secret_environment", rules.secret_names_disjoint),
)

NODE_FIELDS = (
    Field("id", STRING, "Worker pool id.", computed=True),
    Field("cluster_id", STRING, "Id of the cluster (`raydog_cluster.<name>.id`).", required=True, replace=True,
          check=rules.work_requirement_id),
    Field("cluster_name", STRING,
          "Name of the cluster (`raydog_cluster.<name>.name`); prefixes this pool's YellowDog names.",
          required=True, replace=True, check=rules.cluster_name),
    Field("compute_requirement_template_id", STRING,
          "Compute requirement template the pool's nodes are provisioned from (id or `namespace/name`).",
          required=True, replace=True, check=rules.not_blank),
    Field("images_id", STRING, "Image family, group or image id for the nodes.", optional=True, replace=True),
    Field("userdata", STRING, f"Userdata script run when a node boots (at most {rules.MAX_USERDATA_BYTES >> 10} KiB).",
          optional=True, sensitive=True, replace=True, check=rules.userdata),
    Field("instance_tags", STRING_MAP,
          f"Tags put on the pool's cloud instances: keys of at most {rules.MAX_TAG_KEY_LENGTH} characters without "
          f"`=` or reserved prefixes such as `aws:` or `yd:`, printable values of at most "
          f"{rules.MAX_TAG_VALUE_LENGTH}.", optional=True, replace=True, key_check=rules.tag_key, check=rules.tag_values),
    Field("metrics_enabled", BOOL, "Whether YellowDog collects node metrics.", optional=True, replace=True),
    Field("environment", STRING_MAP,
          "Extra environment variables for the node tasks; not `PATH`, `LD_*`, `BASH_ENV`, `ENV`, `IFS`, "
          f"`SHELLOPTS`, `PS4`, `YD_*` or the variables the provider sets, at most {rules.MAX_ENVIRONMENT_BYTES >> 10} "
          "KiB in all.", optional=True, replace=True, key_check=rules.environment_name, check=rules.environment),
    Field("secret_environment", STRING_MAP,
          "Environment variables for the node tasks whose values are secret (tokens, passwords): merged into the "
          "task environment, shown in plans as `(sensitive value)` and never logged.",
          optional=True, sensitive=True, replace=True, key_check=rules.environment_name, check=rules.environment),
    Field("lifetime", STRING, 'Task timeout of the node tasks, such as "2h"; when it passes the nodes\' tasks end.',
          optional=True, replace=True, check=rules.duration),
    Field("namespace", STRING,
          "YellowDog namespace of the cluster (`raydog_cluster.<name>.namespace`); read from the cluster when unset. "
          "Set it to have the plan show it (and the pool's names) before the cluster exists.",
          optional=True, computed=True, replace=True, check=rules.name("namespace")),
    Field("yellowdog_name", STRING, "Name of the worker pool and compute requirement on YellowDog. Known at plan.",
          computed=True),
    Field("script_sha256", STRING,
          "SHA-256 of the script the node task runs (the built-in default when no script is set); the same as "
          "`data.raydog_node_script.<name>.sha256` for that script. Known at plan.", computed=True),
    Field("compute_requirement_id", STRING, "Compute requirement id.", computed=True),
    Field("task_group_id", STRING, "Task group id in the cluster's work requirement.", computed=True),
)

# Outputs of a single-node resource (head, observability). task_id forces replacement
# although computed: read() clears it when the node's task ended outside Terraform, and
# plan() then plans a replacement (see lifecycle.single_node).
HOST_FIELDS = (
    Field("task_id", STRING, "Id of the node's task.", computed=True, replace=True),
    Field("node_id", STRING, "Id of the YellowDog node.", computed=True),
    Field("private_ip", STRING, "Private IP address of the node.", computed=True),
    Field("public_ip", STRING, "Public IP address of the node.", computed=True),
)


def name_suffix_field(role: str, suffix: str) -> Field:
    return Field(
        "name_suffix", STRING,
        f"Appended to the pool's YellowDog name (`<cluster_name>-{suffix}-<name_suffix>`), so a replacement "
        f"{role} can be created before the old one is destroyed (create_before_destroy).",
        optional=True, replace=True, check=rules.name_suffix,
    )


def single_node_rules(suffix: str, what: str) -> tuple[Rule, ...]:
    """The YellowDog name of a head or observability pool, with and without its name_suffix, must be valid."""
    return (
        *NODE_RULES,
        Rule(("cluster_name",), "cluster_name", rules.derived_name(suffix, what)),
        Rule(("cluster_name", "name_suffix"), "name_suffix",
             lambda cluster, name_suffix: rules.derived_name(names.suffixed(suffix, name_suffix), what,
                                                             "name_suffix")(cluster)),
    )


def observability_name_suffix_field(replace: bool) -> Field:
    """Where a node learns the observability node's address from the platform instead of from
    `observability_host`, so it need not wait for the observability node in Terraform's graph."""
    change = "Forces replacement." if replace else "A change re-tasks the nodes in place."
    return Field(
        "observability_name_suffix", STRING,
        "The `name_suffix` of the cluster's `raydog_observability` (\"\" when it has none): its private IP, "
        "read from the platform as soon as its node is up, sets `OBSERVABILITY_HOST`, so this node provisions "
        f"at the same time as the observability node. Exclusive with `observability_host`. {change}",
        optional=True, replace=replace, check=rules.peer_name_suffix,
    )


OBSERVABILITY_RULE = Rule(("observability_host", "observability_name_suffix"), "observability_name_suffix",
                          rules.exclusive("observability_host", "observability_name_suffix"))
