"""raydog_observability: the node that runs Prometheus and Grafana for a Ray cluster."""

from __future__ import annotations

from raydog import names, settings
from raydog.config import rules
from raydog.config.fields import STRING, Field, Table
from raydog.config.node_fields import HOST_FIELDS, NODE_FIELDS, TIMEOUTS, name_suffix_field, single_node_rules
from raydog.lifecycle.single_node import SingleNodeResource

TABLE = Table(
    fields=(
        *NODE_FIELDS,
        name_suffix_field("observability node", "obs"),
        Field("start_script", STRING,
              "Bash script the observability node runs; unset means the built-in `observability` template "
              "(the plan shows its `script_sha256`).",
              optional=True, replace=True, check=rules.script_size),
        *HOST_FIELDS,
        Field("prometheus_url", STRING, f"Prometheus, `http://IP:{settings.PROMETHEUS_PORT}`.", computed=True),
        Field("grafana_url", STRING, f"Grafana, `http://IP:{settings.GRAFANA_PORT}`.", computed=True),
    ),
    rules=single_node_rules(names.OBSERVABILITY_SUFFIX, "observability pool"),
    blocks=(TIMEOUTS,),
)


class ObservabilityResource(SingleNodeResource):
    table = TABLE
    description = ("The observability node (Prometheus + Grafana) of a cluster. "
                   "Create waits until its task is executing.")
    script_attribute = "start_script"
    script_template = "observability"
    suffix = names.OBSERVABILITY_SUFFIX
    group_role = names.OBSERVABILITY_GROUP_ROLE
    task_name = names.OBSERVABILITY_TASK

    @classmethod
    def get_name(cls) -> str:
        return "observability"

    def outputs(self, private_ip: str) -> dict[str, str]:
        return {
            "prometheus_url": f"http://{private_ip}:{settings.PROMETHEUS_PORT}",
            "grafana_url": f"http://{private_ip}:{settings.GRAFANA_PORT}",
        }
