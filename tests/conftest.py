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


# The suites whose sandboxes are strict by default: what the provider does must not rely on
# sandbox leniency the real platform may not have (docs/sandbox.md, "Strict mode").
STRICT_SUITES = ("provider", "module", "reliability")


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
