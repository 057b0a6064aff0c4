"""The sandbox against a hostile neighbour: forged Host headers (DNS rebinding), cross-origin
POSTs to /sandbox/v1, keys kept out of ps and out of every output, remote binds, and
oversized or zip-bomb request bodies. Every case goes over real HTTP to a started sandbox.
"""

from __future__ import annotations

import gzip
import http.client
import json
import os
import subprocess
import sys
import time
import zlib

import pytest
import requests
from raydog_sandbox.errors import BodyTooLarge
from raydog_sandbox.server import SandboxStartError, is_loopback_host
from raydog_sandbox.wire import MAX_BODY_BYTES, MAX_COMPRESSED_BODY_BYTES, MAX_DRAINED_BYTES, gunzip
from harness.waits import wait_until
from sandbox_helpers import NAMESPACE, bash_task, make_client, provision, task_group, task_status
from yellowdog_client.model import TaskStatus, WorkRequirement

PYTHON_M = [sys.executable, "-m", "raydog_sandbox"]
SECRET = "Zq7-not-to-be-printed-4Kx"


def raw_request(sandbox, method: str, path: str, host: str | None = "", headers: dict | None = None,
                body: bytes | None = None) -> tuple[int, dict]:
    """One request through http.client with exactly these headers: Host as given ("" = the real
    one, None = no Host header at all)."""
    connection = http.client.HTTPConnection(sandbox.host, sandbox.port, timeout=30)
    try:
        connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        if host is not None:
            connection.putheader("Host", host or f"{sandbox.host}:{sandbox.port}")
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        if body is not None and "Content-Length" not in (headers or {}):
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        payload = response.read()
        if response.getheader("Content-Type", "").startswith("application/json"):
            return response.status, json.loads(payload)
        return response.status, {"text": payload.decode("utf-8", "replace")}
    finally:
        connection.close()


# ── Host header (DNS rebinding) ──────────────────────────────────────────────────────────────


FORGED_HOSTS = ["evil.example:{port}", "evil.example", "localhost.evil.example:{port}", "127.0.0.1.nip.io:{port}",
                "localhost:{other}", "127.0.0.2:{port}", "localhost:{port}@evil.example", ""]


@pytest.mark.parametrize("forged", FORGED_HOSTS)
@pytest.mark.parametrize("method, path", [("GET", "/sandbox/v1/state"), ("GET", "/workerPools/"),
                                          ("POST", "/sandbox/v1/requests/reset")])
def test_a_host_header_that_is_not_the_sandbox_is_refused_with_421(sandbox, forged, method, path):
    host = forged.format(port=sandbox.port, other=sandbox.port + 1) or " "
    sandbox.reset_requests()
    status, body = raw_request(sandbox, method, path, host=host, headers=sandbox.auth_headers)
    assert status == 421, body
    assert body["errorType"] == "MisdirectedRequestException"
    assert "is not an address this sandbox serves" in body["message"]
    assert f"127.0.0.1:{sandbox.port}" in body["message"]
    assert sandbox.requests()["total"] == 0, "a refused request reaches no route"


@pytest.mark.parametrize("hosts", [[], ["127.0.0.1:{port}", "evil.example"]], ids=["no Host", "two Host headers"])
def test_a_request_without_exactly_one_host_header_is_refused(sandbox, hosts):
    # HTTP/1.1 requires exactly one Host: uvicorn's parser refuses the request before the sandbox sees it
    # (HostCheck would answer 421 under a server that let it through).
    connection = http.client.HTTPConnection(sandbox.host, sandbox.port, timeout=30)
    try:
        connection.putrequest("POST", "/sandbox/v1/requests/reset", skip_host=True)
        for host in hosts:
            connection.putheader("Host", host.format(port=sandbox.port))
        connection.putheader("Authorization", sandbox.auth_headers["Authorization"])
        connection.endheaders()
        response = connection.getresponse()
        assert (response.status, response.read()) == (400, b"Invalid HTTP request received.")
    finally:
        connection.close()


@pytest.mark.parametrize("name", ["127.0.0.1", "localhost", "LocalHost", "[::1]"])
def test_loopback_names_of_a_loopback_sandbox_are_served(sandbox, name):
    status, body = raw_request(sandbox, "GET", "/sandbox/v1/health", host=f"{name}:{sandbox.port}")
    assert (status, body) == (200, {"status": "ok"})


