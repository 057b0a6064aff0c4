"""Names of the provider's release: its registry address, file names and platforms."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

from raydog import __version__

HOSTNAME = "registry.terraform.io"
NAMESPACE = "yellowdog"
TYPE = "raydog"
ADDRESS = f"{HOSTNAME}/{NAMESPACE}/{TYPE}"
BINARY = f"terraform-provider-{TYPE}"
VERSION = __version__

# Terraform's names for the machines it runs on, from Python's.
_ARCHES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
_SYSTEMS = {"linux": "linux", "darwin": "darwin", "win32": "windows"}


def host_platform() -> str:
    """This machine as Terraform names it: ``linux_amd64``, ``darwin_arm64``, ..."""
    machine = platform.machine().lower()
    return f"{_SYSTEMS.get(sys.platform, sys.platform)}_{_ARCHES.get(machine, machine)}"


def executable_name(version: str = VERSION) -> str:
    """The provider executable inside the package (Terraform runs the file named so)."""
    return f"{BINARY}_v{version}"


def archive_name(version: str = VERSION, target: str | None = None) -> str:
    """The release zip: ``terraform-provider-raydog_<version>_<os>_<arch>.zip``."""
    return f"{BINARY}_{version}_{target or host_platform()}.zip"


def sums_name(version: str = VERSION) -> str:
    return f"{BINARY}_{version}_SHA256SUMS"


def provider_dir(root: Path) -> Path:
    """``<root>/registry.terraform.io/yellowdog/raydog``: where mirrors keep this provider."""
    return root / HOSTNAME / NAMESPACE / TYPE


def default_mirror_dir() -> Path:
    """Terraform's implied local mirror (used when the CLI config names no provider_installation)."""
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA", Path.home())) / "terraform.d" / "plugins"
    return Path.home() / ".terraform.d" / "plugins"
