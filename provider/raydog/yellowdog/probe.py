"""The configure-time credential check, made without importing the SDK.

Terraform configures the provider in the plan and apply launches of every command, and
a wrong key must fail there, once, rather than once per resource. Importing
yellowdog_client costs ~0.3 s, which a launch that makes no other platform call (a plan
of new resources, a validate) would pay for this one request alone. So the check sends
the SDK's own cheapest authenticated request, ``GET /work/requirements?size=1&sliced=true``,
through the standard library (rest.py). The SDK is imported when a resource first calls
the platform.
"""

from __future__ import annotations

import json
from typing import Callable

from .errors import NotAuthorisedError, PlatformError
from .rest import RestReader


OPERATION = "check credentials"
PATH = "/work/requirements?size=1&sliced=true"


def check_settings(api_url: str, key_id: str, key_secret: str) -> str:
    """The API URL without a trailing slash; PlatformError unless it is a usable http(s) URL,
    NotAuthorisedError unless a key id and secret are both given and an HTTP header can carry
    them (``raydog.settings``). No request is made."""
    from raydog.settings import key_id_problem, key_problem, url_problem

    problem = url_problem(api_url or "")
    if problem:
        raise PlatformError("connect", problem)
    if not key_id or not key_secret:
        raise NotAuthorisedError("connect", "an application key id and secret are both required")
    for what, problem in (("id", key_id_problem(key_id)), ("secret", key_problem(key_secret))):
        if problem:  # the one rule for what a header can carry; the message never quotes the key
            raise NotAuthorisedError("connect", f"the application key {what} {problem}")
    return api_url.rstrip("/")


def check_credentials(api_url: str, key_id: str, key_secret: str, user_agent: str = "raydog",
                      progress: Callable[[str], None] | None = None) -> None:
    """One authenticated request: NotAuthorisedError on a refused key, PlatformError when
    the URL cannot be reached or does not answer like YellowDog. While it retries an API it
    cannot reach yet, ``progress`` gets one line per attempt."""
    url = check_settings(api_url, key_id, key_secret)
    try:
        body = RestReader(url, key_id, key_secret, user_agent).get(PATH, OPERATION, missing_ok=False,
                                                                  progress=progress)
    except NotAuthorisedError as error:
        raise NotAuthorisedError(OPERATION, f"the application key was not accepted by {url}: {error.message}",
                                 status=error.status, error_type=error.error_type) from None
    _check_answer(url, body or b"")


def _check_answer(url: str, body: bytes) -> None:
    """A 200 must be the slice YellowDog sends ({"items": [...]}), not some other web page."""
    try:
        answer = json.loads(body)
    except ValueError:
        answer = None
    if not isinstance(answer, dict) or "items" not in answer:
        raise PlatformError(OPERATION, f"{url} answered, but not like the YellowDog API: "
                                       f"{body[:200].decode('utf-8', 'replace')!r}")
