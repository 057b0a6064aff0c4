"""The script a node task runs: the configured one, or the built-in default for its role.

An unset script attribute means the built-in template; state keeps it null and records
``script_sha256`` instead, so neither plans nor state repeat the default script per pool.
"""

from __future__ import annotations

import functools
from typing import Optional


@functools.lru_cache(maxsize=None)
def default_script(template: str) -> str:
    """The built-in ``template`` (head, worker, observability) rendered with its defaults."""
    from raydog import node_scripts as scripts  # Jinja: only launches that plan or create need it

    return scripts.render_builtin(template, {})


def effective_script(configured: Optional[str], template: str) -> str:
    return configured if configured else default_script(template)


def script_sha256(text: str) -> str:
    from raydog.node_scripts.render import sha256_hex

    return sha256_hex(text)


def stored_script(task_data: Optional[str], template: str) -> Optional[str]:
    """What state records for a script read from the platform: null when it is the default."""
    return None if task_data == default_script(template) else task_data
