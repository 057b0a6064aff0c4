"""The errors the sandbox's API answers with, in the SDK's body shape {errorType, message, detail}."""

from __future__ import annotations

from collections.abc import Iterable


class SandboxError(Exception):
    """An error the API answers with the SDK's body shape {errorType, message, detail}."""

    status_code = 400
    error_type = "InvalidRequestException"

    def __init__(self, message: str, detail: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.detail = list(detail)


class InvalidRequest(SandboxError):
    """Maps to the SDK's InvalidRequestException."""


class NotFound(SandboxError):
    """404 whose errorType the SDK does not know, so it raises requests.HTTPError."""

    status_code = 404
    error_type = "NotFoundException"


class InvalidWorkRequirementStatus(SandboxError):
    """A work requirement transition the platform refuses (403, as the live API answers)."""

    status_code = 403
    error_type = "InvalidWorkRequirementStatusException"


class NotAuthorised(SandboxError):
    status_code = 401
    error_type = "NotAuthorisedException"


class BodyTooLarge(SandboxError):
    """A request body over the sandbox's size limit (as sent, or once decompressed)."""

    status_code = 413
    error_type = "PayloadTooLargeException"


class UnsupportedEncoding(SandboxError):
    """A Content-Encoding other than gzip or identity."""

    status_code = 415
    error_type = "UnsupportedMediaTypeException"


class MisdirectedRequest(SandboxError):
    """A Host header that names no address this sandbox serves (the DNS-rebinding defence)."""

    status_code = 421
    error_type = "MisdirectedRequestException"
