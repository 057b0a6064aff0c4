"""Fixtures for the tests of the provider's YellowDog client layer: ``platform``, a YellowDogClient on the test's sandbox."""

from __future__ import annotations

import pytest
from raydog.yellowdog import YellowDogClient


@pytest.fixture
def platform(sandbox):
    client = YellowDogClient.connect(sandbox.url, sandbox.key_id, sandbox.key_secret)
    yield client
    sandbox.set_faults(None)
    client.close()
