"""What the launches of one Terraform command share: a private directory the command's fork
server (raydog.fork_server) makes for it, and what is kept there.

Terraform configures the provider in each launch that plans or applies, and the provider
checks the application key each time (one request, for an error that names the attribute).
In one command the key was then checked a moment earlier by the plan's launch: a launch
forked by the command's fork server finds that check recorded here and skips its own.
A launch that is not forked (the first of a command, a fork server that is off) always
checks. The record is a hash of the API URL, key id and secret, in a directory only the user
can open, removed with the fork server when the command ends.
"""

from __future__ import annotations

import hashlib
import os
from typing import Optional

# Set in a child of the fork server: the command's directory.
directory: Optional[str] = None


def _record(api_url: str, key_id: str, key_secret: str) -> Optional[str]:
    if directory is None:
        return None
    digest = hashlib.sha256("\0".join((api_url, key_id, key_secret)).encode("utf-8", "surrogateescape")).hexdigest()
    return os.path.join(directory, f"credentials-{digest[:40]}")


def credentials_checked(api_url: str, key_id: str, key_secret: str) -> bool:
    """Whether an earlier launch of this command checked these settings and the platform took them."""
    path = _record(api_url, key_id, key_secret)
    return path is not None and os.path.isfile(path)


def remember_credentials(api_url: str, key_id: str, key_secret: str) -> None:
    """Record that these settings were checked and taken (nothing outside a forked launch)."""
    path = _record(api_url, key_id, key_secret)
    if path is None:
        return
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
    except OSError:
        pass  # the next launch checks again
