"""The `raydog sandbox` command (which runs `python -m raydog_sandbox`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
import requests

RAYDOG_SANDBOX = [sys.executable, "-m", "raydog.cli", "sandbox"]
PYTHON_M = [sys.executable, "-m", "raydog_sandbox"]


def start(*args: str, command: list[str] = RAYDOG_SANDBOX, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([*command, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})


def test_port_zero_prints_the_url_first_and_sigterm_stops_cleanly():
    process = start("--port", "0", "--provision-delay", "0",
                    env={"RAYDOG_SANDBOX_API_KEY_ID": "ci", "RAYDOG_SANDBOX_API_KEY_SECRET": "secret"})
    try:
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        assert requests.get(url + "/sandbox/v1/health", timeout=5).json() == {"status": "ok"}
        auth = {"Authorization": "yd-key ci:secret"}
        assert requests.get(url + "/workerPools/", params={"sliced": "true"}, headers=auth, timeout=5).json() == \
            {"items": []}
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)
    assert process.returncode == 0
    assert "accepts API keys: ci (secrets not shown)" in stderr and "ci:secret" not in stderr


@pytest.mark.parametrize("command", [RAYDOG_SANDBOX, PYTHON_M], ids=["raydog sandbox", "python -m raydog_sandbox"])
def test_a_bad_fault_spec_exits_with_a_clear_error(command):
    process = start("--port", "0", "--faults", "5xx=2", command=command)
    stdout, stderr = process.communicate(timeout=20)
    assert process.returncode == 2 and stdout == ""
    assert "fault 5xx=2: the rate must be between 0 and 1" in stderr
