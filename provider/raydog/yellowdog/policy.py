"""The numbers of the provider's one retry policy (see retry.py for how it is applied).

They live apart from retry.py, which builds on the SDK's urllib3 retry class, so that the
configure-time credential check (probe.py) can follow the same policy without importing
the SDK.
"""

from __future__ import annotations

import random
from datetime import timedelta

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
