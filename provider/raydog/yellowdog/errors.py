"""The provider's errors for platform failures, and the one place SDK exceptions are mapped.

Everything above ``raydog.yellowdog`` sees only ``PlatformError`` and its subclasses: each
carries the HTTP status, the platform's own message, the object's id and the operation,
so a Terraform diagnostic can say exactly what failed and why.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: resources import these errors in every provider launch
    import requests

# Phrases the platform uses when a unique name is already in use (pool and WR names:
# "already exists"; task names: "Task names must be unique within task group").
_NAME_TAKEN_PHRASES = ("already exists", "must be unique", "already in use")
_OBJECT_REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-f]+>: ")


class PlatformError(Exception):
    """A platform operation failed.

    ``status`` is the HTTP status (None when no answer came back), ``message`` the
    platform's message, ``object_id`` the object concerned, ``operation`` what the
    provider was doing ("provision worker pool"), ``error_type`` the platform's
    ``errorType`` when it sent one (e.g. "InvalidWorkRequirementStatusException");
    ``connection_lost`` is True when the request went out but no answer came back (connection
    dropped, timed out), so it may or may not have taken effect; ``retry_after`` is the wait
    the platform asked for (Retry-After, capped), when it sent one.
    """

    def __init__(self, operation: str, message: str, *, status: int | None = None,
                 object_id: str | None = None, error_type: str | None = None, connection_lost: bool = False,
                 retry_after: float | None = None) -> None:
        self.operation = operation
        self.message = message
        self.status = status
        self.object_id = object_id
        self.error_type = error_type
        self.connection_lost = connection_lost
        self.retry_after = retry_after
        super().__init__(self._render())

    def _render(self) -> str:
        subject = f"{self.operation} {self.object_id}" if self.object_id else self.operation
        if self.status is not None:
            return f"{subject}: HTTP {self.status}: {self.message}"
        return f"{subject}: {self.message}"

    @property
    def outcome_unknown(self) -> bool:
        """Whether the request took effect is unknown: the connection was lost, or a server error."""
        return self.connection_lost or (self.status is not None and self.status >= 500)

    @property
    def transient(self) -> bool:
        """Worth trying again later: no reply, throttled, or a server error."""
        return self.outcome_unknown or self.status == 429

    @property
    def name_taken(self) -> bool:
        """The platform refused a create because the unique name is already used."""
        if self.status == 409:
            return True
        return self.status is not None and 400 <= self.status < 500 and any(
            phrase in self.message.lower() for phrase in _NAME_TAKEN_PHRASES)


class OwnedElsewhereError(PlatformError):
    """A create found a live object of its name that it cannot prove it made.

    ``existing_id`` is that object's id, for the import block the user may want."""

    def __init__(self, operation: str, label: str, existing_id: str, what: str) -> None:
        self.existing_id = existing_id
        super().__init__(operation, f"a live {what} named {label} already exists ({existing_id}) and was not "
                                    "created by this configuration", object_id=label, status=409)


class NotAuthorisedError(PlatformError):
    """The application key was refused, or lacks permission for the operation."""


class NotFoundError(PlatformError):
    """The object does not exist (HTTP 404)."""


class TaskFailedError(PlatformError):
    """A task reached a terminal status while the provider waited for it to run.

    ``task_status`` is the task's status (FAILED, CANCELLED, ...), ``exit_code`` the
    process exit code the platform reported, ``detail`` the platform's error text(s).
    """

    def __init__(self, task_id: str, status: str, exit_code: int | None, detail: str,
                 operation: str = "wait for task to execute") -> None:
        self.task_id = task_id
        self.task_status = status
        self.exit_code = exit_code
        self.detail = detail
        parts = [f"task ended {status}"]
        if exit_code is not None:
            parts.append(f"with exit code {exit_code}")
        message = " ".join(parts) + (f": {detail}" if detail else "")
        super().__init__(operation, message, object_id=task_id)


class WaitTimeoutError(PlatformError):
    """An object did not reach the wanted state in time; ``last_status`` is what it had."""

    def __init__(self, object_id: str, waited_seconds: float, last_status: str | None,
                 operation: str = "wait for task to execute") -> None:
        self.waited_seconds = waited_seconds
        self.last_status = last_status
        message = f"timed out after {waited_seconds:.0f}s; last status {last_status or 'unknown'}"
        super().__init__(operation, message, object_id=object_id)


