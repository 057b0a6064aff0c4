"""The go-plugin server: the handshake line before the provider's code, calls held until it is
loaded, a load failure reported to Terraform, and the server's own settings. The process
tests start a real server and call it over its socket and TLS certificate, as Terraform does."""

import json
import subprocess
import sys
import textwrap
import threading

import grpc
import pytest

from raydog import go_plugin
from raydog.packaging import smoke

SERVE = """
import os
import sys
from raydog import go_plugin, plugin

def load():
    early = [m for m in ("tf", "google.protobuf", "raydog.tfcompat", "raydog.provider") if m in sys.modules]
    deferred = [m for m in go_plugin.DEFERRED_MODULES if isinstance(sys.modules.get(m), go_plugin._DeferredModule)]
    sys.stderr.write(f"at load: imported {early}, deferred {deferred}\\n")
    sys.stderr.flush()
    {body}

schema_file = os.environ.get("TEST_PREBUILT_SCHEMA")
go_plugin.serve(load, schema=open(schema_file, "rb").read() if schema_file else None)
"""


def start(tmp_path, body, **environ):
    script = SERVE.replace("{body}", textwrap.dedent(body).strip())
    return subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", **environ})


def finish(proc):
    try:
        proc.wait(timeout=30)  # a liveness bound: Shutdown ends the server loop
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.stderr.read().decode()


