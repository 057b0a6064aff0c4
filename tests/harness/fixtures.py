"""Pytest fixtures for tests that drive real Terraform against the sandbox."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.terraform import Terraform, write_cli_config


@pytest.fixture(scope="session")
def provider_mirror(tmp_path_factory) -> Path:
    """The provider installed with `raydog install --dir`, exactly as the README tells users."""
    mirror = tmp_path_factory.mktemp("mirror")
    subprocess.run(
        [sys.executable, "-m", "raydog.cli", "install", "--dir", str(mirror)],
        check=True,
        capture_output=True,
        text=True,
    )
    return mirror


@pytest.fixture(scope="session")
def terraform_env(provider_mirror, tmp_path_factory) -> dict[str, str]:
    """Environment for Terraform: the mirror's CLI config, no checkpoint calls, no colour."""
    home = tmp_path_factory.mktemp("tfhome")
    cli_config = write_cli_config(home / "terraformrc", provider_mirror)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TF_", "YD_")) and k not in ("CHECKPOINT_DISABLE",)
    }
    env.update(
        TF_CLI_CONFIG_FILE=str(cli_config),
        TF_IN_AUTOMATION="1",
        CHECKPOINT_DISABLE="1",
        TF_PLUGIN_CACHE_DIR="",
        HOME=str(home),
    )
    env.pop("TF_PLUGIN_CACHE_DIR")
    return env


@pytest.fixture
def terraform(tmp_path, terraform_env, sandbox):
    """A Terraform working directory wired to the per-test sandbox through the YD_* variables."""
    env = {
        **terraform_env,
        "YD_API_URL": sandbox.url,
        "YD_API_KEY_ID": sandbox.key_id,
        "YD_API_KEY_SECRET": sandbox.key_secret,
    }
    return Terraform(tmp_path / "tf", env)


@pytest.fixture
def terraform_factory(tmp_path, terraform_env):
    """Make extra working directories: terraform_factory(name, sandbox=..., **env)."""

    def make(name: str, sandbox=None, **extra_env) -> Terraform:
        env = dict(terraform_env)
        if sandbox is not None:
            env.update(YD_API_URL=sandbox.url, YD_API_KEY_ID=sandbox.key_id, YD_API_KEY_SECRET=sandbox.key_secret)
        env.update(extra_env)
        return Terraform(tmp_path / name, env)

    return make


def skip_without_exec_nodes() -> None:
    """Skip the test where the sandbox cannot run exec-mode nodes (no namespaces), saying why."""
    from raydog_sandbox.nodes.exec_runtime import ExecCapabilityError, check_exec_capability

    try:
        check_exec_capability()
    except ExecCapabilityError as exc:
        pytest.skip(str(exc))
