"""raydog_observability: the node that runs Prometheus and Grafana for a Ray cluster."""

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

PROMETHEUS_PORT = 9090
GRAFANA_PORT = 3000


class ObservabilityResource(SingleNodeResource):
    spec_name = "ObservabilitySpec"
    script_attribute = "start_script"
    script_template = "observability"
    suffix = names.OBSERVABILITY_SUFFIX
    group_role = names.OBSERVABILITY_GROUP_ROLE
    task_name = names.OBSERVABILITY_TASK

    @classmethod
    def get_name(cls) -> str:
        return "observability"

    @classmethod
    def get_schema(cls) -> Schema:
        return schema(
            [
                *node_attributes(),
                name_suffix_attribute("observability node", "obs"),
                attr(
                    "start_script",
                    types.String(),
                    "Bash script the observability node runs (default: the built-in `observability` template).",
                    optional=True,
                    computed=True,
                    requires_replace=True,
                ),
                *host_attributes(),
                attr("prometheus_url", types.String(), "Prometheus, `http://IP:9090`.", computed=True),
                attr("grafana_url", types.String(), "Grafana, `http://IP:3000`.", computed=True),
            ],
            "The observability node (Prometheus + Grafana) of a cluster. Create waits until its task is executing.",
        )

    def outputs(self, private_ip: str) -> dict[str, str]:
        return {
            "prometheus_url": f"http://{private_ip}:{PROMETHEUS_PORT}",
            "grafana_url": f"http://{private_ip}:{GRAFANA_PORT}",
        }
