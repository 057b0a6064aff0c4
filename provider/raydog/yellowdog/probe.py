"""The configure-time credential check, made without importing the SDK.

Terraform configures the provider in the plan and apply launches of every command, and
a wrong key must fail there, once, rather than once per resource. Importing
yellowdog_client costs ~0.3 s, which a launch that makes no other platform call (a plan
of new resources, a validate) would pay for this one request alone. So the check sends
the SDK's own cheapest authenticated request, ``GET /work/requirements?size=1&sliced=true``
with the ``yd-key`` header, through the standard library, honouring the proxy variables
and CA bundle that requests would, retried under the provider's one policy (policy.py). The SDK is
imported when a resource first calls the platform.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Callable

from . import policy
from .errors import NotAuthorisedError, PlatformError, classify, read_error_body

if TYPE_CHECKING:  # imported where used: raydog.yellowdog is imported by every launch (~35 ms)
    import urllib.error


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
    import http.client
    import urllib.error
    import urllib.request

    url = check_settings(api_url, key_id, key_secret)
    context = _tls_context(url)
    request = urllib.request.Request(url + PATH, headers={
        "Authorization": f"yd-key {key_id}:{key_secret}", "Accept": "application/json", "User-Agent": user_agent})

    def ask() -> None:
        try:
            with urllib.request.urlopen(request, timeout=policy.READ_TIMEOUT.total_seconds(),
                                        context=context) as response:
                body = response.read()
        except urllib.error.HTTPError as answer:
            raise _refusal(url, answer) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as failure:  # refused, timed out, cut off
            reason = getattr(failure, "reason", None) or failure
            raise PlatformError(OPERATION, f"cannot reach the YellowDog API at {url}: {reason}",
                                connection_lost=True) from None
        _check_answer(url, body)

    started = time.monotonic()

    def report(attempt: int, error: PlatformError, wait: float) -> None:
        if progress is not None:
            progress(f"waiting for the YellowDog API: {error.message}; "
                     f"attempt {attempt + 1} of {policy.ATTEMPTS} in {wait:.1f} s, "
                     f"{time.monotonic() - started:.0f} s so far")

    policy.call_retrying(ask, OPERATION, on_retry=report)


def _tls_context(url: str):
    """The CA bundle the SDK's requests would use: REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE, certifi."""
    if not url.startswith("https://"):
        return None
    import os
    import ssl

    import certifi

    return ssl.create_default_context(
        cafile=os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or certifi.where())


def _check_answer(url: str, body: bytes) -> None:
    """A 200 must be the slice YellowDog sends ({"items": [...]}), not some other web page."""
    try:
        answer = json.loads(body)
    except ValueError:
        answer = None
    if not isinstance(answer, dict) or "items" not in answer:
        raise PlatformError(OPERATION, f"{url} answered, but not like the YellowDog API: "
                                       f"{body[:200].decode('utf-8', 'replace')!r}")


def _refusal(url: str, answer: urllib.error.HTTPError) -> PlatformError:
    try:
        text = answer.read().decode("utf-8", "replace")
    except OSError:
        text = ""
    error_type, message = read_error_body(text)
    error = classify(OPERATION, message or answer.reason or f"HTTP {answer.code}", answer.code, None, error_type,
                     authorisation=error_type == "NotAuthorisedException")
    if isinstance(error, NotAuthorisedError):
        return NotAuthorisedError(OPERATION, f"the application key was not accepted by {url}: {error.message}",
                                  status=error.status, error_type=error.error_type)
    error.retry_after = _retry_after(answer)
    return error


def _retry_after(answer: urllib.error.HTTPError) -> float | None:
    value = answer.headers.get("Retry-After") if answer.headers else None
    try:
        return None if value is None else min(max(float(value), 0.0), policy.MAX_RETRY_AFTER)
    except ValueError:
        return None  # an HTTP date: fall back to the backoff
