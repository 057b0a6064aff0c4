"""Shared pytest fixtures.

Sandbox: ``sandbox`` is a fresh in-process ``raydog sandbox`` (simulate mode, no delays)
for one test, stopped afterwards; options come from ``@pytest.mark.sandbox(**kwargs)``
(any keyword of ``raydog_sandbox.server.start_sandbox``). ``sandbox_factory(**kwargs)``
starts more; every sandbox it started is stopped at teardown. A sandbox has ``.url``,
``.key_id`` and ``.key_secret`` for the SDK or the provider, and ``.state()``.

Terraform: ``terraform`` is a working directory wired to this test's sandbox, with the
provider installed by ``raydog install`` into a session-wide filesystem mirror;
``terraform_factory(name, sandbox=...)`` makes more.
"""

from __future__ import annotations

import pytest
from raydog_sandbox.server import RunningSandbox, start_sandbox

# Real Terraform against the installed provider (see tests/harness/).
from harness.fixtures import provider_mirror, terraform, terraform_env, terraform_factory  # noqa: F401


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sandbox(**kwargs): start_sandbox options for the sandbox fixture")


@pytest.fixture
def sandbox_factory():
    """Start sandboxes with start_sandbox(**kwargs); all are stopped at teardown."""
    started: list[RunningSandbox] = []

    def start(**kwargs) -> RunningSandbox:
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
