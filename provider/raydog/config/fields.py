"""One declaration per attribute: the Terraform schema entry and the validation come from it.

Terraform hands ``validate`` a configuration in which some values are still unknown (they
depend on other resources). Unknown values are checked later, when they are known; a
``Rule`` that needs several values runs once all of them are known and valid on their
own. Every problem is reported against its attribute path, before any API call.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional, Sequence

from tf import types
from tf.schema import Attribute, Block, Schema
from tf.types import Unknown

# A check raises ValueError(message) when the (known) value is wrong.
Check = Callable[[Any], None]
Path = list


@dataclass(frozen=True)
class Field:
    """One attribute: how Terraform sees it and what a valid value is."""

    name: str
    type: Any
    description: str
    required: bool = False
    optional: bool = False
    computed: bool = False
    sensitive: bool = False
    replace: bool = False  # "Forces replacement."
    check: Optional[Check] = None  # the whole value
    key_check: Optional[Check] = None  # each key of a map (the error points at the key)

    def attribute(self) -> Attribute:
        description = f"{self.description} Forces replacement." if self.replace else self.description
        return Attribute(self.name, self.type, description=description, required=self.required,
                         optional=self.optional, computed=self.computed, sensitive=self.sensitive,
                         requires_replace=self.replace)

    def problems(self, value: Any, path: Path) -> Iterator[tuple[Path, str]]:
        if value is None or value is Unknown:
            return
        if self.key_check and isinstance(value, dict):
            for key in value:
                try:
                    self.key_check(key)
                except ValueError as exc:
                    yield [*path, (key,)], str(exc)
        if self.check and _known(value):
            try:
                self.check(value)
            except ValueError as exc:
                yield path, str(exc)


@dataclass(frozen=True)
class Rule:
    """A check over several attributes; reported on ``path`` when all of them are known."""

    attributes: tuple[str, ...]
    path: str  # an attribute, or "block.member"
    check: Callable[..., None]


@dataclass(frozen=True)
class SingleBlock:
    """A block that appears at most once (``timeouts { ... }``), its members plain fields."""

    name: str
    description: str
    fields: tuple[Field, ...]

    def block_type(self):
        from raydog import tfcompat  # the framework lacks single nested blocks

        return tfcompat.SingleNestedBlock(
            self.name, Block(attributes=[f.attribute() for f in self.fields], description=self.description))


@dataclass(frozen=True)
class Table:
    """A resource's attributes: its schema, and the validation of a configuration."""

    fields: tuple[Field, ...]
    rules: tuple[Rule, ...] = ()
    blocks: tuple[SingleBlock, ...] = ()
    by_name: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {f.name: f for f in self.fields})

    def schema(self, description: str, version: int = 0) -> Schema:
        return Schema(version=version, description=description,
                      attributes=[f.attribute() for f in self.fields],
                      block_types=[b.block_type() for b in self.blocks])

    def problems(self, config: dict) -> list[tuple[Path, str]]:
        """(attribute path, message) for every problem in the known values of ``config``."""
        found: list[tuple[Path, str]] = []
        for f in self.fields:
            found.extend(f.problems(config.get(f.name), [f.name]))
        for block in self.blocks:
            members = config.get(block.name)
            if isinstance(members, dict):
                for f in block.fields:
                    found.extend(f.problems(members.get(f.name), [block.name, f.name]))
        failed = {p[0] for p, _ in found}
        for rule in self.rules:
            values = [config.get(a) for a in rule.attributes]
            if any(v is None or not _known(v) for v in values) or failed.intersection(rule.attributes):
                continue
            try:
                rule.check(*values)
            except ValueError as exc:
                found.append((rule.path.split("."), str(exc)))  # "block.member" points into a block
                failed.add(rule.path.split(".")[0])  # later rules that read it wait until it is fixed
        return found

    def report(self, diags, config: dict) -> None:
        """Add an error diagnostic, on its attribute, for every problem in ``config``."""
        for path, message in self.problems(config):
            diags.add_error(f"Invalid {show_path(path)}", message, path=path)


def show_path(path: Path) -> str:
    """``timeouts.create``, ``environment["PATH"]``: map keys quoted, so a key holding a newline shows it."""
    shown = ""
    for step in path:
        shown += f"[{json.dumps(step[0], ensure_ascii=False)}]" if isinstance(step, tuple) else \
            (f".{step}" if shown else step)
    return shown


def fields_named(fields: Sequence[Field], *names: str) -> tuple[Field, ...]:
    by_name = {f.name: f for f in fields}
    return tuple(by_name[n] for n in names)


def _known(value: Any) -> bool:
    if value is Unknown:
        return False
    if isinstance(value, dict):
        return all(_known(v) for v in value.values())
    if isinstance(value, list):
        return all(_known(v) for v in value)
    return True


# Shorthand for the attribute types used here.
STRING = types.String()
NUMBER = types.Number()
BOOL = types.Bool()
STRING_MAP = types.Map(types.String())
STRING_LIST = types.List(types.String())
