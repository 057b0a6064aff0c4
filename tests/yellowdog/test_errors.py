"""Every SDK failure becomes a PlatformError with the status, the platform's message and the id.

The SDK exceptions here are raised by the SDK's own response handling
(``Proxy._handle_response``) from real ``requests.Response`` objects, as over HTTP.
"""

from __future__ import annotations

import json

import pytest
import requests
from yellowdog_client.common import Proxy
from yellowdog_client.common.json import Json
from yellowdog_client.model import WorkRequirement

from raydog.yellowdog import (
    NotAuthorisedError,
    NotFoundError,
    PlatformError,
    StoppedError,
    TaskFailedError,
    WaitTimeoutError,
    from_sdk_exception,
)


def _response(status: int, body: object | str = "", reason: str = "") -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.reason = reason
    response.url = "http://127.0.0.1/workerPools/provisioned/template"
    text = body if isinstance(body, str) else json.dumps(body)
    response._content = text.encode()
    return response


def _sdk_error(status: int, body: object | str = "", reason: str = "") -> Exception:
    with pytest.raises(Exception) as caught:
        Proxy._handle_response(_response(status, body, reason))
    return caught.value


def _body(error_type: str, message: str, *detail: str) -> dict:
    return {"errorType": error_type, "message": message, "detail": list(detail)}


def test_invalid_request_keeps_status_message_and_object_id():
    message = "worker pool 'ns/head' already exists in namespace 'ns'"
    exc = _sdk_error(400, _body("InvalidRequestException", message))

    err = from_sdk_exception(exc, "provision worker pool", "ns/head", status=400)

    assert type(err) is PlatformError
    assert (err.status, err.object_id, err.operation) == (400, "ns/head", "provision worker pool")
    assert err.message == "worker pool 'ns/head' already exists in namespace 'ns'"
    assert err.error_type == "InvalidRequestException"
    assert str(err) == ("provision worker pool ns/head: HTTP 400: "
                        "worker pool 'ns/head' already exists in namespace 'ns'")


def test_platform_detail_lines_are_part_of_the_message():
    exc = _sdk_error(400, _body("InvalidRequestException", "bad task group", "taskTypes is empty"))

    err = from_sdk_exception(exc, "add task group", "ydid:workreq:1", status=400)

    assert err.message == "bad task group. taskTypes is empty"


def test_refused_duplicate_names_are_recognised_as_name_taken():
    pool = from_sdk_exception(
        _sdk_error(400, _body("InvalidRequestException", "worker pool 'a/b' already exists")),
        "provision worker pool", status=400)
    task = from_sdk_exception(
        _sdk_error(400, _body("InvalidRequestException", "Task names must be unique within task group")),
        "add tasks", status=400)
    other = from_sdk_exception(_sdk_error(400, _body("InvalidRequestException", "templateId not found")),
                               "provision worker pool", status=400)

    assert pool.name_taken and task.name_taken
    assert not other.name_taken
    assert not pool.outcome_unknown


def test_not_authorised_exception_becomes_not_authorised_error():
    exc = _sdk_error(401, _body("NotAuthorisedException", "invalid application key"))

    err = from_sdk_exception(exc, "check credentials", status=401)

    assert isinstance(err, NotAuthorisedError)
    assert err.status == 401 and err.message == "invalid application key"


def test_plain_401_without_error_body_is_not_authorised():
    err = from_sdk_exception(_sdk_error(401, "", reason="Unauthorized"), "check credentials")

    assert isinstance(err, NotAuthorisedError)
    assert err.status == 401 and err.message == "Unauthorized"


def test_http_404_becomes_not_found_with_the_platform_message():
    exc = _sdk_error(404, _body("NotFoundException", "worker pool ydid:wrkrpool:1 not found"))

    err = from_sdk_exception(exc, "read worker pool", "ydid:wrkrpool:1")

    assert isinstance(err, NotFoundError)
    assert err.status == 404
    assert err.message == "worker pool ydid:wrkrpool:1 not found"
    assert err.error_type == "NotFoundException"


