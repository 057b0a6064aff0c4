"""Fixtures shared by the end-to-end tests that run real Ray on exec-mode nodes."""

from __future__ import annotations

import pytest
from harness.fixtures import skip_without_exec_nodes


@pytest.fixture
def exec_sandbox(sandbox_factory, tmp_path):
    """An exec-mode sandbox whose nodes each have their own network; skips (a failure on CI)
    where this machine cannot make the namespaces."""
    from raydog_sandbox.nodes.network import probe_network

    skip_without_exec_nodes()
    if probe_network() is not None:
        pytest.skip(probe_network())
    return sandbox_factory(mode="exec", data_dir=str(tmp_path / "nodes"))
