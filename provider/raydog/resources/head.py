"""raydog_head: the Ray head node — one worker pool, one task group, one task running `ray start --head`."""

from __future__ import annotations

from tf import types
from tf.schema import Schema

from raydog import names
from raydog.resources.common import (
    SingleNodeResource,
    attr,
    host_attributes,
    name_suffix_attribute,
    node_attributes,
    schema,
)


class HeadResource(SingleNodeResource):
    spec_name = "HeadSpec"
    script_attribute = "ray_start_script"
    script_role = "head"
    script_template = "head"
    suffix = names.HEAD_SUFFIX
    group_role = names.HEAD_GROUP_ROLE
    task_name = names.HEAD_TASK

    @classmethod
    def get_name(cls) -> str:
        return "head"

    @classmethod
    def get_schema(cls) -> Schema:
        return schema(
            [
                *node_attributes(),
                name_suffix_attribute("head", "head"),
                attr(
                    "ray_start_script",
                    types.String(),
                    "Bash script the head node runs (default: the built-in `head` template).",
                    optional=True,
                    computed=True,
                    requires_replace=True,
                ),
                attr(
                    "observability_host",
                    types.String(),
                    "Private IP of the observability node; sets `OBSERVABILITY_HOST` for the head.",
                    optional=True,
                    requires_replace=True,
                ),
                *host_attributes(),
                attr("ray_address", types.String(), "Ray GCS address, `IP:6379`.", computed=True),
                attr("client_address", types.String(), "Ray client address, `ray://IP:10001`.", computed=True),
                attr("dashboard_url", types.String(), "Ray dashboard, `http://IP:8265`.", computed=True),
            ],
            "The Ray head node of a cluster. Create blocks until the head's task is executing.",
        )

    def environment(self, planned: dict) -> dict[str, str]:
        environment = super().environment(planned)
        if planned.get("observability_host"):
            environment["OBSERVABILITY_HOST"] = planned["observability_host"]
        return environment

    def outputs(self, private_ip: str) -> dict[str, str]:
        from raydog import specs

        return {
            "ray_address": f"{private_ip}:{specs.RAY_GCS_PORT}",
            "client_address": f"ray://{private_ip}:{specs.RAY_CLIENT_PORT}",
            "dashboard_url": f"http://{private_ip}:{specs.RAY_DASHBOARD_PORT}",
        }