class StoppedError(PlatformError):
    """The provider was asked to stop (Terraform's StopProvider) while it waited."""

    def __init__(self, operation: str, object_id: str | None = None) -> None:
        super().__init__(operation, "stopped: the provider was asked to stop", object_id=object_id)


def from_sdk_exception(exc: BaseException, operation: str, object_id: str | None = None,
                       status: int | None = None) -> PlatformError:
    """Map any exception raised by a yellowdog-sdk call to a PlatformError.

    ``status`` is the HTTP status of the response that caused ``exc`` when the caller
    knows it: the SDK's typed exceptions (InvalidRequestException, ...) are built from
    the body alone and do not carry it.
    """
    if isinstance(exc, PlatformError):
        return exc
    import requests
    from yellowdog_client.model.exceptions import BaseCustomException

    if isinstance(exc, BaseCustomException):
        error_type = str(getattr(exc, "errorType", "") or "") or None
        message = _join(exc.message, exc.detail)
        return classify(operation, message, status, object_id, error_type,
                         authorisation=error_type == "NotAuthorisedException")
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        response = exc.response
        error_type, message = read_error_body(response.text or "")
        return classify(operation, message or _reason(response), response.status_code, object_id,
                         error_type, authorisation=False)
    if isinstance(exc, requests.Timeout):
        return PlatformError(operation, f"no answer in time: {_cause(exc)}", object_id=object_id,
                             connection_lost=True)
    if isinstance(exc, requests.ConnectionError):
        return PlatformError(operation, f"connection failed: {_cause(exc)}", object_id=object_id,
                             connection_lost=True)
    if isinstance(exc, requests.RequestException):  # e.g. a response cut off mid-body
        return PlatformError(operation, f"request failed: {_cause(exc)}", status=status, object_id=object_id,
                             connection_lost=True)
    # A body the SDK could not read (missing required field, unknown enum, not JSON).
    return PlatformError(operation, f"unexpected response from the platform: {type(exc).__name__}: {exc}",
                         status=status, object_id=object_id)


def classify(operation: str, message: str, status: int | None, object_id: str | None,
              error_type: str | None, authorisation: bool) -> PlatformError:
    if status == 404:
        cls: type[PlatformError] = NotFoundError
    elif authorisation or status == 401 or (status == 403 and error_type in (None, "NotAuthorisedException")):
        cls = NotAuthorisedError
    else:
        cls = PlatformError
    return cls(operation, message or "(no message)", status=status, object_id=object_id,
               error_type=error_type)


def read_error_body(text: str) -> tuple[str | None, str]:
    """The platform's errorType and message from an error body ({"errorType","message","detail"})."""
    try:
        body = json.loads(text)
    except ValueError:
        return None, text.strip()[:500]
    if not isinstance(body, dict):
        return None, text.strip()[:500]
    error_type = body.get("errorType")
    detail = body.get("detail") or ()
    if isinstance(detail, str):
        detail = (detail,)
    message = _join(body.get("message"), detail)
    return (str(error_type) if error_type else None), message or text.strip()[:500]


def _join(message: str | None, detail: tuple | list | None) -> str:
    parts = [message] if message else []
    parts += [str(item) for item in (detail or ()) if item and item != message]
    return ". ".join(parts)


def _reason(response: requests.Response) -> str:
    reason = response.reason
    if isinstance(reason, bytes):
        reason = reason.decode("utf-8", "replace")
    return reason or f"HTTP {response.status_code}"


def _cause(exc: BaseException) -> str:
    """The innermost reason of a requests/urllib3 error, without the URL's query noise."""
    reason = exc
    for _ in range(5):
        inner = (reason.args[0] if reason.args and isinstance(reason.args[0], BaseException) else None)
        inner = getattr(reason, "reason", None) or inner
        if not isinstance(inner, BaseException) or inner is reason:
            break
        reason = inner
    text = _OBJECT_REPR.sub("", str(reason))
    return text or type(reason).__name__
