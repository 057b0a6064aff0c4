"""Make sure Terraform finds the provider before the first ``terraform init``.

The builder has no install step of its own: on first use in a process it runs the
project's ``raydog install`` into Terraform's implied local mirror. That builds the release
artifact (or takes it from the build cache, keyed by the source contents) and installs it
atomically, changing nothing when the mirror already holds the same bytes; a lock
serialises installs by concurrent processes.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import threading
from pathlib import Path

_checked: set[Path] = set()
_guard = threading.Lock()


def ensure_provider_installed(mirror: Path | None = None) -> Path:
    """Install the provider into ``mirror`` (default: Terraform's implied mirror) unless current; returns it."""
    from raydog.packaging import install, layout

    mirror = Path(mirror or layout.default_mirror_dir()).expanduser().resolve()
    with _guard:
        if mirror in _checked:
            return mirror
        lock_path = Path(tempfile.gettempdir()) / f"raydog-install-{os.getuid()}.lock"
        with open(lock_path, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            install.install(mirror)
        _checked.add(mirror)
    return mirror
