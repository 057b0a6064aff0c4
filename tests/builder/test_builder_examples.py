"""The programs in examples/builder run unchanged against the sandbox.

Simulate mode here; ``ray_job.py`` runs a real Ray job in exec mode (test_exec.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from builder_helpers import live_pool_ids, live_work_requirement_ids

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "builder"


def run_example(program: str, sandbox, cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "YD_API_URL": sandbox.url, "YD_API_KEY_ID": sandbox.key_id,
                   "YD_API_KEY_SECRET": sandbox.key_secret, **env}
    proc = subprocess.run([sys.executable, str(EXAMPLES / program), *args], cwd=cwd, env=environment, check=False,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_build_and_scale_then_the_proxy_program_shuts_the_cluster_down(shared_sandbox, tmp_path):
    built = run_example("build_and_scale.py", shared_sandbox, tmp_path, CLUSTER_NAME="example-two", KEEP_CLUSTER="1")
    assert "added worker pool 'extra': ydid:wrkrpool:" in built.stdout
    assert "worker pools now: ['worker-nodes-01']" in built.stdout
    saved = json.loads((tmp_path / "cluster-state.json").read_text())
    assert saved["terraform_dir"] == str(tmp_path / "raydog-clusters" / "example-two")
    assert set(saved["worker_pool_ids"]) <= live_pool_ids(shared_sandbox)

    proc = run_example("shut_down_saved.py", shared_sandbox, tmp_path, "cluster-state.json")
    assert "[raydog example-two] shut down in" in proc.stdout
    assert not set(saved["worker_pool_ids"]) & live_pool_ids(shared_sandbox)
    assert saved["work_requirement_id"] not in live_work_requirement_ids(shared_sandbox)
