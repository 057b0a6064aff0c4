"""The script a node task runs: the configured one, or the built-in default for its role.

An unset script attribute means the built-in template; state keeps it null and records
``script_sha256`` instead, so neither plans nor state repeat the default script per pool.
"""

from __future__ import annotations

import threading
from typing import Optional

# The built-in templates that are the node resources' default scripts (observability, head,
# worker pools): node_scripts.BUILTIN_TEMPLATES less "userdata", which no resource runs as its script.
NODE_DEFAULT_TEMPLATES = ("observability", "head", "worker")


_rendered: dict[str, str] = {}
_rendering = threading.Lock()


def default_script(template: str) -> str:
    """The built-in ``template`` (head, worker, observability) rendered with its defaults, once
    per process: the many node resources of one plan, planned at once, wait for one render."""
    script = _rendered.get(template)
    if script is None:
        with _rendering:
            script = _rendered.get(template)
            if script is None:
                from raydog import node_scripts as scripts  # Jinja: only launches that plan or create need it

                script = _rendered[template] = scripts.render_builtin(template, {})
    return script


def warm_default_scripts() -> None:
    """Render the built-in scripts in the background, once per process: a new cluster's node
    resources plan right after it is created, and each plan shows its script's SHA-256. Jinja's
    import and the first renders (~0.05-0.1 s) then happen while Terraform records the cluster,
    instead of before the first node's plan can send its first request."""
    threading.Thread(target=lambda: [default_script(name) for name in NODE_DEFAULT_TEMPLATES],
                     name="raydog-default-scripts", daemon=True).start()


def effective_script(configured: Optional[str], template: str) -> str:
    return configured if configured else default_script(template)


def script_sha256(text: str) -> str:
    from raydog.node_scripts.render import sha256_hex

    return sha256_hex(text)


def stored_script(task_data: Optional[str], template: str) -> Optional[str]:
    """What state records for a script read from the platform: null when it is the default."""
    return None if task_data == default_script(template) else task_data
