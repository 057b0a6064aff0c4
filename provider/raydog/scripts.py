"""Node scripts: render the Jinja templates and lint scripts against the script contract.

The built-in templates live in the repository's top-level ``scripts/`` directory and ship
in the wheel as the package data ``raydog/node_scripts/``. Each one documents its
variables and their defaults in the Jinja comment at its top; that comment is the single
source of the defaults, so rendering a built-in with no variables gives a working script.

Rendering is strict: a variable the template uses but nobody defined is an error that
names it, so a typo in ``vars`` fails at plan time instead of on a node.

The lint checks what RayDog asks of a head or worker task script: an EXIT trap that stops
Ray, a ``ray start`` that blocks (``--head`` on the head), and, on workers, an address
read from ``RAY_HEAD_IP`` or ``RAY_HEAD_NODE_PRIVATE_IP``. It reads bash as text with a
small tokenizer, is lenient wherever it cannot tell (a ``ray start $ARGS`` whose ARGS
come from outside the script is given the benefit of the doubt), and its findings are
warnings, never errors.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Literal

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
# (an editable install runs this file from provider/raydog/, two levels under the repo).
TEMPLATE_DIRS = (
    Path(__file__).resolve().parent / "node_scripts",
    Path(__file__).resolve().parents[2] / "scripts",
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


@dataclass(frozen=True)
class LintFinding:
    """One way a script breaks the node script contract (a plan-time warning)."""

    code: str
    summary: str
    detail: str


# ---------------------------------------------------------------------------------------
# Rendering


def sha256_hex(content: str | bytes) -> str:
    """The SHA-256 of a script (UTF-8 encoded when given as text), as lowercase hex."""
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


def referenced_variables(template_text: str) -> set[str]:
    """The variables a Jinja template text reads (raises ScriptError on a syntax error)."""
    import jinja2
    from jinja2 import meta

    env = _text_environment()
    try:
        return meta.find_undeclared_variables(env.parse(template_text))
    except jinja2.TemplateSyntaxError as exc:
        raise ScriptError(
            f"template line {exc.lineno}: syntax error: {exc.message}", line=exc.lineno
        ) from None


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


# ---------------------------------------------------------------------------------------
# The script contract lint


def lint_script(content: str, role: Literal["head", "worker"]) -> list[LintFinding]:
    """Check a head or worker task script against the node script contract.

    Returns one finding per broken rule; an empty list means the script looks right."""
    if role not in ("head", "worker"):
        raise ValueError(f"role must be 'head' or 'worker', not {role!r}")
    script = _Script(content)
    findings = _check_exit_trap(script)
    findings += _check_ray_start(script, role)
    if role == "worker":
        findings += _check_head_address(script)
    return findings


_TRAP_FIX = 'add `trap "ray stop" EXIT` (or a function that runs `ray stop`) before `ray start`'


def _check_exit_trap(script: _Script) -> list[LintFinding]:
    exit_traps: list[str] = []
    other_traps: list[str] = []
    for words in script.commands:
        for action, signals in _traps(words):
            (exit_traps if {"EXIT", "0", "SIGEXIT"} & signals else other_traps).append(action)
    if any(script.stops_ray(action) for action in exit_traps):
        return []
    if exit_traps:
        return [
            LintFinding(
                "exit-trap-no-ray-stop",
                "The EXIT trap does not stop Ray",
                f"The script's EXIT trap runs {exit_traps[-1]!r}, which never reaches `ray stop`. "
                "When YellowDog aborts the task, Ray keeps running on the node. "
                f"Make the trap stop Ray: {_TRAP_FIX}.",
            )
        ]
    also = ""
    if any(script.stops_ray(action) for action in other_traps):
        also = " A trap on other signals stops Ray, but only an EXIT trap also runs when Ray itself ends."
    return [
        LintFinding(
            "exit-trap-missing",
            "No EXIT trap stops Ray",
            "The script sets no `trap ... EXIT`, so when YellowDog aborts the task (terraform destroy, "
            f"a smaller pool) Ray keeps running on the node.{also} To fix it, {_TRAP_FIX}.",
        )
    ]


def _check_ray_start(script: _Script, role: str) -> list[LintFinding]:
    starts = script.ray_starts()
    if not starts:
        return [
            LintFinding(
                "ray-start-missing",
                "No `ray start` command",
                "The script never runs `ray start`, so the node does not join the Ray cluster "
                "(if Ray is started some other way, it must block for as long as Ray runs). "
                "Run `ray start ... --block`" + (" --head" if role == "head" else "") + ".",
            )
        ]
    findings = []
    if not any(s.has("--block") for s in starts):
        findings.append(
            LintFinding(
                "ray-start-no-block",
                "`ray start` without --block",
                f"`{starts[0].text}` returns once Ray is up, so the task ends while Ray runs on, "
                "and YellowDog no longer tracks the node's Ray. Add --block so that the task lives "
                "exactly as long as Ray.",
            )
        )
    execs = [s for s in starts if s.exec and s.in_main]
    if execs:
        findings.append(
            LintFinding(
                "ray-start-exec",
                "`exec ray start` skips the EXIT trap",
                f"`exec {execs[0].text}` replaces bash with Ray, so the EXIT trap never runs and "
                "aborting the task does not stop Ray. Drop `exec`.",
            )
        )
    if role == "head" and not any(s.has("--head") for s in starts):
        findings.append(
            LintFinding(
                "ray-start-no-head",
                "The head's `ray start` lacks --head",
                f"`{starts[0].text}` starts a worker, not a head. Run `ray start --head --port=6379 ... --block`.",
            )
        )
    if role == "worker":
        heads = [s for s in starts if s.in_main and s.has("--head", lenient=False)]
        if heads:
            findings.append(
                LintFinding(
                    "worker-starts-head",
                    "The worker script starts a Ray head",
                    f"`{heads[0].text}` starts a new head node instead of joining the cluster. "
                    'Drop --head and join with --address="${RAY_HEAD_IP:-$RAY_HEAD_NODE_PRIVATE_IP}:6379".',
                )
            )
    return findings


def _check_head_address(script: _Script) -> list[LintFinding]:
    if re.search(r"\bRAY_HEAD_(?:IP|NODE_PRIVATE_IP)\b", script.all_code):
        return []
    addresses = [a for s in script.ray_starts() for a in s.addresses()]
    fixed = [a for a in addresses if "$" not in a]
    used = f"It joins the fixed address {fixed[0]!r}, which" if fixed else "The head's address"
    return [
        LintFinding(
            "worker-head-address",
            "The worker does not read RAY_HEAD_IP",
            f"{used} does not follow the cluster's head: the provider passes the head's private IP "
            "in RAY_HEAD_IP (and the deprecated RAY_HEAD_NODE_PRIVATE_IP). "
            'Join with --address="${RAY_HEAD_IP:-$RAY_HEAD_NODE_PRIVATE_IP}:6379".',
        )
    ]


def _command_name_at(words: list[str]) -> int:
    """The index of the command's name, past reserved words and a function definition."""
    i = 0
    while i < len(words) and (words[i] in _RESERVED or words[i].endswith("()")):
        i += 1
    return i