def test_allow_host_adds_a_name_at_the_sandboxs_port_or_a_name_with_its_own_port(sandbox_factory):
    sandbox = sandbox_factory(allowed_hosts=["devbox.lan", "tunnel.example:9000"])
    for host, expected in ((f"devbox.lan:{sandbox.port}", 200), ("tunnel.example:9000", 200),
                           (f"tunnel.example:{sandbox.port}", 421), ("devbox.lan:9000", 421)):
        assert raw_request(sandbox, "GET", "/sandbox/v1/health", host=host)[0] == expected, host


def test_the_sdk_and_the_provider_send_an_accepted_host(sandbox):
    assert make_client(sandbox).worker_pool_client.find_all_worker_pools() == []


# ── /sandbox/v1 changes need the key ─────────────────────────────────────────────────────────


@pytest.fixture
def busy_sandbox(sandbox):
    """A sandbox with a pool, a task executing on its node, and a work requirement: something to break."""
    client = make_client(sandbox)
    pool = provision(client, "pool", 1)
    wr = client.work_client.add_work_requirement(WorkRequirement(
        namespace=NAMESPACE, name="wr", taskGroups=[task_group("pool")]))
    task = client.work_client.add_tasks_to_task_group_by_id(wr.taskGroups[0].id, [bash_task("t")])[0]
    wait_until(lambda: task_status(client, task.id) is TaskStatus.EXECUTING, "the task executes")
    task = client.work_client.get_task_by_id(task.id)
    return sandbox, {"pool": pool.id, "node": task.nodeId, "task": task.id, "wr": wr.id}


CHANGES = [
    ("POST", "/sandbox/v1/nodes/{node}/kill"),
    ("POST", "/sandbox/v1/workerPools/{pool}/terminate"),
    ("POST", "/sandbox/v1/tasks/{task}/abort"),
    ("POST", "/sandbox/v1/workRequirements/{wr}/cancel"),
    ("POST", "/sandbox/v1/requests/reset"),
    ("PUT", "/sandbox/v1/faults"),
]


@pytest.mark.parametrize("method, path", CHANGES)
@pytest.mark.parametrize("auth", [None, "yd-key sandbox:wrong", "Bearer x", "yd-key sandbox"],
                         ids=["no key", "wrong secret", "other scheme", "no secret"])
def test_a_sandbox_change_without_the_key_is_refused_and_changes_nothing(busy_sandbox, method, path, auth):
    sandbox, ids = busy_sandbox
    before, counts = sandbox.state(), sandbox.requests()
    # What a web page's cross-origin "simple" request looks like: no Authorization, text/plain.
    headers = {"Origin": "http://evil.example", "Content-Type": "text/plain"}
    if auth:
        headers["Authorization"] = auth
    status, body = raw_request(sandbox, method, path.format(**ids), headers=headers, body=b"5xx=1")
    assert status == 401 and body["errorType"] == "NotAuthorisedException"
    assert sandbox.state() == before and sandbox.requests() == counts
    assert sandbox.api.faults.spec.describe() == "none"


@pytest.mark.parametrize("method, path", CHANGES)
def test_a_sandbox_change_with_the_key_is_made(busy_sandbox, method, path):
    sandbox, ids = busy_sandbox
    status, body = raw_request(sandbox, method, path.format(**ids), headers=sandbox.auth_headers, body=b"none")
    assert status == 200, body


def test_sandbox_reads_need_no_key(sandbox):
    for path in ("/sandbox/v1/health", "/sandbox/v1/state", "/sandbox/v1/requests", "/sandbox/v1/faults",
                 "/sandbox/v1/templates"):
        assert raw_request(sandbox, "GET", path)[0] == 200, path


def test_a_cors_preflight_is_never_granted(sandbox):
    status, _ = raw_request(sandbox, "OPTIONS", "/sandbox/v1/nodes/x/kill", headers={
        "Origin": "http://evil.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization"})
    assert status == 405


# ── keys from the environment or a file, never printed ───────────────────────────────────────


