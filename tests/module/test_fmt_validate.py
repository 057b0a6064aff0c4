"""`terraform fmt -check` and `terraform validate` of the module and every example."""

from __future__ import annotations

import pytest
from harness.terraform import REPO, Terraform
from hcl_tree import MODULE, copy_tree, example_names


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return copy_tree(tmp_path_factory.mktemp("repo"))


def test_hcl_is_terraform_fmt_clean(terraform_env):
    tf = Terraform(REPO, terraform_env)
    # -check only reads; -recursive covers the module, its tests and every example.
    result = tf.run("fmt", "-check", "-recursive", "-diff", "-no-color", "terraform", "examples", check=False)
    assert result.returncode == 0, f"not terraform fmt clean:\n{result.output}"


@pytest.mark.parametrize("directory", [str(MODULE), *(f"examples/{name}" for name in example_names())])
def test_configuration_validates(tree, terraform_env, directory):
    tf = Terraform(tree / directory, terraform_env)
    tf.init()
    result = tf.run("validate", "-no-color", check=False)
    assert result.returncode == 0, result.output
    assert "Warning" not in result.output, result.output
