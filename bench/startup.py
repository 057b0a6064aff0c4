"""Provider start: from launch to the go-plugin handshake line, and to the first schema answered.

Terraform starts the provider 3-5 times per command, so every millisecond here is paid
several times over. Each sample launches the installed provider exactly as Terraform
does (the filesystem mirror's launcher, with the bench's HOME so the TLS certificate
cache is warm), times the handshake line on stdout, then connects over the handshake's
unix socket with its TLS certificate and times GetProviderSchema, the first call of
Terraform's schema launch; a second series times ValidateResourceConfig of a cluster, the
first call of its validation launch. One unmeasured launch first warms the certificate
cache and the page cache.

These series are *cold* launches (``RAYDOG_PROVIDER_FORK_SERVER=0``): what the first launch
of every Terraform command costs. The *warm* series times the later launches of a command,
which the provider's fork server (raydog.launcher) serves from a warm copy of itself: the
bench process stands in for Terraform, one unmeasured launch starts its fork server, and the
samples follow once it is ready.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import threading
import time

from raydog.packaging import smoke

from bench.env import BenchEnv, fork_servers, reap_fork_servers

FORK_SERVER_SWITCH = "RAYDOG_PROVIDER_FORK_SERVER"
FORK_SERVER_READY_SECONDS = 2.0  # its load and its warmer's, on a quiet machine ~0.5 s


CALLS = {"schema": smoke.get_provider_schema, "validate": smoke.validate_cluster}


def launch_once(env: BenchEnv, call: str | None = "schema", timeout: float = 30.0, cold: bool = True) -> dict:
    """One provider launch: milliseconds to the handshake line and (if asked) to the answer of
    its first call, ``schema`` (GetProviderSchema) or ``validate`` (ValidateResourceConfig)."""
    launcher = str(env.launcher())
    environ = {**env.env, FORK_SERVER_SWITCH: "0"} if cold else env.env
    started = time.perf_counter()
    proc = subprocess.Popen(
        [launcher], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=environ, start_new_session=True
    )
    line: dict[str, bytes] = {}
    reader = threading.Thread(target=lambda: line.setdefault("text", proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    handshake = time.perf_counter()
    sample = {"handshake_ms": round((handshake - started) * 1000, 1)}
    try:
        with smoke.connected(line.get("text", b"")) as channel:
            if call is not None:
                CALLS[call](channel)
                sample[f"{call}_ms"] = round((time.perf_counter() - started) * 1000, 1)
    finally:
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        proc.stdout.close()
    return sample


def _stats(values: list[float]) -> dict:
    ordered = sorted(values)
    return {
        "median": round(statistics.median(ordered), 1),
        "min": ordered[0],
        "max": ordered[-1],
        "p90": ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))],
    }


def run(env: BenchEnv, samples: int = 20) -> dict:
    launch_once(env)  # warm: certificate cache, page cache, .pyc files
    runs = [launch_once(env) for _ in range(samples)]
    validations = [launch_once(env, "validate") for _ in range(samples)]
    return {
        "samples": samples,
        "handshake_ms": _stats([r["handshake_ms"] for r in runs + validations]),
        "schema_ms": _stats([r["schema_ms"] for r in runs]),
        "validate_ms": _stats([r["validate_ms"] for r in validations]),
        "runs": runs,
        "validate_runs": validations,
        "warm": _warm(env, samples),
    }


def _warm(env: BenchEnv, samples: int) -> dict:
    """The same calls from launches the fork server serves (this process is their Terraform)."""
    launch_once(env, cold=False)  # starts the fork server
    time.sleep(FORK_SERVER_READY_SECONDS)
    try:
        runs = [launch_once(env, cold=False) for _ in range(samples)]
        validations = [launch_once(env, "validate", cold=False) for _ in range(samples)]
    finally:
        for server in fork_servers(os.getpid()):
            server.terminate()
        reap_fork_servers(os.getpid())
    return {
        "handshake_ms": _stats([r["handshake_ms"] for r in runs + validations]),
        "schema_ms": _stats([r["schema_ms"] for r in runs]),
        "validate_ms": _stats([r["validate_ms"] for r in validations]),
    }