def run_sandbox(*args: str, env: dict | None = None, requests_with: dict | None = None) -> tuple[int, str, str]:
    """Start `python -m raydog_sandbox --port 0 ARGS`, make a request with the given headers (if it
    starts), stop it with SIGTERM; returns (exit code, stdout, stderr)."""
    process = subprocess.Popen([*PYTHON_M, "--port", "0", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env={**os.environ, **(env or {})})
    url = process.stdout.readline().strip()
    statuses = ""
    if url.startswith("http://") and requests_with is not None:
        for path in ("/workerPools/", "/sandbox/v1/requests/reset"):
            method = requests.get if path == "/workerPools/" else requests.post
            statuses += f"{method(url + path, headers=requests_with, timeout=10).status_code} "
    if process.poll() is None:
        process.terminate()
    stdout, stderr = process.communicate(timeout=30)
    return process.returncode, url + "\n" + statuses + stdout, stderr


def test_a_key_from_the_environment_is_accepted_and_its_secret_never_printed():
    code, stdout, stderr = run_sandbox(
        "--log-level", "debug",
        env={"RAYDOG_SANDBOX_API_KEY_ID": "ci", "RAYDOG_SANDBOX_API_KEY_SECRET": SECRET},
        requests_with={"Authorization": f"yd-key ci:{SECRET}"})
    assert code == 0, stderr
    assert "200 200" in stdout
    assert "accepts API keys: ci (secrets not shown)" in stderr
    assert SECRET not in stdout + stderr


def test_the_default_key_is_not_accepted_once_a_key_is_given():
    _, stdout, _ = run_sandbox(env={"RAYDOG_SANDBOX_API_KEY_ID": "ci", "RAYDOG_SANDBOX_API_KEY_SECRET": SECRET},
                               requests_with={"Authorization": "yd-key sandbox:sandbox-secret"})
    assert "401 401" in stdout


def test_keys_from_a_file_are_accepted_and_never_printed(tmp_path):
    key_file = tmp_path / "keys"
    key_file.write_text(f"# sandbox keys\nci:{SECRET}\n\n  other:{SECRET}2  \n")
    key_file.chmod(0o600)
    for key_id in ("ci", "other"):
        secret = SECRET if key_id == "ci" else SECRET + "2"
        code, stdout, stderr = run_sandbox("--api-key-file", str(key_file),
                                           requests_with={"Authorization": f"yd-key {key_id}:{secret}"})
        assert code == 0 and "200 200" in stdout, stderr
        assert "accepts API keys: ci, other (secrets not shown)" in stderr
        assert SECRET not in stdout + stderr
        assert "readable by other users" not in stderr


def test_a_key_file_others_can_read_is_warned_about(tmp_path):
    key_file = tmp_path / "keys"
    key_file.write_text(f"ci:{SECRET}\n")
    key_file.chmod(0o644)
    code, _, stderr = run_sandbox("--api-key-file", str(key_file))
    assert code == 0 and f"--api-key-file {key_file} is readable by other users; chmod 600 it" in stderr


@pytest.mark.parametrize("args, env, message", [
    ((), {"RAYDOG_SANDBOX_API_KEY_ID": "ci"},
     "RAYDOG_SANDBOX_API_KEY_SECRET is not set; set both RAYDOG_SANDBOX_API_KEY_ID and RAYDOG_SANDBOX_API_KEY_SECRET"),
    ((), {"RAYDOG_SANDBOX_API_KEY_ID": "ci", "RAYDOG_SANDBOX_API_KEY_SECRET": SECRET + "\n"},
     "RAYDOG_SANDBOX_API_KEY_ID/RAYDOG_SANDBOX_API_KEY_SECRET: the secret must be printable ASCII"),
    (("--api-key-file", "{keys}"), {}, "--api-key-file {keys} line 2: must be ID:SECRET"),
    (("--api-key-file", "{missing}"), {}, "--api-key-file {missing}: cannot read it (FileNotFoundError)"),
    (("--api-key", SECRET), {}, "--api-key number 1: must be ID:SECRET"),
], ids=["id without secret", "secret with a newline", "file line without a colon", "missing file",
        "option without a colon"])
def test_a_bad_key_is_a_one_line_error_that_never_shows_the_secret(tmp_path, args, env, message):
    keys = tmp_path / "keys"
    keys.write_text(f"ci:ok\n{SECRET}\n")
    keys.chmod(0o600)
    paths = {"keys": keys, "missing": tmp_path / "missing"}
    code, stdout, stderr = run_sandbox(*(a.format(**paths) for a in args), env=env)
    assert code == 2 and stdout.strip() == ""
    assert message.format(**paths) in stderr
    assert SECRET not in stderr


def test_a_key_on_the_command_line_still_works_with_a_warning_about_ps():
    code, stdout, stderr = run_sandbox("--api-key", f"ci:{SECRET}",
                                       requests_with={"Authorization": f"yd-key ci:{SECRET}"})
    assert code == 0 and "200 200" in stdout
    assert "--api-key shows the secret to every user of this machine (ps)" in stderr
    assert SECRET not in stdout + stderr


def test_the_default_key_is_named_without_its_secret():
    code, _, stderr = run_sandbox()
    assert code == 0 and "accepts API keys: sandbox (the default key; its secret is in docs/sandbox.md)" in stderr
    assert "sandbox-secret" not in stderr


# ── remote binds ─────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10"])
def test_a_host_other_than_loopback_needs_allow_remote(host):
    code, stdout, stderr = run_sandbox("--host", host)
    assert code == 2 and stdout.strip() == ""
    assert stderr.strip().splitlines() == [
        f"raydog sandbox: --host {host} is not a loopback address, so other machines could reach the sandbox; "
        "add --allow-remote if that is what you want"]


def test_allow_remote_needs_a_key_of_ones_own():
    code, _, stderr = run_sandbox("--host", "0.0.0.0", "--allow-remote")
    assert code == 2 and "--allow-remote needs an API key of your own" in stderr


def test_start_sandbox_refuses_a_remote_host_too(sandbox_factory):
    with pytest.raises(SandboxStartError, match="not a loopback address"):
        sandbox_factory(host="0.0.0.0")


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True),
                                            ("localhost", True), ("0.0.0.0", False), ("::", False),
                                            ("", False), ("10.0.0.1", False), ("192.0.2.10", False)])
