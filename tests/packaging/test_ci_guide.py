"""docs/guides/ci.md works as written: its pipeline's steps, run on a clean HOME against the
sandbox, with the provider from a network mirror over HTTPS and a committed lock file."""

from __future__ import annotations

import re
import shlex
import subprocess

from harness.terraform import REPO, changes, terraform_command

from packaging_helpers import run, with_sandbox, workdir

GUIDE = REPO / "docs" / "guides" / "ci.md"
STEPS_SECTION = "## The pipeline's steps"

CONFIG = """
provider "raydog" {}

resource "raydog_cluster" "c" {
  name      = "ci"
  namespace = "tests"
}

resource "raydog_head" "h" {
  cluster_id                      = raydog_cluster.c.id
  cluster_name                    = raydog_cluster.c.name
  compute_requirement_template_id = "sandbox/ray-head"
}
"""


def guide_steps() -> list[tuple[str, str]]:
    """(heading, shell) of each step of the guide's pipeline section, in order."""
    text = GUIDE.read_text()
    start = text.index(STEPS_SECTION)
    end = text.find("\n## ", start + len(STEPS_SECTION))
    section = text[start : end if end != -1 else len(text)]
    steps = []
    for part in re.split(r"^### ", section, flags=re.M)[1:]:
        heading = part.splitlines()[0]
        blocks = re.findall(r"^```shell\n(.*?)^```", part, flags=re.M | re.S)
        steps += [(heading, block) for block in blocks]
    return steps


def test_the_ci_guide_steps_plan_and_apply_on_a_clean_home(tmp_path, make_home, https_mirror, sandbox):
    steps = guide_steps()
    assert [h.split(".")[0] for h, _ in steps] == ["1", "2", "3", "4"], steps
    env = with_sandbox(make_home(tmp_path / "home"), sandbox)
    bin_dir = tmp_path / "bin"  # `terraform` on PATH: the one the harness runs
    bin_dir.mkdir()
    shim = bin_dir / "terraform"
    shim.write_text("#!/bin/sh\nexec " + " ".join(map(shlex.quote, terraform_command())) + ' "$@"\n')
    shim.chmod(0o755)
    env.update(
        PATH=f"{bin_dir}:{env['PATH']}",
        RAYDOG_MIRROR_URL=https_mirror.url,
        SSL_CERT_FILE=str(https_mirror.ca_file),
        GIT_AUTHOR_NAME="ci", GIT_AUTHOR_EMAIL="ci@example.invalid",
        GIT_COMMITTER_NAME="ci", GIT_COMMITTER_EMAIL="ci@example.invalid",
    )
    repo = workdir(tmp_path / "repo", env, CONFIG)
    run(["git", "init", "-q"], cwd=repo.workdir, env=env)

    for heading, script in steps:
        result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=repo.workdir, env=env,
                                capture_output=True, text=True)
        assert result.returncode == 0, f"step {heading!r} failed:\n{result.stdout}\n{result.stderr}"
        if heading.startswith("2."):
            committed = run(["git", "show", "HEAD:.terraform.lock.hcl"], cwd=repo.workdir, env=env).stdout
            assert "registry.terraform.io/yellowdog/raydog" in committed and "h1:" in committed
        if heading.startswith("3."):
            assert "raydog_head.h will be created" in (repo.workdir / "plan.txt").read_text()
            assert (repo.workdir / "tfplan").is_file()

    assert set(repo.resources()) == {"raydog_cluster.c", "raydog_head.h"}
    assert changes(repo.plan_json()) == {}
    repo.destroy()