def test_typed_exception_with_a_404_status_is_not_found():
    exc = _sdk_error(404, _body("InvalidRequestException", "no such task"))

    assert isinstance(from_sdk_exception(exc, "read task", "t", status=404), NotFoundError)


def test_invalid_status_403_is_a_platform_error_not_an_authorisation_failure():
    exc = _sdk_error(403, _body("InvalidWorkRequirementStatusException",
                                "work requirement ydid:workreq:1 is CANCELLED and cannot transition"))

    err = from_sdk_exception(exc, "cancel work requirement", "ydid:workreq:1")

    assert type(err) is PlatformError
    assert err.status == 403
    assert err.error_type == "InvalidWorkRequirementStatusException"
    assert "is CANCELLED" in err.message


def test_gateway_error_with_plain_text_body_is_a_transient_no_answer():
    err = from_sdk_exception(_sdk_error(502, "Bad Gateway", reason="Bad Gateway"), "add tasks", "tg")

    assert (err.status, err.message) == (502, "Bad Gateway")
    assert err.outcome_unknown and err.transient


def test_internal_server_exception_keeps_its_message():
    exc = _sdk_error(500, _body("InternalServerException", "database unavailable"))

    err = from_sdk_exception(exc, "create work requirement", "ns/c", status=500)

    assert (err.status, err.message) == (500, "database unavailable")
    assert err.error_type == "InternalServerException"
    assert err.outcome_unknown


def test_throttling_is_transient_but_not_ambiguous():
    err = from_sdk_exception(_sdk_error(429, "slow down", reason="Too Many Requests"), "read task", "t")

    assert err.transient and not err.outcome_unknown


def test_connection_failure_has_no_status_and_may_have_committed():
    exc = requests.ConnectionError("('Connection aborted.', RemoteDisconnected('Remote end closed'))")

    err = from_sdk_exception(exc, "add tasks", "tg")

    assert err.status is None and err.connection_lost and err.outcome_unknown and err.transient
    assert str(err).startswith("add tasks tg: connection failed: ")


def test_timeout_has_no_status():
    err = from_sdk_exception(requests.ReadTimeout("read timed out"), "create work requirement", "ns/c")

    assert err.status is None and err.outcome_unknown
    assert "no answer in time" in err.message


def test_errors_raised_by_the_provider_itself_are_not_mistaken_for_lost_answers():
    refusal = PlatformError("add task group", "the work requirement is CANCELLED", object_id="w")
    failed = TaskFailedError("t", "FAILED", 1, "")

    assert not (refusal.outcome_unknown or refusal.transient or refusal.name_taken)
    assert not (failed.outcome_unknown or failed.transient)


def test_unreadable_response_body_is_a_platform_error():
    with pytest.raises(Exception) as caught:
        Json.load({"name": "missing namespace"}, WorkRequirement)

    err = from_sdk_exception(caught.value, "read work requirement", "w")

    assert type(err) is PlatformError and not err.outcome_unknown
    assert err.message.startswith("unexpected response from the platform")


def test_platform_errors_pass_through_unchanged():
    original = NotFoundError("read task", "gone", status=404, object_id="t")

    assert from_sdk_exception(original, "other") is original


def test_task_failure_reports_status_exit_code_and_detail():
    err = TaskFailedError("ydid:task:1", "FAILED", 3, "Process exited with code 3\n...tail of output")

    assert isinstance(err, PlatformError)
    assert (err.task_id, err.task_status, err.exit_code) == ("ydid:task:1", "FAILED", 3)
    assert err.status is None
    assert str(err) == ("wait for task to execute ydid:task:1: task ended FAILED with exit code 3: "
                        "Process exited with code 3\n...tail of output")


def test_wait_timeout_reports_what_it_waited_for_and_the_last_status():
    err = WaitTimeoutError("ydid:task:1", 30.4, "READY")

    assert (err.object_id, err.last_status) == ("ydid:task:1", "READY")
    assert str(err) == "wait for task to execute ydid:task:1: timed out after 30s; last status READY"


def test_stopped_error_says_the_provider_was_stopped():
    err = StoppedError("wait for task to execute", "ydid:task:1")

    assert isinstance(err, PlatformError)
    assert "asked to stop" in str(err)
