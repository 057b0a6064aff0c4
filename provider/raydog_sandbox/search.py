"""The filters and the order every model's search shares (SDK search objects over records)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from .errors import NotFound

_SORT_KEYS = {
    "createdTime": lambda r: r.seq,
    "id": lambda r: r.id,
    "name": lambda r: getattr(r, "name", None) or "",
    "status": lambda r: r.status.name if r.status else "",
    "statusChangedTime": lambda r: r.status_changed or datetime.min.replace(tzinfo=UTC),
}


def in_order(records: list, sort_field: str | None, direction: Any) -> list:
    """The records sorted by the search's sortField (default createdTime) and sortDirection."""
    key = _SORT_KEYS.get(sort_field or "createdTime", _SORT_KEYS["createdTime"])
    descending = direction is not None and direction.name == "DESCENDING"
    return sorted(records, key=key, reverse=descending)


def namespaces_of(single: str | None, many: list[str] | None) -> set[str] | None:
    """The namespaces a search asks for; None when it asks for all."""
    if single is None and not many:
        return None
    return set(many or []) | ({single} if single else set())


def in_range(value: Any, bounds: Any) -> bool:
    """Whether value lies within an SDK range (min and max both optional); no range matches anything."""
    if bounds is None or (bounds.min is None and bounds.max is None):
        return True
    if value is None:
        return False
    return (bounds.min is None or value >= bounds.min) and (bounds.max is None or value <= bounds.max)


def live_or_newest(candidates: list | None, is_live: Callable[[Any], bool], missing: str) -> Any:
    """The live one of the records holding a name, else the newest; NotFound when there is none."""
    if not candidates:
        raise NotFound(missing)
    for candidate in reversed(candidates):
        if is_live(candidate):
            return candidate
    return candidates[-1]
