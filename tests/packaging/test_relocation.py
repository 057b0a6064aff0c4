"""The installed provider depends on nothing of the environment that installed or built it."""

from __future__ import annotations

import os
import shutil
import sys

from harness.terraform import REPO, changes, write_cli_config
from raydog.packaging import archive, layout

from packaging_helpers import launch_provider, raydog, with_sandbox, workdir

CLUSTER = """
provider "raydog" {}

resource "raydog_cluster" "c" {
  name      = "moved"
  namespace = "tests"
}

resource "raydog_head" "h" {
  cluster_id                      = raydog_cluster.c.id
  cluster_name                    = raydog_cluster.c.name
  compute_requirement_template_id = "sandbox/ray-head"
}

resource "raydog_worker_pool" "w" {
  cluster_id                      = raydog_cluster.c.id
  cluster_name                    = raydog_cluster.c.name
  name                            = "w"
  compute_requirement_template_id = "sandbox/ray-worker"
  head_private_ip                 = raydog_head.h.private_ip
  node_count                      = 1
  wait_for_nodes                  = true
}
"""


def test_plan_and_apply_work_after_the_installing_venv_is_moved_away(tmp_path, make_venv, make_home, sandbox):
    venv = make_venv(tmp_path / "venv")
    env = make_home(tmp_path / "home")
    mirror = tmp_path / "mirror"
    raydog(venv, "install", "--dir", str(mirror), env=env)
    env["TF_CLI_CONFIG_FILE"] = str(write_cli_config(tmp_path / "home" / "terraformrc", mirror))
    tf = workdir(tmp_path / "work", with_sandbox(env, sandbox), CLUSTER)
    tf.init()

    shutil.move(venv, tmp_path / "moved-venv")

    tf.apply()
    assert set(tf.resources()) == {"raydog_cluster.c", "raydog_head.h", "raydog_worker_pool.w"}
    assert changes(tf.plan_json()) == {}
    tf.destroy()
    assert tf.resources() == {}


def test_the_provider_starts_without_python_and_maps_nothing_of_the_build(release, tmp_path):
    tree = tmp_path / "package"
    archive.extract(release.archive, tree)
    executable = tree / layout.executable_name()
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home), "PATH": str(tmp_path / "no-such-bin")}  # no python to be found
    proc, line = launch_provider(executable, env)
    try:
        assert line.split(b"|")[:2] == [b"1", b"6"], (line, proc.poll())
        with open(f"/proc/{proc.pid}/maps") as maps:
            mapped = {fields[-1] for fields in (row.split() for row in maps) if len(fields) == 6}
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    files = {path for path in mapped if path.startswith("/")}
    foreign = {sys.prefix, sys.base_prefix, os.path.realpath(sys.base_prefix), str(REPO)}
    assert not {f for f in files if any(f.startswith(prefix + "/") for prefix in foreign)}, files
    assert any(f.startswith(str(tree) + "/") and "libpython" in f for f in files), files
