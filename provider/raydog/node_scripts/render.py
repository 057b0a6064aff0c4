"""Node scripts: render the built-in Jinja templates and users' own template text.

The built-in templates live in the repository's top-level ``scripts/`` directory and ship
in the wheel as the package data ``raydog/node_scripts/templates/``. Each one documents
its variables and their defaults in the Jinja comment at its top; that comment is the
single source of the defaults, so rendering a built-in with no variables gives a working
script.

Rendering is strict: a variable the template uses but nobody defined is an error that
names it, so a typo in ``vars`` fails at plan time instead of on a node.
"""

from __future__ import annotations

import functools
import json
import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: most provider launches render nothing (~20 ms saved)
    import jinja2

BUILTIN_TEMPLATES = ("head", "worker", "observability", "userdata")

_TEMPLATE_FILES = {
    "head": "head.sh.j2",
    "worker": "worker.sh.j2",
    "observability": "observability.sh.j2",
    "userdata": "node-setup-userdata.sh.j2",
}

# Where the templates are: the wheel's package data first, then the source checkout
# (an editable install runs this file from provider/raydog/node_scripts/, three levels
# under the repository).
TEMPLATE_DIRS = (
    Path(__file__).resolve().parent / "templates",
    Path(__file__).resolve().parents[3] / "scripts",
)


class ScriptError(Exception):
    """A template that cannot be rendered: bad syntax, an undefined or unknown variable."""

    def __init__(self, message: str, *, variable: str | None = None, line: int | None = None):
        super().__init__(message)
        self.message = message
        self.variable = variable
        self.line = line


@dataclass(frozen=True)
class TemplateVariable:
    """One documented variable of a built-in template."""

    name: str
    default: str
    description: str


def sha256_hex(content: str | bytes) -> str:
    """The SHA-256 of a script (UTF-8 encoded when given as text), as lowercase hex."""
    import hashlib  # here: it loads OpenSSL (~3 ms), which a launch that renders no script never needs

    data = content.encode("utf-8") if isinstance(content, str) else content
    return hashlib.sha256(data).hexdigest()


def templates_dir(candidates: Sequence[Path] = TEMPLATE_DIRS) -> Path:
    """The first directory of ``candidates`` that holds every built-in template."""
    for directory in candidates:
        if all((directory / file).is_file() for file in _TEMPLATE_FILES.values()):
            return directory
    searched = ", ".join(str(d) for d in candidates)
    raise ScriptError(f"the built-in node script templates were not found (searched {searched})")


def render_builtin(name: str, vars: Mapping[str, str]) -> str:
    """Render the built-in template ``name`` with ``vars`` over its documented defaults.

    Raises ScriptError for an unknown template, a variable the template does not take,
    or a value the template rejects."""
    defaults = builtin_variables(name)
    for key, value in vars.items():
        if key not in defaults:
            known = ", ".join(defaults)
            raise ScriptError(
                f"unknown variable {key!r} for the built-in template {name!r}; it takes: {known}",
                variable=key,
            )
        if not isinstance(value, str):
            raise ScriptError(f"variable {key!r} must be a string, got {type(value).__name__}", variable=key)
        if defaults[key] in ("true", "false") and value.strip().lower() not in _TRUE + _FALSE:
            raise ScriptError(f'variable {key!r} must be "true" or "false", got {value!r}', variable=key)
    env = _builtin_environment(str(templates_dir()))
    file = _TEMPLATE_FILES[name]
    return _render(lambda: env.get_template(file), {**defaults, **vars}, file)


def render_text(template_text: str, vars: Mapping[str, object]) -> str:
    """Render a user's Jinja template text with ``vars`` (the built-ins' filters available)."""
    return _render(lambda: _text_environment().from_string(template_text), dict(vars), "template")


def builtin_variables(name: str) -> dict[str, str]:
    """The variables the built-in template ``name`` documents, with their defaults, in order."""
    return {v.name: v.default for v in builtin_variable_docs(name)}


def builtin_variable_docs(name: str) -> tuple[TemplateVariable, ...]:
    """The variables the built-in template ``name`` documents: name, default, description."""
    if name not in _TEMPLATE_FILES:
        raise ScriptError(
            f"unknown built-in template {name!r}; choose one of: {', '.join(BUILTIN_TEMPLATES)}"
        )
    return _parse_variables(_TEMPLATE_FILES[name], builtin_source(name))


def builtin_source(name: str) -> str:
    """The unrendered text of the built-in template ``name``."""
    if name not in _TEMPLATE_FILES:
        raise ScriptError(
            f"unknown built-in template {name!r}; choose one of: {', '.join(BUILTIN_TEMPLATES)}"
        )
    return (templates_dir() / _TEMPLATE_FILES[name]).read_text(encoding="utf-8")


def _shquote(value: object) -> str:
    """A value as one shell word."""
    return shlex.quote(str(value))


def _shwords(value: object) -> str:
    """A value holding shell words, re-quoted word by word (safe inside a bash array)."""
    try:
        words = shlex.split(str(value))
    except ValueError as exc:
        raise ScriptError(f"cannot split {str(value)!r} into shell words: {exc}") from None
    return " ".join(shlex.quote(word) for word in words)


_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0", "")


