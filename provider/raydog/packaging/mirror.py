"""Terraform's view of a release: the ``h1:`` package hash and the network-mirror JSON.

A directory holding ``registry.terraform.io/yellowdog/raydog/`` with the release zips,
``index.json`` and ``<version>.json`` is both a provider network mirror (served by any
static HTTPS server; Terraform fetches ``<url>/registry.terraform.io/yellowdog/raydog/
index.json``) and a packed filesystem mirror (``filesystem_mirror { path = ... }``).

``h1:`` is what ``.terraform.lock.hcl`` records: Go's dirhash "Hash1", a SHA-256 over
the sorted lines ``<sha256 of a file>  <its path>`` of the package's files. It hashes
contents and names only, so the zip and the same files unpacked hash alike.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import zipfile
from pathlib import Path

from raydog.packaging import layout


def h1_of_zip(archive: Path) -> str:
    """The ``h1:`` hash Terraform computes for a provider zip."""
    with zipfile.ZipFile(archive) as zf:
        files = {info.filename: hashlib.sha256(zf.read(info)).hexdigest() for info in zf.infolist()}
    return _hash1(files)


def h1_of_dir(directory: Path) -> str:
    """The ``h1:`` hash Terraform computes for an unpacked provider directory."""
    files = {
        path.relative_to(directory).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in directory.rglob("*")
        if path.is_file()
    }
    return _hash1(files)


def _hash1(files: dict[str, str]) -> str:
    summary = "".join(f"{files[name]}  {name}\n" for name in sorted(files))
    return "h1:" + base64.b64encode(hashlib.sha256(summary.encode()).digest()).decode()


def write_index(root: Path) -> list[Path]:
    """Write ``index.json`` and one ``<version>.json`` per version for the zips under
    ``root``'s provider directory; returns the files written."""
    directory = layout.provider_dir(root)
    pattern = re.compile(rf"^{re.escape(layout.BINARY)}_(?P<version>[^_]+)_(?P<platform>[a-z0-9]+_[a-z0-9]+)\.zip$")
    versions: dict[str, dict[str, dict]] = {}
    for archive in sorted(directory.glob("*.zip")):
        match = pattern.match(archive.name)
        if match:
            versions.setdefault(match["version"], {})[match["platform"]] = {
                "url": archive.name,  # relative to the version's JSON document
                "hashes": [h1_of_zip(archive)],
            }
    if not versions:
        raise FileNotFoundError(f"no {layout.BINARY}_<version>_<os>_<arch>.zip in {directory}")
    written = [_write_json(directory / "index.json", {"versions": {v: {} for v in sorted(versions)}})]
    for version, archives in sorted(versions.items()):
        written.append(_write_json(directory / f"{version}.json", {"archives": dict(sorted(archives.items()))}))
    return written


def _write_json(path: Path, document: dict) -> Path:
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    return path
