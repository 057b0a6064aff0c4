"""Fixtures for the builder's tests: one sandbox per module, and a clean Terraform home.

The builder runs Terraform itself and installs the provider on first use into Terraform's
implied local mirror under $HOME, so these tests give it a fresh HOME (and no TF_* or YD_*
settings from outside): the install is exercised exactly as a user meets it.
"""

from __future__ import annotations

import os

import pytest
from raydog_sandbox.server import start_sandbox


@pytest.fixture(scope="session", autouse=True)
def builder_home(tmp_path_factory):
    """A HOME without a Terraform mirror or CLI config; the builder installs the provider into it."""
    home = tmp_path_factory.mktemp("builder-home")
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith(("TF_", "YD_")) or name == "CHECKPOINT_DISABLE":
                mp.delenv(name)
        mp.setenv("HOME", str(home))
        yield home


@pytest.fixture(scope="module")
def shared_sandbox():
    """One simulate-mode sandbox for every test of a module (clusters have distinct names)."""
    running = start_sandbox()
    yield running
    running.stop()
