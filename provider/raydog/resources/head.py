"""raydog_head: the Ray head node — one worker pool, one task group, one task running `ray start --head`."""

from __future__ import annotations

from raydog import names, settings
from raydog.config import rules
from raydog.config.fields import STRING, Field, Table
from raydog.config.node_fields import (
    HOST_FIELDS,
    NODE_FIELDS,
    OBSERVABILITY_RULE,
    TIMEOUTS,
    name_suffix_field,
    observability_name_suffix_field,
    single_node_rules,
)
from raydog.lifecycle.single_node import SingleNodeResource

TABLE = Table(
    fields=(
        *NODE_FIELDS,
        name_suffix_field("head", "head"),
        Field("ray_start_script", STRING, "Bash script the head node runs; unset means the built-in `head` template "
              "(the plan shows its `script_sha256`).",
              optional=True, replace=True, check=rules.script_size),
        Field("observability_host", STRING,
              "Private IP of the observability node; sets `OBSERVABILITY_HOST` for the head.",
              optional=True, replace=True, check=rules.ip_address),
        observability_name_suffix_field(replace=True),
        *HOST_FIELDS,
        Field("ray_address", STRING, f"Ray GCS address, `IP:{settings.RAY_GCS_PORT}`.", computed=True),
        Field("client_address", STRING, f"Ray client address, `ray://IP:{settings.RAY_CLIENT_PORT}`.", computed=True),
        Field("dashboard_url", STRING, f"Ray dashboard, `http://IP:{settings.RAY_DASHBOARD_PORT}`.", computed=True),
    ),
    rules=(*single_node_rules(names.HEAD_SUFFIX, "head pool"), OBSERVABILITY_RULE),
    blocks=(TIMEOUTS,),
)


class HeadResource(SingleNodeResource):
    table = TABLE
    description = "The Ray head node of a cluster. Create blocks until the head's task is executing."
    script_attribute = "ray_start_script"
    script_role = "head"
    script_template = "head"
    suffix = names.HEAD_SUFFIX
    group_role = names.HEAD_GROUP_ROLE
    task_name = names.HEAD_TASK

    @classmethod
    def get_name(cls) -> str:
        return "head"

    def outputs(self, private_ip: str) -> dict[str, str]:
        return {
            "ray_address": f"{private_ip}:{settings.RAY_GCS_PORT}",
            "client_address": f"ray://{private_ip}:{settings.RAY_CLIENT_PORT}",
            "dashboard_url": f"http://{private_ip}:{settings.RAY_DASHBOARD_PORT}",
        }
