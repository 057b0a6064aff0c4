"""Fixtures for the module and example tests (helpers in hcl_tree.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from harness.terraform import Terraform
from hcl_tree import copy_tree


@pytest.fixture
def hcl_tree(tmp_path) -> Path:
    """A fresh copy of terraform/ and examples/ for this test."""
    return copy_tree(tmp_path / "repo")


@pytest.fixture
def in_tree(hcl_tree, terraform_env, sandbox):
    """in_tree("examples/quickstart"): a Terraform working directory in the copy, wired to the sandbox."""

    def make(relative: str, with_sandbox: bool = True) -> Terraform:
        env = dict(terraform_env)
        if with_sandbox:
            env.update(YD_API_URL=sandbox.url, YD_API_KEY_ID=sandbox.key_id, YD_API_KEY_SECRET=sandbox.key_secret)
        return Terraform(hcl_tree / relative, env)

    return make
