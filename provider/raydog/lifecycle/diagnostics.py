"""The one place a platform error or a script-contract finding becomes a diagnostic."""

from __future__ import annotations

from typing import Optional

from tf.types import Unknown
from tf.utils import Diagnostics

from raydog.yellowdog import TaskFailedError


def report(diags: Diagnostics, summary: str, exc: Exception, path: Optional[list] = None) -> None:
    detail = str(exc)
    if isinstance(exc, TaskFailedError) and exc.detail and exc.detail not in detail:
        detail = f"{detail}\n{exc.detail}"
    diags.add_error(summary, detail, path=path)


def lint_script_attribute(diags: Diagnostics, config: dict, attribute: str, role: str) -> None:
    """Plan-time warnings when a script given to a head or worker breaks the script contract."""
    from raydog import node_scripts  # the bash reader: only validate launches need it

    content = config.get(attribute)
    if not isinstance(content, str) or content is Unknown:
        return
    for finding in node_scripts.lint_script(content, role):
        diags.add_warning(finding.summary, finding.detail, path=[attribute])
