"""Terraform-style durations ("90s", "10m", "2h", "1h30m"), parsed once into timedeltas."""

from __future__ import annotations

import json
import math
import re
from datetime import timedelta

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
# timedelta's own limit is 999,999,999 days; nothing here needs more than ten years.
MAX_DURATION = timedelta(days=3650)


def parse_duration(text: str) -> timedelta:
    """A positive timedelta, or ValueError saying how to write one."""
    if not isinstance(text, str) or not text:
        raise ValueError('must be a duration such as "90s", "10m" or "2h"')
    position, seconds = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != position:
            break
        seconds += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if position != len(text):
        raise ValueError(f'{json.dumps(text, ensure_ascii=False)} is not a duration; use a number and a unit (ms, s, m, h), such as "90s", "10m" or "2h"')
    if seconds <= 0:
        raise ValueError(f'{json.dumps(text, ensure_ascii=False)} must be longer than zero')
    if not math.isfinite(seconds) or seconds > MAX_DURATION.total_seconds():
        raise ValueError(f'{json.dumps(text, ensure_ascii=False)} is too long; at most {MAX_DURATION.days // 365} years ("87600h")')
    return timedelta(seconds=seconds)


def parse_duration_or_zero(text: str) -> timedelta:
    """A duration where zero ("0s", "0m", ...) is allowed and means "none" (drain_timeout)."""
    if re.fullmatch(r"0+(ms|s|m|h)?", text):
        return timedelta(0)
    return parse_duration(text)


def format_duration(value: timedelta) -> str:
    """The shortest Terraform-style spelling of a timedelta ("2h", "1h30m", "90s")."""
    total = int(value.total_seconds())
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (seconds, "s")) if n]
    return "".join(parts) or "0s"
