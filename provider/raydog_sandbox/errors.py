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