def _traps(words: list[str]) -> list[tuple[str, set[str]]]:
    """The (action, signals) that a command sets with ``trap``, if it is one."""
    at = _command_name_at(words)
    if words[at : at + 1] != ["trap"]:
        return []
    args = words[at + 1 :]
    while args and args[0].startswith("-") and args[0] != "-":
        if args[0] in ("-p", "-l", "-P"):
            return []
        args = args[1:]
    if len(args) < 2 or args[0] == "-":
        return []
    return [(args[0], {s.upper() for s in args[1:]})]


@dataclass(frozen=True)
class _RayStart:
    """One ``ray start`` command: its words after ``start``, with variables expanded."""

    text: str
    args: str
    unknown: bool  # an argument comes from outside the script
    in_main: bool  # in the script itself, not in a heredoc body
    exec: bool  # run by `exec`, which replaces the shell and its EXIT trap

    def has(self, flag: str, lenient: bool = True) -> bool:
        if re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", self.args):
            return True
        return lenient and self.unknown

    def addresses(self) -> list[str]:
        return re.findall(r"--address(?:=|\s+)(\S+)", self.args)


# Jinja that survives in unrendered text: whole-line tags vanish (as with trim_blocks),
# expressions stand for an unknown value.
_JINJA_COMMENT = re.compile(r"\{#.*?#\}", re.DOTALL)
_JINJA_LINE_TAG = re.compile(r"^[ \t]*\{%.*?%\}[ \t]*\n", re.MULTILINE)
_JINJA_TAG = re.compile(r"\{%.*?%\}", re.DOTALL)
_JINJA_EXPR = re.compile(r"\{\{.*?\}\}", re.DOTALL)
_HEREDOC = re.compile(r"<<(-?)[ \t]*(['\"]?)([A-Za-z_][\w-]*)\2")
_ASSIGNMENT = re.compile(r"^([A-Za-z_]\w*)(\+?)=(.*)$", re.DOTALL)
_EXPANSION = re.compile(r"^\$(?:\{([A-Za-z_]\w*)(?:\[[@*]\])?\}|([A-Za-z_]\w*))$")
_FUNCTION = re.compile(
    r"(?:^|[\s;&|])(?:function\s+([A-Za-z_][\w:.-]*)\s*(?:\(\s*\))?|([A-Za-z_][\w:.-]*)\s*\(\s*\))\s*\{"
)
_RAY_VARIABLES = {"RAY", "RAY_BIN", "RAY_CMD", "RAY_EXE", "RAY_EXECUTABLE", "RAY_PATH"}
_DECLARATIONS = {"export", "local", "declare", "typeset", "readonly"}
_RESERVED = {"{", "}", "(", ")", "!", "then", "do", "else", "elif", "if", "while", "until", "time"}
_SEPARATORS = "\n;&|"


