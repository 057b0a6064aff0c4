"""A builder program runs a real Ray job: the sandbox in exec mode runs every node's script.

Needs namespaces (root or user namespaces) and Ray. Exec-mode nodes share the machine's
network (node IPs from 127.0.1.1, the head's fixed ports), so this test runs alone: in the
other exec tests' xdist group, and not beside another exec-mode sandbox on the machine.
"""

from __future__ import annotations

import pytest
from builder_helpers import nothing_live
from test_builder_examples import run_example
from harness.fixtures import skip_without_exec_nodes

pytestmark = [pytest.mark.exec, pytest.mark.xdist_group("exec")]


@pytest.fixture
def exec_sandbox(sandbox_factory, tmp_path):
    skip_without_exec_nodes()
    return sandbox_factory(mode="exec", data_dir=str(tmp_path / "nodes"))


def test_ray_job_example_builds_runs_pi_on_the_workers_and_shuts_down(exec_sandbox, tmp_path):
    proc = run_example("ray_job.py", exec_sandbox, tmp_path, CLUSTER_NAME="ray-job")
    result = next(line for line in proc.stdout.splitlines() if line.startswith("pi ~= "))
    estimate = float(result.split("pi ~= ")[1].split(",")[0])
    assert abs(estimate - 3.14159) < 0.05, result
    assert "alive Ray nodes = 3" in result, result
    assert len(result.split("tasks ran on ")[1].split(", ")) == 2, "tasks spread over both workers"
    assert proc.stdout.rstrip().endswith("cluster shut down")
    assert nothing_live(exec_sandbox), exec_sandbox.state()["live"]
