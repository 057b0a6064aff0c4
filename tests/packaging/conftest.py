"""Fixtures for the release artifact: built once per session, installed as users install it.

``release`` runs ``raydog package`` once; the build behind it is cached on disk by a hash of
its inputs (``raydog.packaging.build``), in the same cache the harness's ``raydog install``
uses, so the whole session builds at most once and a rerun with unchanged sources not at
all. ``make_venv`` makes a fresh venv elsewhere holding only this project's wheel (built
once, cached the same way), to install from as a user with another environment would.
``make_home`` makes a clean HOME with Terraform's environment; ``https_mirror`` serves a directory
over HTTPS on 127.0.0.1 with a CA made for the test.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from harness.terraform import REPO
from raydog.packaging import build, layout

from packaging_helpers import CLI, HttpsServer, make_ca, run  # noqa: F401 (run: used by fixtures)



@dataclass
class Release:
    directory: Path  # the --out directory: a network mirror's root
    archive: Path  # this platform's zip in it

    @property
    def provider_dir(self) -> Path:
        return layout.provider_dir(self.directory)


@pytest.fixture(scope="session")
def build_cache() -> Path:
    """Where builds are cached: the one every ``raydog install`` of this session uses."""
    return build.cache_dir()


@pytest.fixture(scope="session")
def release(tmp_path_factory, build_cache) -> Release:
    out = tmp_path_factory.mktemp("release")
    run([*CLI, "package", "--out", str(out)], env={**os.environ, build.CACHE_ENV: str(build_cache)})
    return Release(out, layout.provider_dir(out) / layout.archive_name())


@pytest.fixture(scope="session")
def project_wheel(build_cache) -> Path:
    """This checkout's wheel, cached by a hash of what goes into it."""
    digest = hashlib.sha256()
    for path in sorted([REPO / "pyproject.toml", *(REPO / "provider").rglob("*.py"), *(REPO / "scripts").glob("*")]):
        if "__pycache__" not in path.parts:
            digest.update(path.relative_to(REPO).as_posix().encode() + b"\0" + path.read_bytes())
    wheels = build_cache / "wheels" / digest.hexdigest()[:32]
    found = sorted(wheels.glob("*.whl"))
    if not found:
        # From a clean copy: setuptools' build/ directory in a checkout keeps deleted files.
        scratch = build_cache / "wheels" / f".{os.getpid()}"
        source = scratch / "source"
        ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
        source.mkdir(parents=True)
        for name in ("pyproject.toml", "README.md", "LICENSE", "provider", "scripts"):
            if (REPO / name).is_dir():
                shutil.copytree(REPO / name, source / name, ignore=ignore)
            elif (REPO / name).is_file():
                shutil.copy2(REPO / name, source / name)
        run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(scratch), str(source)])
        shutil.rmtree(source)
        shutil.rmtree(wheels, ignore_errors=True)
        scratch.rename(wheels)
        found = sorted(wheels.glob("*.whl"))
    return found[0]


@pytest.fixture(scope="session")
def make_venv(project_wheel):
    """make_venv(path): a new venv at ``path`` with this project installed from its wheel, no
    dependencies (installing a built release needs none): the user's ``raydog`` command."""

    def make(path: Path) -> Path:
        run([sys.executable, "-m", "venv", "--without-pip", str(path)])
        run([sys.executable, "-m", "pip", "--python", str(path / "bin" / "python"), "install", "--quiet",
             "--no-deps", "--no-index", str(project_wheel)])
        return path

    return make


@pytest.fixture(scope="session")
def make_home(build_cache):
    """make_home(path): a clean HOME at ``path`` and the environment Terraform and ``raydog``
    run with there (sharing this session's build cache)."""

    def make(path: Path) -> dict[str, str]:
        path.mkdir(parents=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "YD_", "SSL_CERT", "RAYDOG_"))}
        env.update(HOME=str(path), CHECKPOINT_DISABLE="1", TF_IN_AUTOMATION="1")
        env[build.CACHE_ENV] = str(build_cache)
        return env

    return make


@pytest.fixture
def https_mirror(tmp_path, release):
    """The release directory served over HTTPS on 127.0.0.1; ``.url`` and ``.ca_file``."""
    ca_file, cert_file, key_file = make_ca(tmp_path / "tls")
    with HttpsServer(release.directory, cert_file, key_file) as server:
        server.ca_file = ca_file
        yield server
