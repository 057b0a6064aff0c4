"""raydog_node_script: render a node start-up script so the plan shows exactly what a node runs."""

from __future__ import annotations

from typing import Optional

from tf import types
from tf.iface import Config, DataSource, ReadDataContext, State
from tf.schema import Attribute, Schema
from tf.types import Unknown
from tf.utils import Diagnostics

from raydog import node_scripts


class NodeScriptDataSource(DataSource):
    def __init__(self, provider) -> None:
        self.provider = provider

    @classmethod
    def get_name(cls) -> str:
        return "node_script"

    @classmethod
    def get_schema(cls) -> Schema:
        builtins = ", ".join(f"`{name}`" for name in node_scripts.BUILTIN_TEMPLATES)
        return Schema(
            version=0,
            description="Renders a built-in node script template, or your own Jinja text, with variables.",
            attributes=[
                Attribute("template", types.String(), description=f"Built-in template to render: {builtins}.", optional=True),
                Attribute("source", types.String(), description="Your own Jinja template text (instead of `template`).", optional=True),
                Attribute("vars", types.Map(types.String()), description="Template variables.", optional=True),
                Attribute("content", types.String(), description="The rendered script.", computed=True),
                Attribute("sha256", types.String(), description="SHA-256 of `content`, hex.", computed=True),
            ],
        )

    def validate(self, diags: Diagnostics, type_name: str, config: Config) -> None:
        super().validate(diags, type_name, config)
        template, source = config.get("template"), config.get("source")
        if template is None and source is None:
            diags.add_error("Missing template or source", "Set `template` (a built-in script) or `source` (your Jinja text).")
            return
        if template is not None and source is not None:
            diags.add_error("Conflicting template and source", "Set only one of `template` and `source`.", path=["source"])
            return
        if template is not None and template is not Unknown and template not in node_scripts.BUILTIN_TEMPLATES:
            diags.add_error(
                f'Unknown template "{template}"',
                f"Built-in templates are: {', '.join(node_scripts.BUILTIN_TEMPLATES)}.",
                path=["template"],
            )
            return
        variables = config.get("vars")
        if not (_known(template) and _known(source)) or variables is Unknown:
            return
        if _known(variables):
            render(diags, config)
        else:
            check_variable_names(diags, config)

    def read(self, ctx: ReadDataContext, config: Config) -> Optional[State]:
        content = render(ctx.diagnostics, config)
        if content is None:
            return None
        return {**config, "content": content, "sha256": node_scripts.sha256_hex(content)}


def _known(value) -> bool:
    if value is Unknown:
        return False
    if isinstance(value, dict):
        return all(v is not Unknown for v in value.values())
    return True


def render(diags: Diagnostics, config: Config) -> Optional[str]:
    variables = dict(config.get("vars") or {})
    try:
        if config.get("template") is not None:
            return node_scripts.render_builtin(config["template"], variables)
        return node_scripts.render_text(config["source"], variables)
    except node_scripts.ScriptError as exc:
        diags.add_error("Cannot render the node script", str(exc), path=_error_path(config, exc))
        return None


def check_variable_names(diags: Diagnostics, config: Config) -> None:
    """With some ``vars`` values still unknown, report what their names alone show wrong.

    A built-in template takes only its documented variables. A user's template is rendered
    twice with the unknown values stood in by "" and by "1"; a variable undefined in both
    renders is needed whatever the values turn out to be, so the plan can say so now.
    Any other failure waits for the real values."""
    variables = dict(config.get("vars") or {})
    if config.get("template") is not None:
        known = node_scripts.builtin_variables(config["template"])
        for key in variables:
            if key not in known:
                diags.add_error(
                    "Cannot render the node script",
                    f"unknown variable {key!r} for the built-in template {config['template']!r}; "
                    f"it takes: {', '.join(known)}",
                    path=["vars", (key,)],
                )
        return
    failures = []
    for stand_in in ("", "1"):
        values = {k: (stand_in if v is Unknown else v) for k, v in variables.items()}
        try:
            node_scripts.render_text(config["source"], values)
            return
        except node_scripts.ScriptError as exc:
            if exc.variable is None or exc.variable in variables:
                return
            failures.append(exc)
    if len({exc.variable for exc in failures}) == 1:
        diags.add_error("Cannot render the node script", str(failures[0]), path=["source"])


def _error_path(config: Config, exc: node_scripts.ScriptError) -> list:
    """The variable's entry in ``vars`` when the error is about one given there, else the template."""
    if exc.variable is not None and exc.variable in (config.get("vars") or {}):
        return ["vars", (exc.variable,)]
    return ["template"] if config.get("template") is not None else ["source"]
