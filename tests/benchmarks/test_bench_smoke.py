"""`make bench` still works: a reduced run (``python -m bench --smoke``) writes valid results.

It drives real Terraform against a sandbox process, so it takes tens of seconds. It checks
that every measurement ran and that the JSON has the documented shape; it asserts no
timings (speed is measured by `make bench`, not by tests).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
STEPS = ("apply", "plan", "update", "destroy")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path_factory.mktemp("bench-results")
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(out)],
        cwd=REPO,
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, (
        f"python -m bench --smoke failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    )
    files = sorted(out.glob("bench-smoke-*.json"))
    assert len(files) == 1 and (out / "latest-smoke.json").read_text() == files[0].read_text()
    return proc, json.loads(files[0].read_text())


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0


def test_smoke_run_writes_every_measurement(smoke):
    _, results = smoke
    assert results["schema"] == 1 and results["smoke"] is True
    assert "errors" not in results
    assert {
        "scale",
        "requests_per_pool",
        "node_scaling",
        "head_ready",
        "provider_start",
        "exec",
        "targets",
    } <= set(results)


def test_scale_steps_have_times_requests_and_provider_figures(smoke):
    _, results = smoke
    [run] = results["scale"]
    for step in STEPS:
        data = run["steps"][step]
        assert is_number(data["seconds"]) and is_number(data["cpu_seconds"])
        assert data["provider_launches"] >= 1 and is_number(data["provider_peak_rss_mb"])
        assert data["requests"]["total"] == sum(data["requests"]["routes"].values()) > 0
        assert is_number(run["floor"]["steps"][step]["seconds"]) and is_number(run["floor_ratio"][step])
    assert all(is_number(results["requests_per_pool"][step]) for step in STEPS)


def test_latency_and_start_figures_are_numbers(smoke):
    _, results = smoke
    head = results["head_ready"]
    assert all(is_number(head[key]) for key in ("apply_seconds", "apply_seconds_no_delay"))
    assert isinstance(head["overhead_seconds"], float) and isinstance(head["detection_seconds"], float)
    start = results["provider_start"]
    assert len(start["runs"]) == start["samples"] >= 1
    assert all(
        is_number(start[kind][stat])
        for kind in ("handshake_ms", "schema_ms", "validate_ms") for stat in ("median", "p90")
    )
    assert results["exec"]["status"] == "skipped" and results["exec"]["reason"]


def test_targets_are_evaluated_and_the_table_printed(smoke):
    proc, results = smoke
    keys = {row["key"] for row in results["targets"]}
    assert {"apply_100_seconds", "create_requests_per_pool", "provider_start_median_ms"} <= keys
    assert all(row["met"] in (True, False, None) for row in results["targets"])
    assert "target" in proc.stdout and "API requests per worker pool" in proc.stdout