def test_is_loopback_host(host, loopback):
    assert is_loopback_host(host) is loopback


def test_a_loopback_name_needs_no_allow_remote(sandbox_factory):
    sandbox = sandbox_factory(host="localhost")
    assert make_client(sandbox).worker_pool_client.find_all_worker_pools() == []


# ── request body limits ──────────────────────────────────────────────────────────────────────


def post_tasks(sandbox, body: bytes | None, headers: dict | None = None, host: str = "") -> tuple[int, dict]:
    return raw_request(sandbox, "POST", "/work/taskGroups/ydid:taskgrp:000000:missing:1/tasks", host=host,
                       headers={**sandbox.auth_headers, "Content-Type": "application/json", **(headers or {})},
                       body=body)


def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_sent(sandbox):
    connection = http.client.HTTPConnection(sandbox.host, sandbox.port, timeout=10)
    try:
        connection.putrequest("POST", "/work/requirements")
        for name, value in sandbox.auth_headers.items():
            connection.putheader(name, value)
        connection.putheader("Content-Length", str(MAX_DRAINED_BYTES + 1))
        connection.endheaders()  # not one byte of the body follows
        response = connection.getresponse()
        assert response.status == 413
        body = json.loads(response.read())
    finally:
        connection.close()
    assert body["errorType"] == "PayloadTooLargeException"
    assert f"a request body may be at most {MAX_BODY_BYTES} bytes (64 MiB)" in body["message"]


def test_a_client_that_expects_100_continue_is_refused_without_sending_its_body(sandbox):
    status, body = raw_request(sandbox, "POST", "/work/requirements", headers={
        **sandbox.auth_headers, "Expect": "100-continue", "Content-Length": str(MAX_BODY_BYTES + 1)})
    assert status == 413 and body["errorType"] == "PayloadTooLargeException"


def test_a_plain_body_over_the_limit_is_refused_with_413_the_client_can_read(sandbox):
    response = requests.post(f"{sandbox.url}/work/requirements", data=b" " * (MAX_BODY_BYTES + 1),
                             headers=sandbox.auth_headers, timeout=60)
    assert response.status_code == 413
    assert "this one is 67108865 bytes" in response.json()["message"]


