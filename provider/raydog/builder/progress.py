"""Progress lines while Terraform works: one per phase and per cluster part, or nothing.

Terraform's ``-json`` messages (``apply_start``, ``apply_progress``, ``apply_complete``,
``apply_errored``) become lines such as ``[raydog mycluster] head node: creating`` and
``[raydog mycluster] head node: created in 14s``. Plain lines read the same in a
terminal, a log file and a notebook cell.
"""

from __future__ import annotations

import re
import sys
import time
from typing import TextIO

# What each resource of the module is, for a reader who never saw the module.
_PARTS = {
    "raydog_cluster": "work requirement",
    "raydog_head": "head node",
    "raydog_observability": "observability node",
}
_POOL_KEY = re.compile(r'raydog_worker_pool\.(?P<label>[A-Za-z0-9_-]+)(\["(?P<key>[^"]+)"\])?')
_VERBS = {"create": ("creating", "created"), "delete": ("removing", "removed"), "update": ("updating", "updated"),
          "replace": ("replacing", "replaced")}
REPORT_EVERY_SECONDS = 30


def describe(address: str) -> str:
    """A resource address as a cluster part: ``worker pool gpu``, ``head node``, ..."""
    match = _POOL_KEY.search(address)
    if match:
        return f"worker pool {match.group('key') or match.group('label')}"
    for resource_type, part in _PARTS.items():
        if f"{resource_type}." in address:
            return part
    return address


class Progress:
    """Writes progress lines to ``stream`` (stdout by default) unless ``quiet``."""

    def __init__(self, label: str, quiet: bool = False, stream: TextIO | None = None) -> None:
        self.label = label
        self.quiet = quiet
        self._stream = stream
        self._phase_started = time.monotonic()

    def line(self, text: str) -> None:
        if self.quiet:
            return
        stream = self._stream or sys.stdout
        print(f"[raydog {self.label}] {text}", file=stream, flush=True)

    def phase(self, text: str) -> None:
        self._phase_started = time.monotonic()
        self.line(text)

    def done(self, text: str) -> None:
        self.line(f"{text} in {time.monotonic() - self._phase_started:.0f}s")

    def on_message(self, message: dict) -> None:
        """One Terraform ``-json`` message."""
        kind = message.get("type")
        hook = message.get("hook") or {}
        address = (hook.get("resource") or {}).get("addr", "")
        action = hook.get("action", "")
        if not address or action not in _VERBS or address.startswith("data.") or ".data." in address:
            return
        doing, done = _VERBS[action]
        part = describe(address)
        if kind == "apply_start":
            self.line(f"{part}: {doing}")
        elif kind == "apply_progress":
            elapsed = int(hook.get("elapsed_seconds") or 0)
            if elapsed and elapsed % REPORT_EVERY_SECONDS == 0:
                self.line(f"{part}: still {doing} ({elapsed}s)")
        elif kind == "apply_complete":
            self.line(f"{part}: {done} in {int(hook.get('elapsed_seconds') or 0)}s")
        elif kind == "apply_errored":
            self.line(f"{part}: failed after {int(hook.get('elapsed_seconds') or 0)}s")
