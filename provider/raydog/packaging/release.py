"""``raydog package``: one release directory, served as a network mirror or used as a
packed filesystem mirror.

    <out>/registry.terraform.io/yellowdog/raydog/
        terraform-provider-raydog_<version>_<os>_<arch>.zip    one per platform
        terraform-provider-raydog_<version>_SHA256SUMS         every zip of the version
        terraform-provider-raydog_<version>_SHA256SUMS.sig     with a signing key
        index.json  <version>.json                             the network-mirror protocol

Each platform is built on a machine of that platform; copying the zips of several builds
into one directory and running ``raydog package --index-only`` there merges them.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from raydog.packaging import archive, build, layout, mirror


@dataclass(frozen=True)
class Release:
    directory: Path
    archive: Path | None
    sums: Path
    signature: Path | None
    index: list[Path]


def package(out: Path, sign_key: str | None = None, rebuild: bool = False, index_only: bool = False) -> Release:
    """Build (or reuse) this platform's zip into ``out`` and rewrite the sums, signature and index."""
    directory = layout.provider_dir(out)
    directory.mkdir(parents=True, exist_ok=True)
    copied = None
    if not index_only:
        copied = directory / layout.archive_name()
        partial = copied.with_name(copied.name + ".partial")
        shutil.copyfile(build.built_archive(rebuild=rebuild), partial)
        partial.replace(copied)
    sums = archive.write_sums(directory)
    stale = sums.with_name(sums.name + ".sig")
    stale.unlink(missing_ok=True)  # it signed the previous SHA256SUMS
    signature = archive.sign(sums, sign_key) if sign_key else None
    return Release(directory, copied, sums, signature, mirror.write_index(out))
