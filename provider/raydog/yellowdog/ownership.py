"""How an object on the platform carries the token of the create that made it.

A create never adopts a live object it cannot prove it made. The proof is a token, fresh
for every create, that the caller records before the request (lifecycle/ownership.py) and
that the platform keeps on the object:

- a worker pool: its worker tag (the pool's task group runs on that tag);
- a work requirement: the tag of its owner marker, a task group named ``raydog-owner``
  that holds no task and never finishes, created with the requirement in the same request.

A lost reply, a retried request or a killed run leaves an object whose token the caller
can show; a same-named object made by anybody else carries a token the caller never saw.
"""

from __future__ import annotations

import os

OWNER_GROUP = "raydog-owner"
_PREFIX = "rd-"


def new_owner_token() -> str:
    """A fresh token: a valid YellowDog name (it is used as a tag), 19 characters."""
    return f"{_PREFIX}{os.urandom(8).hex()}"  # what secrets.token_hex(8) does, without importing hmac and hashlib


def is_owner_group(name: str | None) -> bool:
    return name == OWNER_GROUP
