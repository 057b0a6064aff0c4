"""One release, one lock file: the same ``h1:`` on every machine, install and environment.

Two users install the provider with ``raydog install`` from their own venvs (at different
paths, holding only this project's wheel) under their own HOMEs, into Terraform's implied
local mirror, as the README says; ``terraform init`` then writes the same lock file for
both, and either one's lock file is accepted by the other's ``init``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from raydog.packaging import layout, mirror

from packaging_helpers import raydog, with_sandbox, workdir

LOCK = ".terraform.lock.hcl"


@pytest.fixture(scope="module")
def two_installs(tmp_path_factory, make_venv, make_home, release):
    """Two users: each a venv, a HOME, ``raydog install`` and an initialised working directory."""
    root = tmp_path_factory.mktemp("users")
    users = {}
    for name, venv_path in (("alice", root / "alice" / "venv"), ("bob", root / "elsewhere" / "deeper" / "bob-env")):
        venv = make_venv(venv_path)
        env = make_home(root / f"home-{name}")
        raydog(venv, "install", env=env)
        tf = workdir(root / f"work-{name}", env)
        tf.init()
        users[name] = (venv, env, tf)
    return users


def test_installs_from_two_venvs_under_two_homes_give_identical_lock_files(two_installs, release):
    locks = {name: (tf.workdir / LOCK).read_text() for name, (_, _, tf) in two_installs.items()}
    assert locks["alice"] == locks["bob"]
    expected = mirror.h1_of_zip(release.archive)
    assert f'"{expected}"' in locks["alice"], locks["alice"]
    for _, env, _ in two_installs.values():
        package = Path(env["HOME"]) / ".terraform.d" / "plugins" / layout.ADDRESS / layout.VERSION
        assert mirror.h1_of_dir(package / layout.host_platform()) == expected


def test_a_lock_file_from_one_home_is_accepted_by_init_in_the_other(two_installs, tmp_path):
    _, _, alice = two_installs["alice"]
    _, bob_env, _ = two_installs["bob"]
    bob = workdir(tmp_path / "bob-with-alices-lock", bob_env)
    shutil.copyfile(alice.workdir / LOCK, bob.workdir / LOCK)
    bob.run("init", "-input=false", "-no-color", "-lockfile=readonly")
    assert (bob.workdir / LOCK).read_text() == (alice.workdir / LOCK).read_text()


def test_touching_a_source_and_reinstalling_changes_nothing(two_installs, sandbox):
    venv, env, tf = two_installs["alice"]
    lock = (tf.workdir / LOCK).read_text()
    sources = sorted((venv / "lib").glob("python3*/site-packages/raydog/*.py"))
    assert sources, "the venv holds no raydog sources"
    for source in sources:
        os.utime(source)  # a new modification time, the same content
    result = raydog(venv, "install", env=env)
    assert "already installed (unchanged)" in result.stdout, result.stdout
    tf.init()
    assert (tf.workdir / LOCK).read_text() == lock
    # The working directory initialised before the reinstall still plans (it used to fail
    # with "cached package ... does not match any of the checksums").
    tf.env = with_sandbox(env, sandbox)
    assert tf.plan_exitcode().returncode == 0, tf.plan_exitcode().output
