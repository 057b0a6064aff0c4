"""Two builds of the same sources give the same bytes; the cache key follows contents only."""

from __future__ import annotations

import hashlib
import os
import shutil

from raydog.packaging import build, layout

from packaging_helpers import CLI, run


def test_two_builds_from_the_same_sources_are_byte_identical(release, make_home, tmp_path):
    # A second build from scratch: its own cache, HOME, working directory and output paths.
    env = make_home(tmp_path / "home")
    env[build.CACHE_ENV] = str(tmp_path / "another-cache")
    out = tmp_path / "elsewhere" / "release"
    run([*CLI, "package", "--out", str(out)], env=env, cwd=tmp_path)
    second = layout.provider_dir(out) / layout.archive_name()
    first_sum = hashlib.sha256(release.archive.read_bytes()).hexdigest()
    assert hashlib.sha256(second.read_bytes()).hexdigest() == first_sum
    assert (layout.provider_dir(out) / layout.sums_name()).read_bytes() == (
        release.provider_dir / layout.sums_name()
    ).read_bytes()


def test_the_build_key_ignores_modification_times_and_follows_contents(tmp_path):
    stage = build.stage_sources(tmp_path / "stage")
    key = build.build_key(stage)
    plugin = stage / "raydog" / "plugin.py"
    os.utime(plugin, (1, 1))
    assert build.build_key(stage) == key
    moved = tmp_path / "another" / "place"
    shutil.copytree(stage, moved)
    assert build.build_key(moved) == key
    plugin.write_text(plugin.read_text() + "\n# changed\n")
    assert build.build_key(stage) != key
