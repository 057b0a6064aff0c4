"""Node scripts: the built-in Jinja templates rendered (``render``) and scripts checked
against the node script contract (``lint``, reading bash with ``bash_words``).

The templates themselves stay in the repository's top-level ``scripts/`` directory, where
users read and copy them; the wheel ships them as ``raydog/node_scripts/templates/``.
"""

from raydog.node_scripts.lint import LintFinding, lint_script
from raydog.node_scripts.render import (
    BUILTIN_TEMPLATES,
    TEMPLATE_DIRS,
    ScriptError,
    TemplateVariable,
    builtin_source,
    builtin_variable_docs,
    builtin_variables,
    render_builtin,
    render_text,
    sha256_hex,
    templates_dir,
)

__all__ = [
    "BUILTIN_TEMPLATES",
    "TEMPLATE_DIRS",
    "LintFinding",
    "ScriptError",
    "TemplateVariable",
    "builtin_source",
    "builtin_variable_docs",
    "builtin_variables",
    "lint_script",
    "render_builtin",
    "render_text",
    "sha256_hex",
    "templates_dir",
]
