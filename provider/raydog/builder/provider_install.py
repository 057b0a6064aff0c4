"""Make sure Terraform finds the provider before the first ``terraform init``.

The builder has no install step of its own: on first use in a process it checks that
Terraform's implied local mirror (where ``raydog install`` puts the provider) holds this
code, run by this Python, and installs it there if not, with the project's install
function. The check compares file sizes and modification times, so an up-to-date copy
costs a directory walk; a lock serialises installs by concurrent processes.
"""

from __future__ import annotations

import fcntl
import os
import sys
import tempfile
import threading
from pathlib import Path

_checked: set[Path] = set()
_guard = threading.Lock()


def ensure_provider_installed(mirror: Path | None = None) -> Path:
    """Install the provider into ``mirror`` (default: Terraform's implied mirror) unless current; returns it."""
    from raydog import install

    mirror = Path(mirror or install.default_mirror_dir()).expanduser().resolve()
    with _guard:
        if mirror in _checked:
            return mirror
        lock_path = Path(tempfile.gettempdir()) / f"raydog-install-{os.getuid()}.lock"
        with open(lock_path, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            target = install.package_dir(mirror)
            if not _is_current(target, Path(install.__file__).resolve().parent):
                install.install(mirror)
        _checked.add(mirror)
    return mirror


def _is_current(target: Path, source: Path) -> bool:
    """Whether the package at ``target`` holds ``source``'s code and runs this interpreter."""
    launchers = list(target.glob("terraform-provider-raydog_v*")) if target.is_dir() else []
    if not launchers or sys.executable not in launchers[0].read_text(errors="replace"):
        return False
    installed = target / "lib" / source.name
    pairs = []
    for path in source.rglob("*"):
        relative = path.relative_to(source)
        if path.is_dir() or "__pycache__" in relative.parts or path.suffix in (".pyc", ".pyo"):
            continue
        if relative.parts[0] == "sandbox":  # a separate program, not shipped with the provider
            continue
        pairs.append((path, installed / relative))
    # The node script templates: in a checkout they live in the top-level scripts/.
    checkout_scripts = source.parents[1] / "scripts"
    pairs += [(t, installed / "node_scripts" / t.name) for t in checkout_scripts.glob("*.sh.j2")]
    for path, copy in pairs:
        try:
            here, there = path.stat(), copy.stat()
        except FileNotFoundError:
            return False
        if (here.st_size, int(here.st_mtime)) != (there.st_size, int(there.st_mtime)):
            return False
    return True
