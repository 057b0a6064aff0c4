"""The plan's reads without the SDK (raydog.yellowdog.rest): the same answers as the SDK path,
the same errors, and no yellowdog_client import."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import timedelta

import pytest

from raydog.yellowdog import NotAuthorisedError, PlatformError, PoolSpec, policy
from raydog.yellowdog.rest import RestReader

NS = "raydog-rest"


@pytest.fixture
def reader(sandbox):
    return RestReader(sandbox.url, sandbox.key_id, sandbox.key_secret)


def test_templates_resolve_by_name_and_by_id_like_the_sdk_path(reader, platform):
    template_id = reader.resolve_template("sandbox/ray-worker")

    assert template_id is not None and template_id.startswith("ydid:")
    assert template_id == platform.resolve_template("sandbox/ray-worker")
    assert reader.resolve_template(template_id) == template_id


@pytest.mark.parametrize("reference", ["sandbox/no-such-template", "ydid:crt:000000:no-such", "no-namespace"])
def test_an_unknown_template_is_none_like_the_sdk_path(reader, platform, reference):
    assert reader.resolve_template(reference) is None
    assert platform.resolve_template(reference) is None


def test_a_pool_name_is_used_once_a_pool_has_it_even_after_it_finished(reader, platform):
    name = f"p-{uuid.uuid4().hex[:10]}"
    assert not reader.pool_name_used(NS, name)

    pool = platform.provision_pool(PoolSpec(
        namespace=NS, name=name, template_id="sandbox/ray-worker", images_id=None, userdata="#!/bin/bash\ntrue",
        instance_tags={}, metrics_enabled=False, node_count=0, worker_tag=name))
    assert reader.pool_name_used(NS, name)
    platform.remove_pool(pool.id, pool.compute_requirement_id, timeout_seconds=30)
    assert reader.pool_name_used(NS, name) == (platform.find_pool(NS, name) is not None)


def test_a_wrong_key_is_not_authorised_and_never_quoted(sandbox):
    reader = RestReader(sandbox.url, sandbox.key_id, "wrong-secret-value")

    with pytest.raises(NotAuthorisedError) as caught:
        reader.resolve_template("sandbox/ray-worker")

    assert caught.value.status == 401
    assert "wrong-secret-value" not in str(caught.value)


def test_server_errors_are_retried_then_reported_with_the_operation(sandbox, reader, monkeypatch):
    monkeypatch.setattr(policy, "INITIAL_BACKOFF", timedelta(0))
    sandbox.reset_requests()
    sandbox.set_faults("5xx=1")

    with pytest.raises(PlatformError) as caught:
        reader.resolve_template("sandbox/ray-worker")

    sandbox.set_faults(None)
    assert caught.value.status >= 500 and caught.value.transient
    assert "read compute requirement template" in str(caught.value)
    assert sandbox.requests()["total"] == policy.ATTEMPTS


def test_the_reader_never_imports_the_sdk(sandbox):
    code = ("import sys\nfrom raydog.yellowdog.rest import RestReader\n"
            f"reader = RestReader({sandbox.url!r}, {sandbox.key_id!r}, sys.stdin.readline().strip())\n"
            "assert reader.resolve_template('sandbox/ray-worker')\n"
            "assert not reader.pool_name_used('raydog-rest', 'never-made')\n"
            "print(sorted(m for m in sys.modules if m.startswith('yellowdog_client')))\n")
    result = subprocess.run([sys.executable, "-c", code], input=sandbox.key_secret + "\n",
                            capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
