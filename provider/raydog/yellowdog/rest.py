"""Reads through the standard library, for the launches that must not import the SDK.

Importing yellowdog_client costs ~0.35 s of CPU, and Terraform starts the provider afresh
for every command: for schemas, validation, the plan and the apply. A plan of new
resources needs only a few reads (is the key accepted, does the template exist, is the
pool's name free), so those go through urllib instead: the SDK's own paths and
``yd-key`` header, the proxy variables and CA bundle that requests would honour, and the
provider's one retry policy (policy.py). Everything that writes, and every read of an
object Terraform already manages, goes through the SDK (client.py).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import quote

from . import policy
from .errors import PlatformError, classify, read_error_body

if TYPE_CHECKING:  # imported where used: raydog.yellowdog is imported by every launch
    import urllib.error


class RestReader:
    """Authenticated GETs of the YellowDog API; safe to share between threads."""

    def __init__(self, api_url: str, key_id: str, key_secret: str, user_agent: str = "raydog") -> None:
        self.url = api_url.rstrip("/")
        self._headers = {"Authorization": f"yd-key {key_id}:{key_secret}", "Accept": "application/json",
                         "User-Agent": user_agent}
        self._context = _tls_context(self.url)

    def get(self, path: str, operation: str, object_id: str | None = None, *, missing_ok: bool = True,
            progress: Callable[[str], None] | None = None) -> bytes | None:
        """The body of ``GET <api_url><path>``; None for 404 when ``missing_ok``. Transient
        failures are retried under the provider's policy (``progress`` gets one line per
        retry); anything else raises the PlatformError the SDK path would."""
        import http.client
        import time
        import urllib.error
        import urllib.request

        request = urllib.request.Request(self.url + path, headers=self._headers)

        def ask() -> bytes | None:
            try:
                with urllib.request.urlopen(request, timeout=policy.READ_TIMEOUT.total_seconds(),
                                            context=self._context) as response:
                    return response.read()
            except urllib.error.HTTPError as answer:
                if answer.code == 404 and missing_ok:
                    return None
                raise _refusal(operation, object_id, answer) from None
            except (urllib.error.URLError, OSError, http.client.HTTPException) as failure:  # refused, timed out, cut off
                reason = getattr(failure, "reason", None) or failure
                raise PlatformError(operation, f"cannot reach the YellowDog API at {self.url}: {reason}",
                                    object_id=object_id, connection_lost=True) from None

        started = time.monotonic()

        def report(attempt: int, error: PlatformError, wait: float) -> None:
            if progress is not None:
                progress(f"waiting for the YellowDog API: {error.message}; "
                         f"attempt {attempt + 1} of {policy.ATTEMPTS} in {wait:.1f} s, "
                         f"{time.monotonic() - started:.0f} s so far")

        return policy.call_retrying(ask, operation, on_retry=report)

    def get_json(self, path: str, operation: str, object_id: str | None = None) -> Any:
        """The decoded body of a GET (None for 404); an answer that is not JSON is a PlatformError."""
        body = self.get(path, operation, object_id)
        if body is None:
            return None
        try:
            return json.loads(body)
        except ValueError:
            raise PlatformError(operation, f"{self.url} answered, but not with JSON: "
                                           f"{body[:200].decode('utf-8', 'replace')!r}", object_id=object_id) from None

    def resolve_template(self, reference: str) -> str | None:
        """The id of the compute requirement template ``reference`` names (its id, or
        ``namespace/name``); None if there is none. The same answer as the SDK path's
        ``TemplateOps.resolve_template``."""
        namespace, name = template_reference(reference)
        path = (f"/compute/templates/requirements/{_segment(name)}" if namespace is None else
                f"/compute/namespaces/{_segment(namespace)}/templates/requirements/{_segment(name)}")
        found = self.get_json(path, "read compute requirement template", reference)
        return found.get("id") if isinstance(found, dict) else None

    def pool_name_used(self, namespace: str, name: str) -> bool:
        """Whether YellowDog has a worker pool of that name, in any status (one GET)."""
        label = f"{namespace}/{name}"
        return self.get(f"/workerPools/{_segment(namespace)}/{_segment(name)}", "read worker pool", label) is not None


def template_reference(reference: str) -> tuple[str | None, str]:
    """(namespace, name) of a ``namespace/name`` template reference; (None, id) of an id."""
    if reference.startswith("ydid:") or "/" not in reference:
        return None, reference
    namespace, name = reference.split("/", 1)
    return namespace, name


def _segment(value: str) -> str:
    """One path segment, escaped as requests would send it (names are already checked)."""
    return quote(value, safe=":@")


def _tls_context(url: str):
    """The CA bundle the SDK's requests would use: REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE, certifi."""
    if not url.startswith("https://"):
        return None
    import os
    import ssl

    import certifi

    return ssl.create_default_context(
        cafile=os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or certifi.where())


def _refusal(operation: str, object_id: str | None, answer: urllib.error.HTTPError) -> PlatformError:
    try:
        text = answer.read().decode("utf-8", "replace")
    except OSError:
        text = ""
    error_type, message = read_error_body(text)
    error = classify(operation, message or answer.reason or f"HTTP {answer.code}", answer.code, object_id, error_type,
                     authorisation=error_type == "NotAuthorisedException")
    error.retry_after = _retry_after(answer)
    return error


def _retry_after(answer: urllib.error.HTTPError) -> float | None:
    value = answer.headers.get("Retry-After") if answer.headers else None
    try:
        return None if value is None else min(max(float(value), 0.0), policy.MAX_RETRY_AFTER)
    except ValueError:
        return None  # an HTTP date: fall back to the backoff

