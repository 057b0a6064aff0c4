"""The provider block: where the API is, which key to use, and the client built from them."""

from __future__ import annotations

import gc
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Optional

from tf.iface import Config, Provider
from tf.schema import Schema
from tf.types import Unknown
from tf.utils import Diagnostics

from raydog import command_state, redaction
from raydog import settings as settings_module
from raydog.config import rules
from raydog.config.fields import STRING, Field, Table
from raydog.settings import DEFAULT_API_URL, ENV_FALLBACKS, PROVIDER_ADDRESS, Settings

if TYPE_CHECKING:
    from raydog.lifecycle.node_pool import PoolClaims
    from raydog.lifecycle.ownership import OwnershipJournal
    from raydog.lifecycle.peers import PeerAddresses
    from raydog.lifecycle.planning import PlanLookups
    from raydog.yellowdog import YellowDogClient
    from raydog.yellowdog.rest import RestReader

TABLE = Table(fields=(
    Field("api_url", STRING, f"YellowDog API URL. Env `YD_API_URL`; default `{DEFAULT_API_URL}`.", optional=True,
          check=rules.api_url),
    Field("application_key_id", STRING, "YellowDog application key id. Env `YD_API_KEY_ID`.", optional=True,
          check=rules.application_key_id),
    Field("application_key_secret", STRING, "YellowDog application key secret. Env `YD_API_KEY_SECRET`.",
          optional=True, sensitive=True, check=rules.application_key),
))


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off for a block that imports the SDK: its import (~0.3 s,
    hundreds of model classes) allocates no garbage worth collecting, and the collector would
    run ~50 times during it."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


