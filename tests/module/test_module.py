"""The raydog module's own tests (`terraform test`) against a fresh sandbox."""

from __future__ import annotations

import re

from harness.terraform import REPO
from hcl_tree import MODULE


def test_module_terraform_test_passes_against_the_sandbox(in_tree, sandbox):
    tf = in_tree(str(MODULE))
    tf.init()

    result = tf.run("test", "-no-color", check=False, timeout=300)

    assert result.returncode == 0, result.output
    runs = re.findall(r'^  run "[^"]+"\.\.\. (\w+)', result.stdout, re.MULTILINE)
    assert runs and set(runs) == {"pass"}, result.output  # none failed, none skipped
    assert f"Success! {len(runs)} passed, 0 failed" in result.output
    live = sandbox.state()["live"]
    assert not any(live.values()), f"terraform test left objects live: {live}"


def test_every_validated_variable_has_a_failing_case():
    variables = (REPO / MODULE / "variables.tf").read_text()
    blocks = dict(re.findall(r'^variable "(\w+)" \{\n(.*?)^\}', variables, re.MULTILINE | re.DOTALL))
    validated = {name for name, body in blocks.items() if "validation {" in body}
    cases = (REPO / MODULE / "tests" / "validation.tftest.hcl").read_text()
    expected = set(re.findall(r"expect_failures = \[var\.(\w+)\]", cases))

    assert validated - expected == set(), "validated variables without a plan-only failing case"
    assert len(re.findall(r"expect_failures", cases)) >= variables.count("validation {"), "a case per rule"
