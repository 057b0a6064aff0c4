"""The provider block: where the API is, which key to use, and the client built from them."""

from __future__ import annotations

import os
import threading
from typing import Optional

from tf import types
from tf.iface import Config, Provider
from tf.schema import Attribute, Schema
from tf.utils import Diagnostics

DEFAULT_API_URL = "https://api.yellowdog.ai"
PROVIDER_ADDRESS = "registry.terraform.io/yellowdog/raydog"

# attribute -> environment variable it falls back to
ENV_FALLBACKS = {
    "api_url": "YD_API_URL",
    "application_key_id": "YD_API_KEY_ID",
    "application_key_secret": "YD_API_KEY_SECRET",
}


class RaydogProvider(Provider):
    """Ray clusters on YellowDog. One instance serves every resource of a Terraform run."""

    def __init__(self) -> None:
        self._settings: dict | None = None
        self._platform = None
        self._lock = threading.Lock()

    def get_model_prefix(self) -> str:
        return "raydog_"

    def full_name(self) -> str:
        return PROVIDER_ADDRESS

    def get_provider_schema(self, diags: Diagnostics) -> Schema:
        return Schema(
            version=0,
            attributes=[
                Attribute(
                    "api_url",
                    types.String(),
                    description=f"YellowDog API URL. Env `YD_API_URL`; default `{DEFAULT_API_URL}`.",
                    optional=True,
                ),
                Attribute(
                    "application_key_id",
                    types.String(),
                    description="YellowDog application key id. Env `YD_API_KEY_ID`.",
                    optional=True,
                ),
                Attribute(
                    "application_key_secret",
                    types.String(),
                    description="YellowDog application key secret. Env `YD_API_KEY_SECRET`.",
                    optional=True,
                    sensitive=True,
                ),
            ],
        )

    def validate_config(self, diags: Diagnostics, config: Config) -> None:
        from raydog import specs  # pydantic: not needed by a launch that only reads schemas

        for path, message in specs.problems(specs.ProviderSpec, config):
            diags.add_error(f"Invalid provider {path[0]}", message, path=path)

    def configure_provider(self, diags: Diagnostics, config: Config) -> None:
        from raydog import specs
        from raydog.yellowdog import NotAuthorisedError, PlatformError, check_credentials

        settings = resolve_settings(config, os.environ)
        missing = [a for a in ("application_key_id", "application_key_secret") if not settings[a]]
        if missing:
            # One error for the key, however much of it is missing: it is one thing to fix.
            attributes = " and ".join(missing)
            variables = " and ".join(ENV_FALLBACKS[a] for a in missing)
            diags.add_error(
                "Missing YellowDog application key",
                f"Set {attributes} in the provider block, or the {variables} environment "
                f"variable{'s' if len(missing) > 1 else ''}.",
                path=[missing[0]],
            )
        for path, message in specs.problems(specs.ProviderSpec, settings):
            diags.add_error(f"Invalid {path[0]}", f"{message} (from the provider block or {ENV_FALLBACKS[path[0]]})", path=path)
        if diags.has_errors():
            return
        try:
            check_credentials(settings["api_url"], settings["application_key_id"], settings["application_key_secret"])
        except NotAuthorisedError as exc:
            diags.add_error(
                "YellowDog refused the application key",
                f"{exc}. Check application_key_id / application_key_secret "
                "(or YD_API_KEY_ID / YD_API_KEY_SECRET).",
                path=["application_key_id"],
            )
            return
        except PlatformError as exc:
            diags.add_error(
                f"Cannot reach the YellowDog API at {settings['api_url']}",
                f"{exc}. Check api_url (or YD_API_URL).",
                path=["api_url"],
            )
            return
        with self._lock:
            self._settings = settings
            self._platform = None

    @property
    def platform(self):
        """The platform client, built on first use: a launch that makes no platform call
        (most of them: schemas, validation, a plan of new resources) never imports the SDK.
        Resources only run after configure succeeded."""
        with self._lock:
            if self._platform is None:
                if self._settings is None:
                    raise RuntimeError("the raydog provider was used before it was configured")
                from raydog.yellowdog import YellowDogClient

                settings = self._settings
                self._platform = YellowDogClient.connect(
                    settings["api_url"], settings["application_key_id"], settings["application_key_secret"]
                )
            return self._platform

    def get_resources(self):
        from raydog.resources.cluster import ClusterResource
        from raydog.resources.head import HeadResource
        from raydog.resources.observability import ObservabilityResource
        from raydog.resources.worker_pool import WorkerPoolResource

        return [ClusterResource, ObservabilityResource, HeadResource, WorkerPoolResource]

    def get_data_sources(self):
        from raydog.data_sources.node_script import NodeScriptDataSource

        return [NodeScriptDataSource]


def resolve_settings(config: Config, environ) -> dict[str, Optional[str]]:
    """Provider settings: the configuration's value, else the environment variable, else the default."""
    settings = {}
    for attribute, env in ENV_FALLBACKS.items():
        value = config.get(attribute)
        settings[attribute] = value if value else (environ.get(env) or None)
    settings["api_url"] = (settings["api_url"] or DEFAULT_API_URL).rstrip("/")
    return settings
