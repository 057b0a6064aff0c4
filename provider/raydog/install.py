"""``raydog install``: lay the provider into a Terraform filesystem mirror.

Terraform then installs it like any registry provider: ``source = "yellowdog/raydog"``
with a version constraint, ``terraform init`` writes ``.terraform.lock.hcl``, and no
dev_overrides are needed. The package directory holds a launcher plus a copy of the
provider's own code, so the lock file's ``h1:`` hash changes whenever the code changes
(the launcher alone would hash the same forever). Third-party libraries come from the
Python environment the launcher names.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import stat
import subprocess
import sys
from pathlib import Path

from raydog import __version__

HOSTNAME = "registry.terraform.io"
NAMESPACE = "yellowdog"
TYPE = "raydog"
BINARY = f"terraform-provider-{TYPE}"

LAUNCHER = """#!/bin/sh
# terraform-provider-raydog {version}: runs the provider code next to this file with {python}
here="$(cd "$(dirname "$0")" && pwd)"
exec "{python}" -I -B -c 'import sys; sys.path.insert(0, sys.argv.pop(1)); from raydog.plugin import main; main()' "$here/lib" "$@"
"""


def default_mirror_dir() -> Path:
    """Terraform's implied local mirror (used when the CLI config names no provider_installation)."""
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA", Path.home())) / "terraform.d" / "plugins"
    return Path.home() / ".terraform.d" / "plugins"


def target_platform() -> str:
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)
    return f"{sys.platform.replace('linux2', 'linux')}_{arch}"


def package_dir(mirror: Path, version: str = __version__) -> Path:
    return mirror / HOSTNAME / NAMESPACE / TYPE / version / target_platform()


def install(mirror: Path, python: str | None = None, version: str = __version__) -> Path:
    """Write the provider package into ``mirror`` (replacing any same version) and return its directory."""
    python = python or sys.executable
    target = package_dir(mirror, version)
    if target.exists():
        shutil.rmtree(target)
    (target / "lib").mkdir(parents=True)
    source = Path(__file__).resolve().parent
    shutil.copytree(source, target / "lib" / "raydog", ignore=_ignore)
    _copy_node_scripts(source, target / "lib" / "raydog" / "node_scripts" / "templates")
    # Compile now with the interpreter the launcher runs (-B then never writes): the package
    # must not change after install, or Terraform's lock-file checksum no longer matches.
    subprocess.run([python, "-m", "compileall", "-q", str(target / "lib")], check=True)
    launcher = target / f"{BINARY}_v{version}"
    launcher.write_text(LAUNCHER.format(version=version, python=python))
    launcher.chmod(launcher.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return target


def _ignore(directory: str, entries: list[str]) -> list[str]:
    return [e for e in entries if e == "__pycache__" or e.endswith((".pyc", ".pyo"))]


def _copy_node_scripts(source: Path, destination: Path) -> None:
    """Ship the node templates beside the code (from the wheel's package data or the repo's scripts/)."""
    for candidate in (source / "node_scripts" / "templates", source.parents[1] / "scripts"):
        templates = sorted(candidate.glob("*.sh.j2")) if candidate.is_dir() else []
        if templates:
            destination.mkdir(parents=True, exist_ok=True)
            for template in templates:
                shutil.copy2(template, destination / template.name)
            return
    raise FileNotFoundError("the node script templates (scripts/*.sh.j2) were not found next to the raydog package")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help=f"filesystem mirror directory (default: Terraform's implied local mirror, {default_mirror_dir()})",
    )
    parser.add_argument("--python", default=None, help="Python interpreter the provider runs with (default: this one)")


def run(args: argparse.Namespace) -> int:
    mirror = args.dir or default_mirror_dir()
    target = install(mirror.expanduser().resolve(), args.python)
    print(f"installed {NAMESPACE}/{TYPE} {__version__} into {target}")
    print(
        'use it with: terraform { required_providers { raydog = { source = "yellowdog/raydog", '
        f'version = "~> {".".join(__version__.split(".")[:2])}" }} }} }}'
    )
    if args.dir is not None:
        print(f'and a CLI config with: provider_installation {{ filesystem_mirror {{ path = "{mirror}" }} }}')
    return 0