def _flag(value: object) -> bool:
    """A yes/no variable: "true" or "false" (also yes/no, on/off, 1/0)."""
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ScriptError(f'expected "true" or "false", got {str(value)!r}')


def _make_environment(loader: jinja2.BaseLoader | None) -> jinja2.Environment:
    """Templates render sandboxed: a template (a user's ``source`` above all) reaches no
    Python attribute that starts with "_", no method that changes a value, no global of
    Python or of the process (no ``os.environ``), and no string or number of unbounded size."""
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class _Sandbox(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset({"*", "**"})

        def call_binop(self, context, operator, left, right):
            return _bounded_binop(operator, left, right)

    env = _Sandbox(
        loader=loader,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(shquote=_shquote, shwords=_shwords, flag=_flag)
    return env


# The largest string or number a template may build with "*" or "**" (a node script's size).
MAX_RENDERED_SIZE = 1 << 20


def _bounded_binop(operator: str, left: object, right: object) -> object:
    """``left * right`` or ``left ** right``, refused when the result would be huge
    (``{{ "x" * 10**10 }}`` would take the provider's memory, ``9**9**9`` its CPU)."""
    if operator == "**":
        if isinstance(left, int) and isinstance(right, int) and right > 0 and (
                abs(left) > 1 and right * max(abs(left).bit_length(), 1) > 8 * MAX_RENDERED_SIZE):
            raise ScriptError(f"{left} ** {right} is too large")
        return left ** right
    sizes = [len(v) for v in (left, right) if isinstance(v, (str, list, tuple))]
    counts = [v for v in (left, right) if isinstance(v, int) and not isinstance(v, bool)]
    if sizes and counts and sizes[0] * max(counts[0], 0) > MAX_RENDERED_SIZE:
        raise ScriptError(f"a string or list repeated {counts[0]} times is too large (at most {MAX_RENDERED_SIZE} items)")
    return left * right


@functools.cache
def _builtin_environment(directory: str) -> jinja2.Environment:
    import jinja2

    return _make_environment(jinja2.FileSystemLoader(directory))


@functools.lru_cache(maxsize=1)
def _text_environment() -> jinja2.Environment:
    return _make_environment(None)


_UNDEFINED = re.compile(r"^'([^']+)' is undefined$")
_COMMENT_HINT = " (bash's ${#...} opens a Jinja comment: write ${{ '{#' }}...} or wrap the line in {% raw %}...{% endraw %})"


def _render(load: Callable[[], jinja2.Template], values: dict[str, object], source_name: str) -> str:
    """Load and render a template, turning every Jinja failure into a ScriptError."""
    import jinja2

    try:
        template = load()
        return template.render(values)
    except jinja2.TemplateSyntaxError as exc:
        hint = _COMMENT_HINT if "comment" in exc.message.lower() else ""
        raise ScriptError(
            f"{source_name} line {exc.lineno}: syntax error: {exc.message}{hint}", line=exc.lineno
        ) from None
    except jinja2.UndefinedError as exc:
        line = _template_line(exc.__traceback__)
        where = f"{source_name} line {line}" if line else source_name
        match = _UNDEFINED.match(str(exc))
        if match:
            raise ScriptError(
                f"{where}: undefined variable {match.group(1)!r} (give it in vars)",
                variable=match.group(1),
                line=line,
            ) from None
        raise ScriptError(f"{where}: {exc}", line=line) from None
    except Exception as exc:  # noqa: BLE001 - a user's template can fail in any way; say where
        line = _template_line(exc.__traceback__)
        where = f"{source_name} line {line}" if line else source_name
        message = exc.message if isinstance(exc, ScriptError) else str(exc)
        raise ScriptError(f"{where}: {message}", line=line) from None


def _template_line(tb: TracebackType | None) -> int | None:
    """The template line of the innermost template frame of a rendering traceback."""
    line = None
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename == "<template>" or filename.endswith(".j2"):
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


_HEADER = re.compile(r"\A\{#-?(?P<body>.*?)-?#\}", re.DOTALL)
_VARIABLE_LINE = re.compile(r'^  (?P<name>[a-z_][a-z0-9_]*) = (?P<default>".*")\s*$')
_DESCRIPTION_LINE = re.compile(r"^      \s*(?P<text>\S.*)$")


def _parse_variables(file: str, source: str) -> tuple[TemplateVariable, ...]:
    """Read the ``Variables`` section of a template's header comment.

    Each variable is a line ``  name = "default"`` (the default is a JSON string) followed
    by its description, indented six spaces."""
    header = _HEADER.match(source)
    if header is None:
        raise ScriptError(f"{file}: no header comment documenting its variables")
    lines = header.group("body").splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.startswith("Variables"))
    except StopIteration:
        raise ScriptError(f"{file}: the header comment has no Variables section") from None
    found: list[tuple[str, str, list[str]]] = []
    for line in lines[start + 1 :]:
        if not line.strip():
            continue
        if match := _VARIABLE_LINE.match(line):
            found.append((match.group("name"), json.loads(match.group("default")), []))
        elif (match := _DESCRIPTION_LINE.match(line)) and found:
            found[-1][2].append(match.group("text"))
        else:
            raise ScriptError(f"{file}: cannot read this line of the Variables section: {line!r}")
    return tuple(TemplateVariable(name, default, " ".join(text)) for name, default, text in found)
