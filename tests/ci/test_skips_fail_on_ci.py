"""On CI a skipped test fails the run; locally it stays a skip (tests/conftest.py).

A small pytest session runs in a subprocess with the suite's own tests/conftest.py loaded
as a plugin, once with CI=true and once without CI, and its JUnit XML says what became of
each kind of skip.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]

SKIPS = {
    "test_skips.py": """
        import pytest

        def test_passes():
            pass

        def test_calls_skip():
            pytest.skip("no OpenSSH server here")

        @pytest.mark.skipif(True, reason="exec mode cannot create namespaces here")
        def test_marked_skipif():
            pass

        def test_imports_or_skips():
            pytest.importorskip("raydog_no_such_module", reason="Ray is not installed here")

        @pytest.mark.xfail(reason="a known bug", strict=True)
        def test_expected_failure():
            assert False
    """,
    "test_module_skip.py": """
        import pytest

        pytest.importorskip("raydog_no_such_module", reason="the whole module needs a missing part")

        def test_never_collected():
            pass
    """,
}


def run_session(tmp_path: Path, ci: str | None) -> tuple[int, dict[str, tuple[str, str]]]:
    """Run SKIPS with tests/conftest.py; returns pytest's exit code and name -> (outcome, message)."""
    for name, text in SKIPS.items():
        (tmp_path / name).write_text(textwrap.dedent(text))
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    junit = tmp_path / f"junit-{ci}.xml"
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS")}
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    if ci is not None:
        env["CI"] = ci
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "conftest", "-p", "no:cacheprovider",
         "-c", str(tmp_path / "pytest.ini"), "--continue-on-collection-errors",
         f"--junitxml={junit}", str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert junit.exists(), proc.stdout + proc.stderr
    outcomes = {}
    for case in ET.parse(junit).iter("testcase"):
        name = case.get("name") or case.get("classname")
        found = [child for child in case if child.tag in ("failure", "error", "skipped")]
        outcome = found[0].tag if found else "passed"
        message = (found[0].get("message") or "") + (found[0].text or "") if found else ""
        outcomes[name] = (outcome, message)
    return proc.returncode, outcomes


def test_locally_skips_stay_skips(tmp_path):
    code, outcomes = run_session(tmp_path, ci=None)

    assert code == 0, outcomes
    assert {name: outcome for name, (outcome, _) in outcomes.items()} == {
        "test_passes": "passed",
        "test_calls_skip": "skipped",
        "test_marked_skipif": "skipped",
        "test_imports_or_skips": "skipped",
        "test_expected_failure": "skipped",  # JUnit has no xfail: pytest writes it as skipped
        "test_module_skip": "skipped",
    }


def test_on_ci_every_skip_fails_with_its_reason(tmp_path):
    code, outcomes = run_session(tmp_path, ci="true")

    assert code == 1, outcomes
    failed = {name: text for name, (outcome, text) in outcomes.items() if outcome in ("failure", "error")}
    assert set(failed) == {
        "test_calls_skip", "test_marked_skipif", "test_imports_or_skips", "test_module_skip"}
    for name, reason in [
        ("test_calls_skip", "no OpenSSH server here"),
        ("test_marked_skipif", "exec mode cannot create namespaces here"),
        ("test_imports_or_skips", "Ray is not installed here"),
        ("test_module_skip", "the whole module needs a missing part"),
    ]:
        assert "skipped on CI (CI=true)" in failed[name] and reason in failed[name], (name, failed[name])
    assert "test_skips.py:8)" in failed["test_calls_skip"], "the message says where the skip was raised"
    assert "test_module_skip.py:4)" in failed["test_module_skip"]
    assert outcomes["test_passes"][0] == "passed"
    assert outcomes["test_expected_failure"][0] == "skipped", "an expected failure is not a skip"


def test_ci_values_other_than_true_leave_skips_alone(tmp_path):
    code, outcomes = run_session(tmp_path, ci="false")

    assert code == 0 and outcomes["test_calls_skip"][0] == "skipped", outcomes
