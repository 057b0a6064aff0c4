"""Shared pytest fixtures.

Sandbox: ``sandbox`` is a fresh in-process ``raydog sandbox`` (simulate mode, no delays)
for one test, stopped afterwards; options come from ``@pytest.mark.sandbox(**kwargs)``
(any keyword of ``raydog_sandbox.server.start_sandbox``). ``sandbox_factory(**kwargs)``
starts more; every sandbox it started is stopped at teardown. Sandboxes of the provider,
module and reliability suites are strict (``--strict``) unless a test asks for
``strict=False`` (the lenient smoke set); ``RAYDOG_TEST_STRICT=0`` or ``=1`` sets it for all. A sandbox has ``.url``,
``.key_id`` and ``.key_secret`` for the SDK or the provider, and ``.state()``.

Terraform: ``terraform`` is a working directory wired to this test's sandbox, with the
provider installed by ``raydog install`` into a session-wide filesystem mirror;
``terraform_factory(name, sandbox=...)`` makes more.

Skips on CI: when the environment variable CI is "true" (.ci/run sets it), a test that
skips (``pytest.skip``, a ``skipif`` mark, ``pytest.importorskip``, at run or collection
time) fails instead, with the skip's reason: a skip there means a part the suite needs
(exec-mode namespaces, sshd, Ray) is missing, and the run must not look green. Locally a
skip stays a skip. Expected failures (xfail) are not skips and are left alone.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Real Terraform against the installed provider (see tests/harness/).
from harness.fixtures import provider_mirror, terraform, terraform_env, terraform_factory  # noqa: F401
from raydog_sandbox.server import RunningSandbox, start_sandbox


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sandbox(**kwargs): start_sandbox options for the sandbox fixture")


def on_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def _fail_skip(report: pytest.TestReport | pytest.CollectReport) -> None:
    """Turn a skipped report into a failure that gives the skip's reason and where it was raised."""
    if isinstance(report.longrepr, tuple):  # (path, 1-based line, "Skipped: reason")
        path, line, reason = report.longrepr
        where = f" ({path}:{line})"
    else:
        reason, where = str(report.longrepr), ""
    report.outcome = "failed"
    report.longrepr = f"skipped on CI (CI=true), which fails the run: {reason}{where}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    if on_ci() and report.skipped and not hasattr(report, "wasxfail"):
        _fail_skip(report)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):
    """A module that skips as a whole (``importorskip``, ``skip(allow_module_level=True)``)."""
    outcome = yield
    report = outcome.get_result()
    if on_ci() and report.skipped:
        _fail_skip(report)


# The suites whose sandboxes are strict by default: what the provider does must not rely on
# sandbox leniency the real platform may not have (docs/sandbox.md, "Strict mode").
STRICT_SUITES = ("provider", "yellowdog", "module", "reliability")


def strict_by_default(request: pytest.FixtureRequest) -> bool:
    forced = os.environ.get("RAYDOG_TEST_STRICT")
    if forced in ("0", "1"):
        return forced == "1"
    return Path(str(request.node.path)).parent.name in STRICT_SUITES


@pytest.fixture
def sandbox_factory(request: pytest.FixtureRequest):
    """Start sandboxes with start_sandbox(**kwargs); all are stopped at teardown."""
    started: list[RunningSandbox] = []
    strict = strict_by_default(request)

    def start(**kwargs) -> RunningSandbox:
        kwargs.setdefault("strict", strict)
        running = start_sandbox(**kwargs)
        started.append(running)
        return running

    yield start
    for running in reversed(started):
        running.stop()


@pytest.fixture
def sandbox(request: pytest.FixtureRequest, sandbox_factory) -> RunningSandbox:
    """A fresh sandbox for this test; @pytest.mark.sandbox(...) passes options."""
    marker = request.node.get_closest_marker("sandbox")
    return sandbox_factory(**(marker.kwargs if marker else {}))
