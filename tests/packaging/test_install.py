"""``raydog install``: all of the package or nothing, one-line errors, ``raydog --version``."""

from __future__ import annotations

import subprocess

import pytest
from raydog.packaging import layout, mirror

from packaging_helpers import CLI


def install(*args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, "install", *args], capture_output=True, text=True, env=env)


def package_dir(root):
    return layout.provider_dir(root) / layout.VERSION / layout.host_platform()


def assert_one_line_error(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 1, result
    assert result.stderr.startswith("raydog install: error: "), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.fixture
def installed(release, tmp_path):
    root = tmp_path / "mirror"
    result = install("--dir", str(root), "--from", str(release.archive))
    assert result.returncode == 0, result.stderr
    return root


def test_an_install_replaces_an_older_package_of_the_version_whole(release, tmp_path):
    root = tmp_path / "mirror"
    old = package_dir(root)
    old.mkdir(parents=True)
    (old / layout.executable_name()).write_text("#!/bin/sh\nexec /old/venv/bin/python ...\n")
    (old / "lib").mkdir()
    assert install("--dir", str(root), "--from", str(release.archive)).returncode == 0
    assert mirror.h1_of_dir(old) == mirror.h1_of_zip(release.archive)
    assert sorted(p.name for p in old.parent.iterdir()) == [layout.host_platform()]


def test_failed_installs_say_why_in_one_line_and_change_nothing(installed, release, tmp_path):
    before = mirror.h1_of_dir(package_dir(installed))
    damaged = tmp_path / layout.archive_name()
    data = bytearray(release.archive.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)
    damaged.write_bytes(bytes(data))
    not_a_zip = tmp_path / "notes.txt"
    not_a_zip.write_text("hello")
    for args in (
        ["--from", str(tmp_path / "missing.zip")],
        ["--from", str(damaged)],
        ["--from", str(not_a_zip)],
    ):
        assert_one_line_error(install("--dir", str(installed), *args))
    assert mirror.h1_of_dir(package_dir(installed)) == before
    assert sorted(p.name for p in package_dir(installed).parent.iterdir()) == [layout.host_platform()]
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    assert_one_line_error(install("--dir", str(blocked / "mirror"), "--from", str(release.archive)))


def test_version_names_the_provider_and_the_embedded_terraform():
    result = subprocess.run([*CLI, "--version"], capture_output=True, text=True, check=True)
    provider, terraform = result.stdout.splitlines()
    assert provider == f"{layout.BINARY} {layout.VERSION}"
    assert terraform.startswith("Terraform v1.") and "embedded" in terraform, terraform
