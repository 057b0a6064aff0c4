"""The `raydog sandbox` command."""

from __future__ import annotations

import signal
import subprocess
import sys

import requests


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "raydog.cli", "sandbox", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_port_zero_prints_the_url_first_and_sigterm_stops_cleanly():
    process = start("--port", "0", "--api-key", "ci:secret", "--provision-delay", "0")
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
    assert "accepts API keys: ci:secret" in stderr


def test_a_bad_fault_spec_exits_with_a_clear_error():
    process = start("--port", "0", "--faults", "5xx=2")
    stdout, stderr = process.communicate(timeout=20)
    assert process.returncode == 2 and stdout == ""
    assert "fault 5xx=2: the rate must be between 0 and 1" in stderr
