"""``raydog install``: lay the release artifact into a Terraform filesystem mirror, atomically.

Terraform then installs it like any registry provider: ``source = "yellowdog/raydog"``
with a version constraint, ``terraform init`` writes ``.terraform.lock.hcl``, and no
dev_overrides are needed. The package goes in the mirror's unpacked layout
(``registry.terraform.io/yellowdog/raydog/<version>/<os>_<arch>/``) and is exactly the
release zip's contents, so its ``h1:`` hash is the release's: the same on every machine,
for every install of one version, and in every lock file.

Atomic: the package is unpacked beside its final place and renamed into it; an install
that fails part way leaves the mirror as it was. Reinstalling the same artifact changes
nothing (working directories that Terraform linked to the package keep working).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from raydog.packaging import archive, build, layout, mirror


class InstallError(Exception):
    """The provider could not be installed; the message says why in one line."""


def package_dir(root: Path, version: str = layout.VERSION, target: str | None = None) -> Path:
    """Where the unpacked package of ``version`` for ``target`` goes in the mirror ``root``."""
    return layout.provider_dir(root) / version / (target or layout.host_platform())


def install(root: Path, artifact: Path | None = None, rebuild: bool = False) -> tuple[Path, bool]:
    """Install the release zip ``artifact`` (default: this code's, built if need be) into the
    filesystem mirror ``root``; returns the package directory and whether anything changed."""
    artifact = artifact or build.built_archive(rebuild=rebuild)
    expected = _check_artifact(artifact)
    target = package_dir(root)
    if target.is_dir() and mirror.h1_of_dir(target) == expected:
        return target, False
    created: list[Path] = []
    staging = None
    try:
        _make_parents(target.parent, created)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.installing-", dir=target.parent))
        archive.extract(artifact, staging)
        _swap_into_place(staging, target)
    except BaseException:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        for directory in reversed(created):
            _remove_if_empty(directory)
        raise
    return target, True


def _check_artifact(artifact: Path) -> str:
    """The artifact's ``h1:`` hash, after checking that it is a provider package of this version."""
    if not artifact.is_file():
        raise InstallError(f"no provider package at {artifact}")
    try:
        with zipfile.ZipFile(artifact) as zf:
            names = set(zf.namelist())
        if layout.executable_name() not in names:
            raise InstallError(f"{artifact.name} holds no {layout.executable_name()}: not a {layout.ADDRESS} package")
        return mirror.h1_of_zip(artifact)  # reads every entry: a damaged zip fails here, before any change
    except zipfile.BadZipFile as error:
        raise InstallError(f"{artifact} is not a valid zip file ({error})") from None


def _swap_into_place(staging: Path, target: Path) -> None:
    if not target.exists():
        os.rename(staging, target)
        return
    retired = target.with_name(f".{target.name}.replaced-{os.getpid()}")
    os.rename(target, retired)
    try:
        os.rename(staging, target)
    except BaseException:
        os.rename(retired, target)
        raise
    shutil.rmtree(retired, ignore_errors=True)


def _make_parents(directory: Path, created: list[Path]) -> None:
    """mkdir -p, adding the directories it creates to ``created`` (outermost first)."""
    missing = []
    for candidate in (directory, *directory.parents):
        if candidate.exists():
            break
        missing.append(candidate)
    missing.reverse()
    for candidate in missing:
        candidate.mkdir()
        created.append(candidate)


def _remove_if_empty(directory: Path) -> None:
    try:
        directory.rmdir()
    except OSError:
        pass
