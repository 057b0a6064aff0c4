"""The release files: a reproducible zip of the executable tree, SHA256SUMS, a signature.

Zips are byte-reproducible: entries sorted by name, every timestamp the build's
SOURCE_DATE_EPOCH, modes 0755 (executables) or 0644, no directory entries (Terraform's
``h1:`` hash of a zip counts every entry, and the same files unpacked have none), a fixed
compression level. SHA256SUMS lists every zip of the version in a directory, so that one
file covers the whole platform matrix, as the Terraform registry expects.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import time
import zipfile
from pathlib import Path

from raydog.packaging import layout

COMPRESS_LEVEL = 9


class SigningError(Exception):
    """The SHA256SUMS file could not be signed; the message says why in one line."""


def write_zip(tree: Path, destination: Path, epoch: int) -> Path:
    """Zip the files under ``tree`` (paths relative to it) into ``destination``, reproducibly."""
    stamp = time.gmtime(epoch)[:6]
    files = sorted((p for p in tree.rglob("*") if p.is_file()), key=lambda p: p.relative_to(tree).as_posix())
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".partial")
    with zipfile.ZipFile(partial, "w") as zf:
        for path in files:
            info = zipfile.ZipInfo(path.relative_to(tree).as_posix(), date_time=stamp)
            info.create_system = 3  # unix, so that the mode below is honoured on extraction
            executable = os.stat(path).st_mode & stat.S_IXUSR
            info.external_attr = (stat.S_IFREG | (0o755 if executable else 0o644)) << 16
            zf.writestr(info, path.read_bytes(), compress_type=zipfile.ZIP_DEFLATED, compresslevel=COMPRESS_LEVEL)
    os.replace(partial, destination)
    return destination


def extract(archive: Path, destination: Path) -> None:
    """Unpack a release zip with its file modes (zipfile alone drops them)."""
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            name = info.filename
            if name.startswith("/") or ".." in Path(name).parts:
                raise ValueError(f"{archive.name} has an unsafe entry {name!r}")
            target = destination / name
            if name.endswith("/"):
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as source, open(target, "wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)
            mode = (info.external_attr >> 16) & 0o777
            os.chmod(target, mode or 0o644)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_sums(directory: Path, version: str = layout.VERSION) -> Path:
    """``<binary>_<version>_SHA256SUMS`` for every platform's zip of ``version`` in ``directory``."""
    zips = sorted(directory.glob(f"{layout.BINARY}_{version}_*.zip"))
    if not zips:
        raise FileNotFoundError(f"no {layout.BINARY}_{version}_*.zip in {directory}")
    sums = directory / layout.sums_name(version)
    sums.write_text("".join(f"{sha256_file(z)}  {z.name}\n" for z in zips))
    return sums


def sign(sums: Path, key: str) -> Path:
    """A detached binary signature ``<sums>.sig`` made by gpg with ``key`` (id, fingerprint or email)."""
    gpg = shutil.which("gpg")
    if gpg is None:
        raise SigningError("gpg is not installed; sign SHA256SUMS with your own tool (see docs/guides/ci.md)")
    signature = sums.with_name(sums.name + ".sig")
    result = subprocess.run(
        [gpg, "--batch", "--yes", "--local-user", key, "--output", str(signature), "--detach-sign", str(sums)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        raise SigningError(f"gpg could not sign with key {key!r}: {lines[-1] if lines else result.returncode}")
    return signature
