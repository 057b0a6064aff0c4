"""Just enough bash for the script contract lint: a script read as commands of words.

Comments and heredoc bodies are set apart, quotes are removed from words, and ``$(...)``,
``${...}`` and array values stay inside the word that holds them. No expansion happens
here: the lint follows variables itself.
"""

from __future__ import annotations

import re

_HEREDOC = re.compile(r"<<(-?)[ \t]*(['\"]?)([A-Za-z_][\w-]*)\2")
ASSIGNMENT = re.compile(r"^([A-Za-z_]\w*)(\+?)=(.*)$", re.DOTALL)
_FUNCTION = re.compile(
    r"(?:^|[\s;&|])(?:function\s+([A-Za-z_][\w:.-]*)\s*(?:\(\s*\))?|([A-Za-z_][\w:.-]*)\s*\(\s*\))\s*\{"
)
_DECLARATIONS = {"export", "local", "declare", "typeset", "readonly"}
_RESERVED = {"{", "}", "(", ")", "!", "then", "do", "else", "elif", "if", "while", "until", "time"}
_SEPARATORS = "\n;&|"


def command_name_at(words: list[str]) -> int:
    """The index of the command's name, past reserved words and a function definition."""
    i = 0
    while i < len(words) and (words[i] in _RESERVED or words[i].endswith("()")):
        i += 1
    return i


def basename(word: str) -> str:
    """The last part of a path (``/opt/venv/bin/ray`` -> ``ray``)."""
    return word.rstrip("/").rsplit("/", 1)[-1]


def value_words(value: str) -> list[str]:
    """The words of an assigned value: an array ``(a b)`` or a string split on blanks."""
    value = value.strip()
    if value.startswith("(") and value.endswith(")"):
        return [w for c in commands(value[1:-1], split_lines=False) for w in c]
    return [w for c in commands(value, split_lines=False) for w in c]


def assignments(words: list[str]) -> list[tuple[str, str]]:
    """The variables a command assigns (``A=x``, ``A+=(y)``, ``export A=x``, ``local A=x``)."""
    found = []
    for i, word in enumerate(words):
        match = ASSIGNMENT.match(word)
        if match:
            found.append((match.group(1), match.group(3)))
        elif not (word in _DECLARATIONS or (i > 0 and words[0] in _DECLARATIONS and word.startswith("-"))):
            break
    return found


def functions(code: str) -> dict[str, str]:
    """Function bodies by name (``f() { ...; }`` and ``function f { ...; }``)."""
    bodies = {}
    for match in _FUNCTION.finditer(code):
        end = matching_group(code, match.end() - 1)
        bodies[match.group(1) or match.group(2)] = code[match.end() : end]
    return bodies


def strip_comments_and_heredocs(text: str) -> tuple[str, list[str]]:
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


def commands(code: str, split_lines: bool = True, depth: int = 0) -> list[list[str]]:
    """Split comment-free bash into commands of unquoted words.

    ``$(...)``, ``${...}`` and array values ``=( ... )`` stay inside their word. A word
    that itself holds a command line (``bash -c '...'``, a trap action) is also split and
    its commands follow the command that holds it."""
    found: list[list[str]] = []
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
            found.append(list(words))
            if depth < 3:
                for w in words:
                    if (
                        re.search(r"\s|;", w)
                        and not w.startswith(("$(", "${", "("))
                        and not ASSIGNMENT.match(w)
                    ):
                        found.extend(commands(w, True, depth + 1))
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
            end = matching_group(code, i + 1)
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
            end = matching_group(code, i)
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
    return found


def matching_group(code: str, start: int) -> int:
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
