"""Secrets out of every line the provider writes: diagnostics, logs, error messages.

The rules in ``settings`` refuse a key secret or a URL that could leak before any request
is made, and no message is meant to quote one. This is the defence behind them: the
configured application key secret (every spelling of it a message could hold) and the
user-info of any URL (``https://user:password@host``) are replaced by ``<redacted>`` in
every diagnostic Terraform receives and every log line (``tfcompat`` installs both).
"""

from __future__ import annotations

import logging
import re
import threading

REDACTED = "<redacted>"

# scheme://user-info@host: everything between "//" and the first "@" of the authority.
_USER_INFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/?#@\s]*@")

_secrets: set[str] = set()
_lock = threading.Lock()


def remember_secret(value: str | None) -> None:
    """Redact ``value`` from now on: as given, trimmed, and as ``repr`` or an HTTP header would escape it."""
    if not value or not value.strip():
        return
    spellings = {value, value.strip(), repr(value)[1:-1], repr(value.encode("utf-8", "replace"))[2:-1]}
    with _lock:
        _secrets.update(s for s in spellings if len(s.strip()) >= 1)


def redact_url(url: str) -> str:
    """``url`` with any user-info (``user:password@``) replaced."""
    return _USER_INFO.sub(rf"\1{REDACTED}@", url)


def redact(text: str | None) -> str | None:
    """``text`` without any remembered secret or URL user-info."""
    if not text:
        return text
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return redact_url(text)


class RedactingFilter(logging.Filter):
    """A log handler filter: the record's message and traceback, redacted (never dropped)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not leak the raw arguments either
            message = str(record.msg)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg, record.args = redact(message), None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True