class RaydogProvider(Provider):
    """Ray clusters on YellowDog. One instance serves every resource of a Terraform run."""

    def __init__(self) -> None:
        self._settings: Optional[Settings] = None
        self._client: Optional["YellowDogClient"] = None
        self._reader: Optional["RestReader"] = None
        self._lock = threading.Lock()
        # Set when Terraform asks the provider to stop (Ctrl-C); long waits poll it.
        self.stopping = threading.Event()
        # What the resources share, made on first use: importing the lifecycle code here would
        # delay the go-plugin handshake of every launch, most of which never need it.
        self._shared: dict[str, object] = {}
        self._shared_lock = threading.Lock()

    def _shared_state(self, name: str, make):
        with self._shared_lock:
            if name not in self._shared:
                self._shared[name] = make()
            return self._shared[name]

    @property
    def pool_claims(self) -> "PoolClaims":
        """(namespace, pool name) of every pool this process creates."""
        from raydog.lifecycle.node_pool import PoolClaims

        return self._shared_state("pool_claims", PoolClaims)

    @property
    def ownership(self) -> "OwnershipJournal":
        """What this working directory's creates made (the proof that lets it adopt its own objects)."""
        from raydog.lifecycle.ownership import OwnershipJournal

        return self._shared_state("ownership", OwnershipJournal.for_working_directory)

    @property
    def lookups(self) -> "PlanLookups":
        from raydog.lifecycle.planning import PlanLookups

        return self._shared_state("lookups", PlanLookups)

    @property
    def peer_addresses(self) -> "PeerAddresses":
        """The head's and observability node's IPs, learnt once per process."""
        from raydog.lifecycle.peers import PeerAddresses

        return self._shared_state("peer_addresses", PeerAddresses)

    def get_model_prefix(self) -> str:
        return "raydog_"

    def full_name(self) -> str:
        return PROVIDER_ADDRESS

    def get_provider_schema(self, diags: Diagnostics) -> Schema:
        return TABLE.schema("Ray clusters on YellowDog.")

    def validate_config(self, diags: Diagnostics, config: Config) -> None:
        secret = config.get("application_key_secret")
        if isinstance(secret, str):
            redaction.remember_secret(secret)
        for path, message in TABLE.problems(config):
            diags.add_error(f"Invalid provider {path[0]}", message, path=path)

    def configure_provider(self, diags: Diagnostics, config: Config) -> None:
        from raydog.yellowdog import NotAuthorisedError, PlatformError, check_credentials

        unknown = [a for a in ENV_FALLBACKS if config.get(a) is Unknown]
        for attribute in unknown:
            diags.add_error(f"Unknown provider {attribute}",
                            "The provider's settings must be known at plan time; take it from a variable or "
                            "a data source, not from a resource's attribute.", path=[attribute])
        if unknown:
            return
        settings = settings_module.resolve_settings(config, os.environ)
        redaction.remember_secret(settings.key_secret)  # before anything can quote it
        values = {"api_url": settings.api_url, "application_key_id": settings.key_id,
                  "application_key_secret": settings.key_secret}
        missing = [a for a in ("application_key_id", "application_key_secret") if not values[a]]
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
        for attribute, message in settings_module.settings_problems(values):
            diags.add_error(f"Invalid {attribute}", f"{message} (from the provider block or {ENV_FALLBACKS[attribute]})",
                            path=[attribute])
        if diags.has_errors():
            return
        try:
            # Terraform shows nothing of a provider while it configures; the progress goes to
            # its log (TF_LOG_PROVIDER=WARN), and the error below says how long it tried.
            # Checked once per command: the apply's launch finds the plan's check (command_state).
            if not command_state.credentials_checked(settings.api_url, settings.key_id, settings.key_secret):
                check_credentials(settings.api_url, settings.key_id, settings.key_secret,
                                  progress=logging.getLogger("raydog").warning)
                command_state.remember_credentials(settings.api_url, settings.key_id, settings.key_secret)
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
                f"Cannot reach the YellowDog API at {redaction.redact_url(settings.api_url)}",
                f"{exc}. Check api_url (or YD_API_URL).",
                path=["api_url"],
            )
            return
        with self._lock:
            self._settings = settings
            self._client = None
            self._reader = None

    @property
    def configured(self) -> bool:
        """Whether configure succeeded: plans check the platform only then."""
        with self._lock:
            return self._settings is not None

    @property
    def api_url(self) -> str:
        """The API URL the provider talks to (the default of what a head's autoscaler is given)."""
        with self._lock:
            return self._configured_settings().api_url

    def _configured_settings(self) -> Settings:
        """The settings configure resolved (the caller holds ``_lock``)."""
        if self._settings is None:
            raise RuntimeError("the raydog provider was used before it was configured")
        return self._settings

    @property
    def client(self) -> "YellowDogClient":
        """The platform client, built on first use: a launch that makes no platform call
        (most of them: schemas, validation, a plan of new resources) never imports the SDK.
        Resources only run after configure succeeded."""
        with self._lock:
            if self._client is None:
                settings = self._configured_settings()
                with collector_paused():
                    from raydog.yellowdog import YellowDogClient

                self._client = YellowDogClient.connect(settings.api_url, settings.key_id, settings.key_secret)
            return self._client

    @property
    def reader(self) -> "RestReader":
        """Reads without the SDK, for plans (raydog.yellowdog.rest): a plan of new resources
        checks templates and names without paying the SDK's import."""
        with self._lock:
            if self._reader is None:
                settings = self._configured_settings()
                from raydog.yellowdog.rest import RestReader

                self._reader = RestReader(settings.api_url, settings.key_id, settings.key_secret)
            return self._reader

    def get_resources(self):
        from raydog.resources.cluster import ClusterResource
        from raydog.resources.head import HeadResource
        from raydog.resources.observability import ObservabilityResource
        from raydog.resources.worker_pool import WorkerPoolResource

        return [ClusterResource, ObservabilityResource, HeadResource, WorkerPoolResource]

    def get_data_sources(self):
        from raydog.data_sources.node_script import NodeScriptDataSource

        return [NodeScriptDataSource]