class _Script:
    """A bash script read as commands of words: enough bash to check the contract."""

    def __init__(self, content: str):
        text = _JINJA_COMMENT.sub("", content.replace("\r\n", "\n"))
        text = _JINJA_LINE_TAG.sub("", text)
        text = _JINJA_TAG.sub("", text)
        text = _JINJA_EXPR.sub("$__jinja__", text)
        text = text.replace("\\\n", " ")
        self.code, self.heredocs = _strip_comments_and_heredocs(text)
        self.all_code = "\n".join([self.code, *self.heredocs])
        main = _commands(self.code)
        self.commands = main + [c for body in self.heredocs for c in _commands(body)]
        self._main_count = len(main)
        self.assignments: dict[str, list[str]] = {}
        for words in self.commands:
            for name, value in _assignments(words):
                self.assignments.setdefault(name, []).append(value)
        self.functions = _functions(self.all_code)

    def is_ray(self, word: str) -> bool:
        """Whether a command word runs the ray CLI."""
        if word in ("ray.scripts.scripts",):
            return True
        if match := _EXPANSION.match(word):
            name = match.group(1) or match.group(2)
            return name.upper() in _RAY_VARIABLES or any(
                _basename(v.strip("\"'")) == "ray" for v in self.assignments.get(name, [])
            )
        return _basename(word) == "ray"

    def stops_ray(self, action: str, depth: int = 0) -> bool:
        """Whether a trap action (or a function it calls) runs ``ray stop``."""
        if depth > 5:
            return False
        for words in _commands(action):
            for i, word in enumerate(words):
                if self.is_ray(word) and words[i + 1 : i + 2] == ["stop"]:
                    return True
                if (
                    word in ("docker", "podman")
                    and words[i + 1 : i + 2] in (["stop"], ["kill"], ["rm"])
                    and re.search(r"\b(?:docker|podman)\s+(?:container\s+)?run\b", self.all_code)
                ):
                    return True
                if word in self.functions and self.stops_ray(self.functions[word], depth + 1):
                    return True
        return False

    def ray_starts(self) -> list[_RayStart]:
        found = []
        for index, words in enumerate(self.commands):
            for i, word in enumerate(words):
                if self.is_ray(word) and words[i + 1 : i + 2] == ["start"]:
                    args, unknown = self._expand(words[i + 2 :])
                    text = " ".join(words[i:])
                    short = text if len(text) <= 80 else text[:77] + "..."
                    in_main = index < self._main_count
                    is_exec = words[_command_name_at(words) : i] == ["exec"]
                    found.append(_RayStart(short, " ".join(args), unknown, in_main, is_exec))
        return found

    def _expand(self, words: list[str], seen: frozenset[str] = frozenset()) -> tuple[list[str], bool]:
        """Words with standalone ``$VAR`` replaced by what the script assigns to VAR.

        The flag says whether some word's value is unknown (assigned outside the script,
        a command substitution, unrendered Jinja)."""
        out: list[str] = []
        unknown = False
        for word in words:
            match = _EXPANSION.match(word)
            if match is None:
                out.append(word)
                if word.startswith(("$(", "`")):
                    unknown = True
                continue
            name = match.group(1) or match.group(2)
            values = self.assignments.get(name)
            if not values or name in seen:
                unknown = unknown or name not in seen
                continue
            for value in values:
                inner, inner_unknown = self._expand(_value_words(value), seen | {name})
                out.extend(inner)
                unknown = unknown or inner_unknown
        return out, unknown


def _basename(word: str) -> str:
    return word.rstrip("/").rsplit("/", 1)[-1]


def _value_words(value: str) -> list[str]:
    """The words of an assigned value: an array ``(a b)`` or a string split on blanks."""
    value = value.strip()
    if value.startswith("(") and value.endswith(")"):
        return [w for c in _commands(value[1:-1], split_lines=False) for w in c]
    return [w for c in _commands(value, split_lines=False) for w in c]


