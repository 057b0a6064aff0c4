"""``YellowDogClient``: the provider's one connection to YellowDog, built once per provider process.

It wraps the SDK's ``PlatformClient`` with the provider's retry policy, maps every SDK
error to a ``PlatformError``, and offers the idempotent operations of work.py, pools.py
and waits.py as its methods. It is safe to share between threads: the SDK's session is,
and read-modify-write updates of a work requirement are serialised per requirement.
"""

from __future__ import annotations

from yellowdog_client import PlatformClient
from yellowdog_client.model import ApiKey, ServicesSchema

from . import policy, probe, retry
from .core import ClientCore, log, record_response_status
from .group_end import GroupEndOps
from .pools import PoolOps
from .templates import TemplateOps
from .updates import UpdateStreams
from .waits import WaitOps


class YellowDogClient(WaitOps, GroupEndOps, PoolOps, TemplateOps, ClientCore):
    """Idempotent, retried, verified YellowDog operations for the Terraform resources."""

    @classmethod
    def connect(cls, api_url: str, key_id: str, key_secret: str) -> "YellowDogClient":
        """Build the client (no request is made; ``check_credentials`` checks the key)."""
        url = probe.check_settings(api_url, key_id, key_secret)
        schema = ServicesSchema(defaultUrl=url, retry=retry.retry_properties(),
                                connectionTimeout=policy.CONNECT_TIMEOUT, readTimeout=policy.READ_TIMEOUT)
        sdk = PlatformClient.create(schema, ApiKey(key_id, key_secret))
        _install_transport_policy(sdk)
        log.info("platform client for %s with application key %s", url, key_id)
        client = cls(sdk, url)
        client._updates = UpdateStreams(url, key_id, key_secret)
        return client


def _install_transport_policy(sdk: PlatformClient) -> None:
    """Put the bounded retry and the status-recording hook into the SDK's session.

    ServicesSchema.retry only sets the SDK's counts and intervals; the time budget, the
    Retry-After cap and "never re-send a POST that may have committed" need our own
    urllib3 Retry on the session's adapters. The SDK keeps its session private, so this
    is the one place that reaches into it (the SDK version is pinned).
    """
    session = getattr(sdk, "_PlatformClient__session", None)
    if session is None:
        raise RuntimeError("yellowdog-sdk changed: PlatformClient has no session to configure")
    for prefix in ("https://", "http://"):
        session.get_adapter(prefix).max_retries = retry.BoundedRetry.policy()
    session.hooks["response"].append(record_response_status)
