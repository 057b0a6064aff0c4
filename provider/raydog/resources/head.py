"""raydog_head: the Ray head node — one worker pool, one task group, one task running `ray start --head`."""

from __future__ import annotations

import time

from tf.utils import Diagnostics

from raydog import names, redaction, settings
from raydog.autoscaler.shipping import API_URL_VARIABLE, KEY_ID_VARIABLE, KEY_SECRET_VARIABLE, head_environment
from raydog.config import autoscaling, rules
from raydog.config.fields import STRING, Field, Table
from raydog.config.models import AutoscalerKey, SingleNodeConfig, Timeouts
from raydog.config.node_fields import (
    HOST_FIELDS,
    NODE_FIELDS,
    OBSERVABILITY_RULE,
    TIMEOUTS,
    name_suffix_field,
    observability_name_suffix_field,
    single_node_rules,
)
from raydog.lifecycle.ray_nodes import head_ray_ready
from raydog.lifecycle.single_node import SingleNodeResource
from raydog.yellowdog import PlatformError

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
        Field("readiness", STRING,
              'What create waits for: "executing" (the head\'s task is executing; the default) or "ray" (also its '
              f"Ray GCS answers at `private_ip:{settings.RAY_GCS_PORT}`, or at `public_ip` when the provider cannot "
              "reach the private one). Updated in place.", optional=True, check=rules.readiness),
        *autoscaling.HEAD_FIELDS,
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

    def create(self, ctx, planned: dict):
        started = time.monotonic()
        state = super().create(ctx, planned)
        if state and state.get("private_ip") and planned.get("readiness") == settings.READINESS_RAY \
                and not ctx.diagnostics.has_errors():
            timeout = Timeouts.parse(planned.get("timeouts")).create.total_seconds()
            head_ray_ready(ctx.diagnostics, state, started + timeout, self.provider.stopping)
        return state

    def validate(self, diags: Diagnostics, type_name: str, config: dict) -> None:
        super().validate(diags, type_name, config)
        secret = config.get("autoscaler_application_key_secret")
        redaction.remember_secret(secret if isinstance(secret, str) else None)
        for given, missing in (("id", "secret"), ("secret", "id")):
            if config.get(f"autoscaler_application_key_{given}") is not None \
                    and config.get(f"autoscaler_application_key_{missing}") is None:
                diags.add_error(f"Missing autoscaler_application_key_{missing}",
                                f"The autoscaler's application key needs both its id and its secret: set "
                                f"autoscaler_application_key_{missing} too, or neither.",
                                path=[f"autoscaler_application_key_{given}"])

    def environment(self, config: SingleNodeConfig, planned: dict) -> dict[str, str]:
        """With an autoscaler key, the head also gets what starts Ray's autoscaler (see autoscaler.shipping)."""
        environment = super().environment(config, planned)
        key = AutoscalerKey.parse(planned)
        if key is not None:
            redaction.remember_secret(key.key_secret)
            environment.update(head_environment(key.api_url or self.provider.api_url, key.key_id, key.key_secret,
                                                config.cluster_id, config.cluster_name))
        return environment

    def import_(self, ctx, id: str):
        """Also the autoscaler's key and URL, from the head task's environment (the URL only when it is
        not the provider's own, which an unset autoscaler_api_url stands for)."""
        state = super().import_(ctx, id)
        if not state or not state.get("task_id"):
            return state
        try:
            task = self.client.get_task(state["task_id"])
        except PlatformError as exc:
            ctx.diagnostics.add_warning("Cannot read the head's autoscaler key", str(exc))
            return state
        environment = task.environment if task is not None else {}
        if environment.get(KEY_ID_VARIABLE) and environment.get(KEY_SECRET_VARIABLE):
            redaction.remember_secret(environment[KEY_SECRET_VARIABLE])
            url = environment.get(API_URL_VARIABLE)
            state.update(autoscaler_application_key_id=environment[KEY_ID_VARIABLE],
                         autoscaler_application_key_secret=environment[KEY_SECRET_VARIABLE],
                         autoscaler_api_url=None if url == self.provider.api_url else url)
        return state

    def outputs(self, private_ip: str) -> dict[str, str]:
        return {
            "ray_address": f"{private_ip}:{settings.RAY_GCS_PORT}",
            "client_address": f"ray://{private_ip}:{settings.RAY_CLIENT_PORT}",
            "dashboard_url": f"http://{private_ip}:{settings.RAY_DASHBOARD_PORT}",
        }