def test_a_chunked_body_over_the_limit_is_refused_as_it_streams(sandbox):
    chunk = b" " * (1 << 20)
    sent = []

    def body():
        for _ in range((MAX_BODY_BYTES >> 20) + 1):
            sent.append(len(chunk))
            yield chunk

    response = requests.post(f"{sandbox.url}/work/requirements", data=body(), headers=sandbox.auth_headers,
                             timeout=60)
    assert response.status_code == 413
    assert f"this one is over {MAX_BODY_BYTES} bytes" in response.json()["message"]


def test_a_gzipped_body_over_the_limit_as_sent_is_refused(sandbox):
    status, body = post_tasks(sandbox, b"\x1f" * (MAX_COMPRESSED_BODY_BYTES + 1), {"Content-Encoding": "gzip"})
    assert status == 413
    assert f"a gzipped request body may be at most {MAX_COMPRESSED_BODY_BYTES} bytes" in body["message"]


def zip_bomb(size: int) -> bytes:
    """gzip of ``size`` zero bytes, built without holding them."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(1 << 20)
    parts = [compressor.compress(zeros) for _ in range(size >> 20)]
    return b"".join(parts) + compressor.flush()


def test_a_zip_bomb_is_refused_without_being_inflated(sandbox):
    bomb = zip_bomb(MAX_BODY_BYTES * 4)  # 256 MiB of zeros in about 256 KiB
    assert len(bomb) < 1 << 20
    started = time.monotonic()
    status, body = post_tasks(sandbox, bomb, {"Content-Encoding": "gzip"})
    assert status == 413, body
    assert "more than that once decompressed" in body["message"]
    assert time.monotonic() - started < 10


def test_gunzip_stops_one_byte_past_the_limit():
    bomb = zip_bomb(64 << 20)
    with pytest.raises(BodyTooLarge):
        gunzip(bomb, 1 << 20)
    assert gunzip(gzip.compress(b"a" * 1000) + gzip.compress(b"b"), 1001) == b"a" * 1000 + b"b"
    assert gunzip(gzip.compress(b"x" * 1000), 1000) == b"x" * 1000


@pytest.mark.parametrize("body, headers, status, message", [
    (gzip.compress(b"{}", mtime=0)[:-5], {"Content-Encoding": "gzip"}, 400, "not valid gzip"),
    (b"not gzip", {"Content-Encoding": "gzip"}, 400, "not valid gzip"),
    (b"[]", {"Content-Encoding": "br"}, 415, "Content-Encoding 'br' is not supported"),
])
def test_a_malformed_body_is_refused_clearly(sandbox, body, headers, status, message):
    got, reply = post_tasks(sandbox, body, headers)
    assert (got, message in reply.get("message", "")) == (status, True), reply


def test_a_fault_spec_body_has_its_own_small_limit(sandbox):
    response = requests.put(f"{sandbox.url}/sandbox/v1/faults", data=b"x" * (65 << 10),
                            headers=sandbox.auth_headers, timeout=10)
    assert response.status_code == 413 and "(64 KiB)" in response.json()["message"]


def test_the_providers_largest_request_fits(sandbox):
    """48 nodes' tasks in one add, each with a 1 MiB script and a 100 KiB environment (the provider's
    own limits are 1 MiB and 128 KiB), through the SDK (which gzips it)."""
    client = make_client(sandbox)
    wr = client.work_client.add_work_requirement(WorkRequirement(
        namespace=NAMESPACE, name="big", taskGroups=[task_group("workers")]))
    line = "echo 'starting a ray worker node with a long enough line of shell'  # padding\n"
    script = (line * ((1 << 20) // len(line)))[: 1 << 20]
    tasks = []
    for n in range(48):
        task = bash_task(f"node{n}", BIG="v" * (100 << 10))
        task.taskData = script
        tasks.append(task)
    added = client.work_client.add_tasks_to_task_group_by_id(wr.taskGroups[0].id, tasks)
    assert len(added) == 48
    wait_until(lambda: len(sandbox.state()["workRequirements"][0]["taskGroups"][0]["tasks"]) == 48, "tasks added")
