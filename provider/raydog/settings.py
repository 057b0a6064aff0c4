"""Settings and fixed numbers the whole provider shares, each defined once.

Credentials: the provider block's value, else its environment variable, else the default
(``resolve_settings``); the one rule for what a usable URL and key look like
(``settings_problems``), used by the provider's validation and configure, by the YellowDog
layer before it connects, and by the CLI commands that talk to the platform.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional
from urllib.parse import urlparse

from raydog.redaction import redact_url

DEFAULT_API_URL = "https://api.yellowdog.ai"
PROVIDER_ADDRESS = "registry.terraform.io/yellowdog/raydog"

# provider attribute -> the environment variable it falls back to
ENV_FALLBACKS = {
    "api_url": "YD_API_URL",
    "application_key_id": "YD_API_KEY_ID",
    "application_key_secret": "YD_API_KEY_SECRET",
}

# Ray's ports on the head node, and the observability node's services.
RAY_GCS_PORT = 6379
RAY_CLIENT_PORT = 10001
RAY_DASHBOARD_PORT = 8265
PROMETHEUS_PORT = 9090
GRAFANA_PORT = 3000

# What `readiness` may say a create or update waits for: the node's task EXECUTING, or also
# the node in Ray (the head's GCS answers, and lists the worker nodes alive).
READINESS_EXECUTING = "executing"
READINESS_RAY = "ray"
READINESS_VALUES = (READINESS_EXECUTING, READINESS_RAY)
# How long Ray may take to drain the nodes a shrink or a pool removal ends (`drain_timeout`).
DEFAULT_DRAIN_TIMEOUT = "5m"


def gcs_address(host: str) -> str:
    """The head's GCS at ``host``: ``host:6379``, an IPv6 address in brackets."""
    return f"[{host}]:{RAY_GCS_PORT}" if ":" in host else f"{host}:{RAY_GCS_PORT}"


@dataclass(frozen=True)
class Settings:
    """Where the YellowDog API is and which application key to use."""

    api_url: str
    key_id: Optional[str]
    key_secret: Optional[str] = None

    def __repr__(self) -> str:  # never show the secret, whatever prints this object
        return f"Settings(api_url={redact_url(self.api_url)!r}, key_id={self.key_id!r}, key_secret=<hidden>)"


def resolve_settings(config: Mapping[str, Optional[str]], environ: Mapping[str, str]) -> Settings:
    """The configuration's value, else the environment variable, else the default."""
    def pick(attribute: str) -> Optional[str]:
        value = config.get(attribute)
        return value if value else (environ.get(ENV_FALLBACKS[attribute]) or None)

    api_url = (pick("api_url") or DEFAULT_API_URL).rstrip("/")
    return Settings(api_url=api_url, key_id=pick("application_key_id"), key_secret=pick("application_key_secret"))


def url_problem(url: str) -> Optional[str]:
    """Why ``url`` is not a usable API URL, or None. The URL is quoted with any user-info redacted."""
    shown = redact_url(url)
    if any(c.isspace() or not c.isprintable() for c in url):
        return f'"{shown.strip()}" contains spaces, newlines or control characters; give the bare URL, such as "{DEFAULT_API_URL}"'
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        return f'"{shown}" is not an http(s) URL, such as "{DEFAULT_API_URL}"'
    if "@" in parsed.netloc:
        return (f'"{shown}" holds a user name or password (user-info); remove it and give the application key '
                "in application_key_id and application_key_secret")
    try:
        _ = parsed.port  # raises for a port that is not a number from 0 to 65535
    except ValueError:
        return f'"{shown}" has an invalid port; use a number from 1 to 65535'
    if not parsed.hostname:
        return f'"{shown}" has no host name, such as "{DEFAULT_API_URL}"'
    return None


def key_problem(value: Optional[str]) -> Optional[str]:
    """Why an application key id or secret given as ``value`` is unusable, or None.

    The key travels in one HTTP header, ``Authorization: yd-key ID:SECRET``: whitespace
    (a newline left by ``file()``), control characters and characters outside Latin-1
    cannot be sent, and ``:`` in the id would split the header in the wrong place. The
    message never quotes the value."""
    if value is None:
        return None
    if not value.strip():
        return "must not be empty"
    if value != value.strip():
        return ("has spaces or a newline at its start or end (from a file? use trimspace(file(...))); "
                "remove them")
    if any(c.isspace() for c in value):
        return "must not contain spaces, tabs or newlines"
    if any(not c.isprintable() or ord(c) > 0xFF for c in value):
        return ("contains control characters or characters outside Latin-1, which an HTTP header cannot carry; "
                "copy the key again from the YellowDog portal")
    return None


def key_id_problem(value: Optional[str]) -> Optional[str]:
    """``key_problem``, and no ":" (it separates the id from the secret in the header)."""
    if value is not None and ":" in value:
        return 'must not contain ":" (the Authorization header is "yd-key ID:SECRET")'
    return key_problem(value)


def settings_problems(values: Mapping[str, Optional[str]]) -> list[tuple[str, str]]:
    """(attribute, message) for each given value that breaks the rule; absent values pass."""
    found = []
    if values.get("api_url") is not None and (problem := url_problem(values["api_url"])):
        found.append(("api_url", problem))
    if problem := key_id_problem(values.get("application_key_id")):
        found.append(("application_key_id", problem))
    if problem := key_problem(values.get("application_key_secret")):
        found.append(("application_key_secret", problem))
    return found
