"""The numbers of the provider's one retry policy (see retry.py for how it is applied).

They live apart from retry.py, which builds on the SDK's urllib3 retry class, so that the
configure-time credential check (probe.py) can follow the same policy without importing
the SDK.
"""

from __future__ import annotations

import logging
import random
import time
from datetime import timedelta
from typing import Callable, TypeVar

from .errors import PlatformError

T = TypeVar("T")
log = logging.getLogger("raydog.yellowdog")

# Requests per call, the first included. Seven keeps a call's chance of failing through a
# flaky API (20% of requests failing) near 1 in 100,000; BUDGET still bounds the time.
ATTEMPTS = 7
INITIAL_BACKOFF = timedelta(seconds=0.5)  # full jitter: the n-th retry waits U(0, min(MAX, 0.5 * 2^(n-1)))
MAX_BACKOFF = timedelta(seconds=4)
MAX_RETRY_AFTER = 5.0  # seconds; a longer Retry-After is cut to this
BUDGET = 20.0  # seconds after the first failure past which no retry starts
CONNECT_TIMEOUT = timedelta(seconds=10)
READ_TIMEOUT = timedelta(seconds=60)

RETRY_STATUSES = (429, 500, 502, 503, 504)
RETRY_METHODS = frozenset(["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS"])


def backoff_seconds(retry_number: int) -> float:
    """Full-jitter wait before the ``retry_number``-th retry (1 for the first)."""
    ceiling = min(MAX_BACKOFF.total_seconds(), INITIAL_BACKOFF.total_seconds() * 2 ** (retry_number - 1))
    return random.uniform(0, ceiling)


def call_retrying(call: Callable[[], T], what: str, attempts: int = ATTEMPTS,
                  on_retry: Callable[[int, PlatformError, float], None] | None = None) -> T:
    """Run ``call``; after a transient PlatformError run it again, waiting the platform's
    Retry-After or the backoff, at most ``attempts`` times and not past ``BUDGET`` seconds
    after the first failure. ``on_retry(attempt, error, wait)`` hears of each retry (progress
    for whoever is waiting). Calls that are not safe to repeat must not come here."""
    first_failure: float | None = None
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except PlatformError as error:
            if not error.transient or attempt == attempts:
                raise
            first_failure = time.monotonic() if first_failure is None else first_failure
            if time.monotonic() - first_failure > BUDGET:
                raise
            wait = backoff_seconds(attempt) if error.retry_after is None else error.retry_after
            log.debug("%s: %s; retry %d in %.1fs", what, error, attempt, wait)
            if on_retry is not None:
                on_retry(attempt, error, wait)
            time.sleep(wait)
    raise AssertionError("unreachable")  # the loop returns or raises
