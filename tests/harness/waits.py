"""The one way tests wait: poll an observable condition until it holds, with a deadline.

Tests never sleep to let something happen; they wait for the thing itself (a task's
status, a route's request count, a process gone) and fail with what they last saw.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """A condition did not hold in time; ``last`` is the value it was last seen with."""

    def __init__(self, what: str, timeout: float, last: Any) -> None:
        super().__init__(f"timed out after {timeout:g} s waiting until {what}; last observed: {last!r}")
        self.what, self.timeout, self.last = what, timeout, last


def wait_until(
    probe: Callable[[], T],
    what: str,
    *,
    timeout: float = 10.0,
    until: Callable[[T], object] = bool,
    interval: float = 0.05,
) -> T:
    """Call ``probe`` until ``until(value)`` holds (by default: the value is truthy); return the value.

    ``what`` says what is awaited ("the head task executes"); past ``timeout`` seconds a
    WaitTimeout names it and the last value ``probe`` returned, so a probe that returns the
    observed thing (a status, a list) rather than a bool makes the failure explain itself.
    An exception from ``probe`` ends the wait at once (raise to fail fast on a dead end).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if until(value):
            return value
        if time.monotonic() >= deadline:
            raise WaitTimeout(what, timeout, value)
        time.sleep(interval)
