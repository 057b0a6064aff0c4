"""Ctrl-C during an apply: Terraform asks the provider to stop, and nothing created is lost."""

from __future__ import annotations

import os
import signal
import time

import pytest

from harness.platform_view import view

HEAD_CONFIG = """
provider "raydog" {}

resource "raydog_cluster" "c" {
  name      = "intr"
  namespace = "tests"
}

resource "raydog_head" "h" {
  cluster_id                      = raydog_cluster.c.id
  cluster_name                    = raydog_cluster.c.name
  compute_requirement_template_id = "sandbox/ray-head"
  timeouts {
    create = "10m"
  }
}
"""


def wait_for(probe, what: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.sandbox(provision_delay=600.0)
def test_ctrl_c_during_a_long_head_wait_ends_promptly_and_records_the_head(terraform, sandbox):
    terraform.write(HEAD_CONFIG)
    terraform.init()
    proc = terraform.popen("apply", "-auto-approve", "-input=false", "-no-color")
    wait_for(lambda: "intr-head" in view(sandbox).live_pools(), "the head pool to be provisioned")
    time.sleep(1.0)  # the provider is now polling for the head task

    interrupted = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    stdout, stderr = proc.communicate(timeout=60)
    stopped_after = time.monotonic() - interrupted

    assert proc.returncode != 0
    assert "Interrupted" in stdout + stderr, stdout + stderr
    assert stopped_after < 30, f"terraform took {stopped_after:.1f}s to stop"
    state = terraform.resources()
    head_pool = view(sandbox).live_pools()["intr-head"]
    assert state["raydog_head.h"]["id"] == head_pool["id"], "the head's pool must be in state (tainted)"
    tainted = [r for r in terraform.state()["values"]["root_module"]["resources"] if r.get("tainted")]
    assert [r["address"] for r in tainted] == ["raydog_head.h"]

    # The next apply replaces the tainted head (its old pool is removed); nothing is orphaned.
    sandbox.platform.provision_delay = 0.0
    terraform.apply()
    pools = view(sandbox).live_pools()
    assert list(pools) == ["intr-head"] and pools["intr-head"]["id"] != head_pool["id"]
    assert terraform.plan_exitcode().returncode == 0
    terraform.destroy()
    assert view(sandbox).nothing_live(), view(sandbox).live
