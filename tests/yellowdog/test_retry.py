"""The provider's retry policy: bounded, honours Retry-After (capped), never re-sends a POST
that may have committed, and recovers creates by looking the object up by name.

The HTTP tests drive the real SDK through ``YellowDogClient`` against a tiny scripted server.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from urllib3 import HTTPResponse
from urllib3.exceptions import MaxRetryError, ProtocolError

from raydog.yellowdog import NotAuthorisedError, YellowDogClient, PlatformError, check_credentials, policy, retry
from raydog.yellowdog.retry import BoundedRetry, create_or_adopt


class ScriptedServer:
    """Answers each request with the next scripted reply: (status, body, headers) or "drop"."""

    def __init__(self, replies: list) -> None:
        self.replies = list(replies)
        self.requests: list[tuple[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _reply(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                server.requests.append((self.command, self.path))
                reply = server.replies.pop(0) if server.replies else (200, {"items": []}, {})
                if reply == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                status, body, headers = reply
                data = (body if isinstance(body, str) else json.dumps(body)).encode()
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _reply

            def finish(self):
                try:
                    super().finish()
                except OSError:
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def scripted(monkeypatch):
    monkeypatch.setattr(retry, "INITIAL_BACKOFF", timedelta(0))  # no backoff sleeps in tests
    monkeypatch.setattr(policy, "INITIAL_BACKOFF", timedelta(0))  # nor in the credential check's
    servers = []

    def start(*replies) -> tuple[ScriptedServer, YellowDogClient]:
        server = ScriptedServer(list(replies))
        servers.append(server)
        return server, YellowDogClient.connect(server.url, "key-id", "key-secret")

    yield start
    for server in servers:
        server.close()


TOKEN = "rd-0123456789abcdef"
OWNER_MARKER = {"name": "raydog-owner", "tag": TOKEN, "runSpecification": {"taskTypes": ["bash"], "workerTags": [TOKEN]}}
WR_JSON = {"id": "ydid:workreq:000000:1", "namespace": "ns", "name": "c", "status": "RUNNING",
           "taskGroups": [OWNER_MARKER]}
SERVER_ERROR = (500, {"errorType": "InternalServerException", "message": "boom", "detail": []}, {})


def test_long_retry_after_is_cut_to_the_cap():
    policy = BoundedRetry.policy()

    assert policy.get_retry_after(HTTPResponse(headers={"Retry-After": "3600"})) == retry.MAX_RETRY_AFTER
    assert policy.get_retry_after(HTTPResponse(headers={"Retry-After": "2"})) == 2
    assert policy.get_retry_after(HTTPResponse(headers={})) is None


def test_post_whose_connection_dropped_is_not_resent():
    error = ProtocolError("Connection aborted.", ConnectionResetError())

    with pytest.raises(ProtocolError):
        BoundedRetry.policy().increment(method="POST", url="/work/requirements", error=error)


def test_get_whose_connection_dropped_is_retried():
    error = ProtocolError("Connection aborted.", ConnectionResetError())

    following = BoundedRetry.policy().increment(method="GET", url="/work/tasks/1", error=error)

    assert following.total == retry.ATTEMPTS - 2 and following.first_failure is not None


def test_no_retry_starts_after_the_time_budget():
    late = BoundedRetry.policy().new(first_failure=time.monotonic() - retry.BUDGET - 1)

    with pytest.raises(MaxRetryError):
        late.increment(method="GET", url="/work/tasks/1", error=ProtocolError("dropped"))


def test_server_errors_are_retried_up_to_the_attempt_limit(scripted):
    server, platform = scripted(*[SERVER_ERROR] * 10)

    with pytest.raises(PlatformError) as caught:
        platform.get_work_requirement("ydid:workreq:000000:1")

    assert len(server.requests) == retry.ATTEMPTS
    assert (caught.value.status, caught.value.message) == (500, "boom")


def test_throttled_request_succeeds_once_the_platform_answers(scripted):
    server, platform = scripted((429, "", {"Retry-After": "0"}), (503, "", {}), (200, WR_JSON, {}))

    info = platform.get_work_requirement("ydid:workreq:000000:1")

    assert info.name == "c" and info.status == "RUNNING"
    assert len(server.requests) == 3


def test_dropped_create_is_sent_once_then_adopted_by_name(scripted):
    server, platform = scripted(
        "drop",  # the create commits, but the answer is lost
        (200, WR_JSON, {}),  # lookup by name finds it
    )

    info = platform.create_work_requirement("ns", "c", owner_token=TOKEN)

    assert info.id == WR_JSON["id"]
    assert [method for method, _ in server.requests] == ["POST", "GET"]  # no look-up before a create


def test_typed_error_carries_the_http_status(scripted):
    body = {"errorType": "InvalidRequestException", "message": "tag is not a valid name", "detail": []}
    _, platform = scripted((400, body, {}))

    with pytest.raises(PlatformError) as caught:
        platform.create_work_requirement("ns", "c", tag="Bad Tag")

    assert (caught.value.status, caught.value.message) == (400, "tag is not a valid name")
    assert caught.value.object_id == "ns/c"


def test_wrong_key_is_reported_as_not_authorised(scripted):
    body = {"errorType": "NotAuthorisedException", "message": "application key not recognised", "detail": []}
    server, _ = scripted((401, body, {}))

    with pytest.raises(NotAuthorisedError) as caught:
        check_credentials(server.url, "key-id", "key-secret")

    assert caught.value.status == 401
    assert "application key not recognised" in str(caught.value)


def test_unreachable_url_is_a_platform_error_without_status(monkeypatch):
    monkeypatch.setattr(policy, "INITIAL_BACKOFF", timedelta(0))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(PlatformError) as caught:
        check_credentials(f"http://127.0.0.1:{port}", "key-id", "key-secret")

    assert caught.value.status is None
    assert "cannot reach the YellowDog API" in str(caught.value)


def test_credential_check_sends_the_sdks_own_request_with_the_key(scripted):
    server, _ = scripted()

    check_credentials(server.url, "key-id", "key-secret")

    assert server.requests == [("GET", "/work/requirements?size=1&sliced=true")]


def test_credential_check_retries_throttling_and_server_errors_then_succeeds(scripted):
    server, _ = scripted((429, "", {"Retry-After": "0"}), SERVER_ERROR, "drop", (200, {"items": []}, {}))

    check_credentials(server.url, "key-id", "key-secret")

    assert len(server.requests) == 4


def test_credential_check_gives_up_after_the_attempt_limit(scripted):
    server, _ = scripted(*[SERVER_ERROR] * 10)

    with pytest.raises(PlatformError) as caught:
        check_credentials(server.url, "key-id", "key-secret")

    assert len(server.requests) == retry.ATTEMPTS
    assert (caught.value.status, caught.value.message) == (500, "boom")


def test_refused_key_is_not_retried_and_the_secret_is_not_in_the_message(scripted):
    body = {"errorType": "NotAuthorisedException", "message": "application key not recognised", "detail": []}
    server, _ = scripted((403, body, {}))

    with pytest.raises(NotAuthorisedError) as caught:
        check_credentials(server.url, "key-id", "key-secret")

    assert len(server.requests) == 1 and caught.value.status == 403
    assert "key-secret" not in str(caught.value)


def test_a_web_server_that_is_not_yellowdog_fails_the_check(scripted):
    server, _ = scripted((200, "<html>hello</html>", {}))

    with pytest.raises(PlatformError) as caught:
        check_credentials(server.url, "key-id", "key-secret")

    assert "not like the YellowDog API" in str(caught.value)


def test_credential_check_does_not_import_the_sdk():
    code = ("import sys, raydog.yellowdog as y\ny.policy.ATTEMPTS = 1\n"
            "try:\n    y.check_credentials('http://127.0.0.1:1', 'id', 'secret')\nexcept y.PlatformError:\n    pass\n"
            "print(any(m.startswith('yellowdog_client') for m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_create_or_adopt_creates_again_when_nothing_was_committed():
    calls = []

    def create():
        calls.append("create")
        if len(calls) == 1:
            raise PlatformError("create", "connection failed", connection_lost=True)
        return "created"

    assert create_or_adopt("create thing", create, lambda: None) == "created"
    assert calls == ["create", "create"]


def test_create_or_adopt_raises_name_taken_when_no_live_object_has_the_name():
    taken = PlatformError("create", "thing 'a' already exists", status=400)

    def create():
        raise taken

    with pytest.raises(PlatformError) as caught:
        create_or_adopt("create thing", create, lambda: None)

    assert caught.value is taken


def test_create_or_adopt_does_not_hide_a_plain_refusal():
    def create():
        raise PlatformError("create", "template not found", status=400)

    with pytest.raises(PlatformError, match="template not found"):
        create_or_adopt("create thing", create, lambda: pytest.fail("no lookup for a plain refusal"))
