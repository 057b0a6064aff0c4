"""The provider's one retry policy.

Two layers, each doing what only it can:

* **Transport** (``BoundedRetry``, installed in the SDK's session): retries a request that
  got 429 or 5xx, or could not connect, with full-jitter backoff. The SDK's defaults back
  off up to 60 s per retry; Terraform users want a bounded, brisk policy, so: at most
  ``ATTEMPTS`` requests, backoff capped at ``MAX_BACKOFF``, ``Retry-After`` honoured but
  capped at ``MAX_RETRY_AFTER``, and no retry once ``BUDGET`` seconds have passed since
  the first failure. A POST whose connection dropped after it was sent is *not* retried
  here: the platform may have committed it, and blindly re-sending would apply it twice.
* **Operation** (``create_or_adopt``): the idempotent operations recover from exactly that
  case by looking the object up by its unique name and adopting it, or creating it again
  if it is not there.
"""

from __future__ import annotations

import logging
import time
from typing import Callable, TypeVar

from urllib3.exceptions import MaxRetryError, ProtocolError, ReadTimeoutError, ResponseError
from yellowdog_client.common import FullJitterRetry
from yellowdog_client.model import RetryProperties

from .errors import PlatformError
from .policy import (  # the policy's numbers, named here too (retry.ATTEMPTS, ...)
    ATTEMPTS,
    BUDGET,
    INITIAL_BACKOFF,
    MAX_BACKOFF,
    MAX_RETRY_AFTER,
    RETRY_METHODS,
    RETRY_STATUSES,
    backoff_seconds,
    call_retrying,
)

T = TypeVar("T")
log = logging.getLogger("raydog.yellowdog")


def retry_properties() -> RetryProperties:
    """The policy in the SDK's own terms (ServicesSchema.retry): the SDK's hook for it.

    The SDK passes ``maxAttempts`` to urllib3 as the number of *retries*, hence ``- 1``.
    """
    return RetryProperties(maxAttempts=ATTEMPTS - 1, initialInterval=INITIAL_BACKOFF, maxInterval=MAX_BACKOFF)


class BoundedRetry(FullJitterRetry):
    """The SDK's full-jitter urllib3 retry, bounded in time and safe for POST."""

    def __init__(self, *, first_failure: float | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.first_failure = first_failure

    @classmethod
    def policy(cls) -> "BoundedRetry":
        retries = ATTEMPTS - 1
        return cls(
            total=retries, connect=retries, read=retries, status=retries,
            allowed_methods=RETRY_METHODS, status_forcelist=RETRY_STATUSES,
            raise_on_status=False, respect_retry_after_header=True,
            retry_max_interval=MAX_BACKOFF, retry_initial_interval=INITIAL_BACKOFF,
        )

    def new(self, **kwargs) -> "BoundedRetry":
        kwargs.setdefault("first_failure", self.first_failure)
        return super().new(**kwargs)

    def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None):
        # The request reached the server but no answer came back: it may have been applied.
        if method == "POST" and isinstance(error, (ReadTimeoutError, ProtocolError)):
            raise error.with_traceback(_stacktrace)
        started = self.first_failure if self.first_failure is not None else time.monotonic()
        if time.monotonic() - started > BUDGET:
            raise MaxRetryError(_pool, url, error or ResponseError("retry budget exhausted"))
        new_retry = super().increment(method, url, response, error, _pool, _stacktrace)
        new_retry.first_failure = started
        return new_retry

    def get_retry_after(self, response):
        retry_after = super().get_retry_after(response)
        return None if retry_after is None else min(float(retry_after), MAX_RETRY_AFTER)


def create_or_adopt(what: str, create: Callable[[], T], find_live: Callable[[], T | None],
                    attempts: int = 3) -> T:
    """Run ``create`` so that it takes effect exactly once, even if answers get lost.

    ``find_live`` looks the object up by its unique name (None when there is no live one).
    When the create got no answer (the platform may have committed it) or was refused
    because the name is taken (a retried request that had committed, or a concurrent
    create of the same object), the live object of that name is adopted; if there is
    none, the create is tried again, at most ``attempts`` times in all.
    """
    last_error: PlatformError | None = None
    for attempt in range(attempts):
        if attempt:
            time.sleep(backoff_seconds(attempt + 1))
        try:
            return create()
        except PlatformError as err:
            if not (err.outcome_unknown or err.name_taken):
                raise
            last_error = err
            log.warning("%s: %s; looking it up by name", what, err)
        found = lookup_patiently(find_live)
        if found is not None:
            log.info("%s: adopted the object the platform already has", what)
            return found
        if last_error.name_taken:
            raise last_error
    assert last_error is not None
    raise last_error


def lookup_patiently(find: Callable[[], T], attempts: int = 3) -> T:
    """Run a read, trying again on transient errors (the transport already retried each)."""
    return call_retrying(find, "look-up", attempts=attempts)
