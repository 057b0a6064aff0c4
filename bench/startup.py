"""Provider start: from launch to the go-plugin handshake line, and to the first schema answered.

Terraform starts the provider 3-5 times per command, so every millisecond here is paid
several times over. Each sample launches the installed provider exactly as Terraform
does (the filesystem mirror's launcher, with the bench's HOME so the TLS certificate
cache is warm), times the handshake line on stdout, then connects over the handshake's
unix socket with its TLS certificate and times GetProviderSchema, which Terraform calls
first in every launch. One unmeasured launch first warms the certificate cache and the
page cache.
"""

from __future__ import annotations

import base64
import os
import signal
import statistics
import subprocess
import threading
import time

from bench.env import BenchEnv


def _pem(der_b64: str) -> bytes:
    der = base64.b64decode(der_b64 + "=" * (-len(der_b64) % 4))
    body = base64.encodebytes(der).decode().replace("\n", "")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return ("-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n").encode()


def _get_schema(socket_path: str, cert_b64: str) -> None:
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")  # not the GOAWAY notice of every provider's exit
    import grpc
    from tf.gen import grpc_controller_pb2 as controller_pb
    from tf.gen import grpc_controller_pb2_grpc as controller_rpc
    from tf.gen import tfplugin_pb2 as pb
    from tf.gen import tfplugin_pb2_grpc as rpc

    credentials = grpc.ssl_channel_credentials(root_certificates=_pem(cert_b64))
    options = [("grpc.ssl_target_name_override", "localhost"), ("grpc.default_authority", "localhost")]
    with grpc.secure_channel(f"unix:{socket_path}", credentials, options=options) as channel:
        response = rpc.ProviderStub(channel).GetProviderSchema(pb.GetProviderSchema.Request(), timeout=30)
        if not response.resource_schemas:
            raise RuntimeError("the provider answered GetProviderSchema without resource schemas")
        try:
            controller_rpc.GRPCControllerStub(channel).Shutdown(controller_pb.Empty(), timeout=5)
        except grpc.RpcError:
            pass  # the provider may close the connection as it stops


def launch_once(env: BenchEnv, schema: bool = True, timeout: float = 30.0) -> dict:
    """One provider launch: milliseconds to the handshake line and (if asked) to the schema."""
    launcher = str(env.launcher())
    started = time.perf_counter()
    proc = subprocess.Popen(
        [launcher], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env.env, start_new_session=True
    )
    line: dict[str, bytes] = {}
    reader = threading.Thread(target=lambda: line.setdefault("text", proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    handshake = time.perf_counter()
    sample = {"handshake_ms": round((handshake - started) * 1000, 1)}
    try:
        parts = line.get("text", b"").decode().strip().split("|")
        if len(parts) != 6 or parts[0] != "1" or parts[1] != "6":
            raise RuntimeError(f"unexpected handshake line from the provider: {line.get('text')!r}")
        if schema:
            _get_schema(parts[3], parts[5])
            sample["schema_ms"] = round((time.perf_counter() - started) * 1000, 1)
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
    return {
        "samples": samples,
        "handshake_ms": _stats([r["handshake_ms"] for r in runs]),
        "schema_ms": _stats([r["schema_ms"] for r in runs]),
        "runs": runs,
    }