def _assignments(words: list[str]) -> list[tuple[str, str]]:
    """The variables a command assigns (``A=x``, ``A+=(y)``, ``export A=x``, ``local A=x``)."""
    found = []
    for i, word in enumerate(words):
        match = _ASSIGNMENT.match(word)
        if match:
            found.append((match.group(1), match.group(3)))
        elif not (word in _DECLARATIONS or (i > 0 and words[0] in _DECLARATIONS and word.startswith("-"))):
            break
    return found


def _functions(code: str) -> dict[str, str]:
    """Function bodies by name (``f() { ...; }`` and ``function f { ...; }``)."""
    functions = {}
    for match in _FUNCTION.finditer(code):
        end = _matching_group(code, match.end() - 1)
        functions[match.group(1) or match.group(2)] = code[match.end() : end]
    return functions


def _strip_comments_and_heredocs(text: str) -> tuple[str, list[str]]:
    """The script without comments and heredoc bodies, and the heredoc bodies apart."""
    out: list[str] = []
    heredocs: list[str] = []
    pending: list[tuple[str, bool]] = []
    quote = None
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if quote == "'":
            quote = None if c == "'" else quote
        elif c == "\\" and i + 1 < n:
            out.append(text[i : i + 2])
            i += 2
            continue
        elif quote == '"':
            quote = None if c == '"' else quote
        elif c in "'\"":
            quote = c
        elif c == "#" and (i == 0 or text[i - 1] in " \t\n;&|()"):
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        elif (
            c == "<"
            and text[i - 1 : i] != "<"
            and not text.startswith("<<<", i)
            and (match := _HEREDOC.match(text, i))
        ):
            pending.append((match.group(3), match.group(1) == "-"))
            out.append(match.group(0))
            i = match.end()
            continue
        elif c == "\n" and pending:
            out.append(c)
            i += 1
            for delimiter, strip_tabs in pending:
                body = []
                while i < n:
                    end = text.find("\n", i)
                    line = text[i : n if end < 0 else end]
                    i = n if end < 0 else end + 1
                    if (line.lstrip("\t") if strip_tabs else line) == delimiter:
                        break
                    body.append(line)
                heredocs.append("\n".join(body))
            pending = []
            continue
        out.append(c)
        i += 1
    return "".join(out), heredocs


def _commands(code: str, split_lines: bool = True, depth: int = 0) -> list[list[str]]:
    """Split comment-free bash into commands of unquoted words.

    ``$(...)``, ``${...}`` and array values ``=( ... )`` stay inside their word. A word
    that itself holds a command line (``bash -c '...'``, a trap action) is also split and
    its commands follow the command that holds it."""
    commands: list[list[str]] = []
    words: list[str] = []
    word: list[str] = []
    started = False
    quote = None
    i, n = 0, len(code)

    def end_word() -> None:
        nonlocal started
        if started:
            words.append("".join(word))
        word.clear()
        started = False

    def end_command() -> None:
        end_word()
        if words:
            commands.append(list(words))
            if depth < 3:
                for w in words:
                    if (
                        re.search(r"\s|;", w)
                        and not w.startswith(("$(", "${", "("))
                        and not _ASSIGNMENT.match(w)
                    ):
                        commands.extend(_commands(w, True, depth + 1))
        words.clear()

    while i < n:
        c = code[i]
        if quote == "'":
            if c == "'":
                quote = None
            else:
                word.append(c)
            i += 1
            continue
        if c == "\\" and i + 1 < n:
            if quote == '"' and code[i + 1] not in '$`"\\':
                word.append(c)
            word.append(code[i + 1])
            started = True
            i += 2
            continue
        if c == "$" and code.startswith(("$(", "${"), i):
            end = _matching_group(code, i + 1)
            word.append(code[i : end + 1])
            started = True
            i = end + 1
            continue
        if quote == '"':
            if c == '"':
                quote = None
            else:
                word.append(c)
            i += 1
            continue
        if c in "'\"":
            quote = c
            started = True
            i += 1
            continue
        if c == "(" and word and "".join(word).endswith("="):
            end = _matching_group(code, i)
            word.append(code[i : end + 1])
            i = end + 1
            continue
        if c in " \t" or (c == "\n" and not split_lines):
            end_word()
        elif c in _SEPARATORS:
            end_command()
        else:
            word.append(c)
            started = True
        i += 1
    end_command()
    return commands


def _matching_group(code: str, start: int) -> int:
    """The index closing the ``(`` or ``{`` at ``start`` (nested groups and quotes skipped)."""
    opening = code[start]
    closing = ")" if opening == "(" else "}"
    depth = 0
    quote = None
    i = start
    while i < len(code):
        c = code[i]
        if quote:
            if c == "\\" and quote == '"':
                i += 1
            elif c == quote:
                quote = None
        elif c == "\\":
            i += 1
        elif c in "'\"":
            quote = c
        elif c == opening:
            depth += 1
        elif c == closing:
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return len(code) - 1