def test_the_handshake_comes_before_the_provider_code_which_then_answers(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    go_plugin.server_certificate()  # cached, as after a first launch (a new one is made with the framework's code)
    proc = start(tmp_path, "return plugin._load()")
    line = proc.stdout.readline()
    with smoke.connected(line) as channel:
        response = smoke.get_provider_schema(channel)
        assert "raydog_cluster" in response.resource_schemas
    stderr = finish(proc)
    assert proc.returncode == 0
    assert "at load: imported [], deferred ['asyncio', 'grpc.aio', 'google.protobuf.internal.python_message']" in stderr


def _schema_with_marker(tmp_path):
    """The provider's real schema answer with a marker in raydog_cluster's description, as
    the build would record it, in a file."""
    from raydog.provider import RaydogProvider
    from tf.provider import ProviderServicer

    response = ProviderServicer(RaydogProvider()).GetProviderSchema(None, None)
    response.resource_schemas["raydog_cluster"].block.description = "recorded by the build"
    path = tmp_path / "provider_schema.pb"
    path.write_bytes(response.SerializeToString(deterministic=True))
    return path


def _start_with_prebuilt_schema(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    go_plugin.server_certificate()  # cached, as after a first launch
    proc = start(tmp_path, "return plugin._load()", TEST_PREBUILT_SCHEMA=str(_schema_with_marker(tmp_path)))
    return proc, proc.stdout.readline()


def test_a_prebuilt_schema_is_answered_without_loading_the_provider(tmp_path, monkeypatch):
    """The first launch of every Terraform command only reads the schema and is shut down."""
    proc, line = _start_with_prebuilt_schema(tmp_path, monkeypatch)
    with smoke.connected(line) as channel:
        response = smoke.get_provider_schema(channel)
        assert response.resource_schemas["raydog_cluster"].block.description == "recorded by the build"
        stdio = channel.unary_stream(go_plugin.STDIO, request_serializer=None, response_deserializer=None)
        assert list(stdio(b"", timeout=10)) == []  # go-plugin's stdio stream: ends at once
    stderr = finish(proc)
    assert proc.returncode == 0
    assert "at load" not in stderr  # the provider's code was never loaded


def test_with_a_prebuilt_schema_the_first_call_that_needs_the_provider_loads_it(tmp_path, monkeypatch):
    proc, line = _start_with_prebuilt_schema(tmp_path, monkeypatch)
    with smoke.connected(line) as channel:
        smoke.validate_cluster(channel)
        assert smoke.get_provider_schema(channel).resource_schemas["raydog_cluster"].block.description == \
            "recorded by the build"  # still the recorded answer once the provider is loaded
    stderr = finish(proc)
    assert proc.returncode == 0 and "at load: imported []" in stderr


def test_the_prebuilt_schema_is_read_only_by_a_frozen_provider(monkeypatch, tmp_path):
    monkeypatch.delattr(sys, "frozen", raising=False)
    assert go_plugin.prebuilt_schema() is None  # a source tree's code says what its schema is
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(go_plugin, "__file__", str(tmp_path / "go_plugin.pyc"))
    assert go_plugin.prebuilt_schema() is None  # a build without one
    (tmp_path / go_plugin.PREBUILT_SCHEMA).write_bytes(b"recorded")
    assert go_plugin.prebuilt_schema() == b"recorded"


def test_a_provider_that_fails_to_load_says_why_in_every_call_and_still_shuts_down(tmp_path):
    proc = start(tmp_path, 'raise RuntimeError("tf 9.9.9 is installed, key yd-key id:s3cret-value")',
                 YD_API_KEY_SECRET="s3cret-value")
    line = proc.stdout.readline()
    with smoke.connected(line) as channel, pytest.raises(grpc.RpcError) as failed:
        smoke.get_provider_schema(channel)
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "the raydog provider failed to start: RuntimeError: tf 9.9.9 is installed" in failed.value.details()
    assert "s3cret-value" not in failed.value.details()
    stderr = finish(proc)
    assert proc.returncode == 0 and "RuntimeError: tf 9.9.9 is installed" in stderr and "s3cret-value" not in stderr


def test_a_deferred_module_loads_once_on_first_use_from_any_thread():
    sys.modules.pop("colorsys", None)
    go_plugin.defer_imports(["colorsys"])
    placeholder = sys.modules["colorsys"]
    assert isinstance(placeholder, go_plugin._DeferredModule)
    import colorsys

    assert colorsys is placeholder
    found = []
    threads = [threading.Thread(target=lambda: found.append(colorsys.rgb_to_hsv(1.0, 0.0, 0.0))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert found == [(0.0, 1.0, 1.0)] * 8
    assert not isinstance(sys.modules["colorsys"], go_plugin._DeferredModule)
    assert sys.modules["colorsys"].rgb_to_hsv is colorsys.rgb_to_hsv


def test_graceful_interceptor_keeps_serving_after_stop_provider():
    stopped = threading.Event()

    class Server:
        def stop(self, grace):
            stopped.set()

    interceptor = go_plugin.GracefulShutdownInterceptor(threading.Event())
    interceptor.server = Server()

    class Call:
        method = "/tfplugin6.Provider/StopProvider"

    interceptor.intercept_service(lambda details: "handler", Call())
    assert not stopped.is_set()
    Call.method = "/plugin.GRPCController/Shutdown"
    interceptor.intercept_service(lambda details: "handler", Call())
    assert stopped.is_set()


def test_server_certificate_reads_the_cached_expiry_and_falls_back_to_the_framework(tmp_path, monkeypatch):
    import tf.runner

    monkeypatch.setenv("HOME", str(tmp_path))
    calls = []

    def framework():  # the framework's own: makes (or reuses) and caches the certificate
        calls.append(1)
        return original()

    original = tf.runner._self_signed_cert
    chain, credentials = go_plugin.server_certificate(framework)
    assert calls == [1] and chain and credentials is not None
    record = tmp_path / ".cache" / "tf-python-provider" / "ssl_cert.expiry.json"
    assert json.loads(record.read_text())["not_after"] > 0

    again, credentials = go_plugin.server_certificate(framework)
    assert calls == [1] and again == chain and credentials is not None  # the cache, no framework call

    record.write_text(json.dumps({"cert_pem": "another certificate", "not_after": 4e9}))
    go_plugin.server_certificate(framework)
    assert len(calls) == 2  # a record of another certificate is not trusted
    assert json.loads(record.read_text())["cert_pem"] != "another certificate"
    record.write_text(json.dumps({"sha256": "a record of an earlier release", "not_after": 4e9}))
    go_plugin.server_certificate(framework)
    assert len(calls) == 3 and "cert_pem" in json.loads(record.read_text())


def test_grpc_server_takes_256_mb_messages_on_many_threads(monkeypatch):
    made = {}
    monkeypatch.setattr(grpc, "server", lambda pool, **kwargs: made.update(kwargs, pool=pool))
    go_plugin.make_server([])
    assert ("grpc.max_receive_message_length", 256 << 20) in made["options"]
    assert ("grpc.max_send_message_length", 256 << 20) in made["options"]
    assert made["pool"]._max_workers == go_plugin.SERVER_THREADS
    made["pool"].shutdown()


def test_the_socket_directory_is_new_private_and_under_tmpdir(tmp_path, monkeypatch):
    import os
    import stat

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    first, second = go_plugin._socket_directory(), go_plugin._socket_directory()
    assert first != second and os.path.dirname(first) == str(tmp_path)
    assert stat.S_IMODE(os.stat(first).st_mode) == 0o700
