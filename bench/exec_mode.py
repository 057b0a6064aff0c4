"""Exec mode: from ``terraform apply`` of examples/quickstart to every Ray node alive.

The sandbox runs in exec mode (each node an isolated local node running the built-in
scripts, so Ray really starts), and the quickstart (a head and two one-node worker
pools through the raydog module) is applied unchanged except for the module's path.
The clock starts when ``apply`` is launched and stops when the head's Ray dashboard
reports all three nodes ALIVE. Skipped, with the reason, where exec mode cannot run.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from pathlib import Path

from bench import REPO
from bench.env import BenchEnv, SandboxProcess, destroy, init, timed

EXPECTED_NODES = 3  # head + alpha + beta


def unavailable() -> str | None:
    """Why exec mode cannot run here, or None when it can."""
    try:
        from raydog_sandbox.nodes.exec_runtime import ExecCapabilityError, check_exec_capability
    except ImportError as error:
        return f"the sandbox's exec runtime (raydog_sandbox.nodes.exec_runtime) is not available: {error}"
    try:
        check_exec_capability()
    except ExecCapabilityError as error:
        return str(error)
    return None


def alive_ray_nodes(dashboard_url: str) -> int | None:
    """ALIVE nodes as the head's dashboard (state API) reports them; None while it does not answer."""
    try:
        with urllib.request.urlopen(f"{dashboard_url}/api/v0/nodes?limit=1000", timeout=5) as response:
            body = json.loads(response.read())
    except (OSError, ValueError):
        return None
    rows = ((body.get("data") or {}).get("result") or {}).get("result") or []
    return sum(1 for row in rows if row.get("state") == "ALIVE")


def run(env: BenchEnv, tree: Path = REPO, timeout: float = 300.0) -> dict:
    """Apply ``tree``'s examples/quickstart with ``tree``'s module (the repository, or a checkout)."""
    reason = unavailable()
    if reason is not None:
        return {"status": "skipped", "reason": reason}
    with SandboxProcess(mode="exec", data_dir=env.root / "exec-nodes") as sandbox:
        tf = env.workdir("exec-quickstart", sandbox)
        text = (tree / "examples" / "quickstart" / "main.tf").read_text()
        module = tree / "terraform" / "modules" / "raydog"
        text = re.sub(r'source\s*=\s*"[^"]*modules/raydog"', f'source = "{module}"', text)
        (tf.workdir / "main.tf").write_text(text)
        init(tf)
        started = time.perf_counter()
        applied = timed(tf, "apply", "-auto-approve", "-input=false", "-no-color", timeout=timeout)
        dashboard = tf.outputs().get("dashboard_url")
        alive, seen = None, None
        while time.perf_counter() - started < timeout:
            seen = alive_ray_nodes(dashboard)
            if seen is not None and seen >= EXPECTED_NODES:
                alive = time.perf_counter() - started
                break
            time.sleep(0.2)
        destroyed = destroy(tf)
    result = {
        "status": "ok" if alive is not None else "failed",
        "apply_seconds": round(applied.seconds, 3),
        "all_nodes_alive_seconds": None if alive is None else round(alive, 3),
        "ray_nodes_alive": seen,
        "destroy_seconds": round(destroyed.seconds, 3),
    }
    if alive is None:
        result["reason"] = (
            f"{EXPECTED_NODES} Ray nodes were not alive within {timeout:.0f}s (last count: {seen})"
        )
    return result
