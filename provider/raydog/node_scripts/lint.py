"""The node script contract lint: does a head or worker task script keep RayDog's contract?

The lint checks what RayDog asks of a head or worker task script: an EXIT trap that stops
Ray, a ``ray start`` that blocks (``--head`` on the head), and, on workers, an address
read from ``RAY_HEAD_IP`` or ``RAY_HEAD_NODE_PRIVATE_IP``. It reads bash as text with a
small tokenizer (``bash_words``), is lenient wherever it cannot tell (a ``ray start
$ARGS`` whose ARGS come from outside the script is given the benefit of the doubt), and
its findings are warnings, never errors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from raydog.node_scripts import bash_words


@dataclass(frozen=True)
class LintFinding:
    """One way a script breaks the node script contract (a plan-time warning)."""

    code: str
    summary: str
    detail: str


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


def _traps(words: list[str]) -> list[tuple[str, set[str]]]:
    """The (action, signals) that a command sets with ``trap``, if it is one."""
    at = bash_words.command_name_at(words)
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
_EXPANSION = re.compile(r"^\$(?:\{([A-Za-z_]\w*)(?:\[[@*]\])?\}|([A-Za-z_]\w*))$")
_RAY_VARIABLES = {"RAY", "RAY_BIN", "RAY_CMD", "RAY_EXE", "RAY_EXECUTABLE", "RAY_PATH"}


class _Script:
    """A bash script read as commands of words: enough bash to check the contract."""

    def __init__(self, content: str):
        text = _JINJA_COMMENT.sub("", content.replace("\r\n", "\n"))
        text = _JINJA_LINE_TAG.sub("", text)
        text = _JINJA_TAG.sub("", text)
        text = _JINJA_EXPR.sub("$__jinja__", text)
        text = text.replace("\\\n", " ")
        self.code, self.heredocs = bash_words.strip_comments_and_heredocs(text)
        self.all_code = "\n".join([self.code, *self.heredocs])
        main = bash_words.commands(self.code)
        self.commands = main + [c for body in self.heredocs for c in bash_words.commands(body)]
        self._main_count = len(main)
        self.assignments: dict[str, list[str]] = {}
        for words in self.commands:
            for name, value in bash_words.assignments(words):
                self.assignments.setdefault(name, []).append(value)
        self.functions = bash_words.functions(self.all_code)

    def is_ray(self, word: str) -> bool:
        """Whether a command word runs the ray CLI."""
        if word in ("ray.scripts.scripts",):
            return True
        if match := _EXPANSION.match(word):
            name = match.group(1) or match.group(2)
            return name.upper() in _RAY_VARIABLES or any(
                bash_words.basename(v.strip("\"'")) == "ray" for v in self.assignments.get(name, [])
            )
        return bash_words.basename(word) == "ray"

    def stops_ray(self, action: str, depth: int = 0) -> bool:
        """Whether a trap action (or a function it calls) runs ``ray stop``."""
        if depth > 5:
            return False
        for words in bash_words.commands(action):
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
                    is_exec = words[bash_words.command_name_at(words) : i] == ["exec"]
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
                inner, inner_unknown = self._expand(bash_words.value_words(value), seen | {name})
                out.extend(inner)
                unknown = unknown or inner_unknown
        return out, unknown
