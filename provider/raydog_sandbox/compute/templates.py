"""The sandbox's catalogue of compute requirement templates.

A real YellowDog account holds compute requirement templates that say which cloud,
region and instance type to provision. The sandbox keeps a small built-in catalogue
instead. A template is accepted by its ``namespace/name`` (``sandbox/ray-head``) or by
its id (``ydid:crt:000000:<uuid>``, stable across runs because it derives from the name).

``--template`` adds entries: ``NAMESPACE/NAME`` (a copy of ``sandbox/small``) or
``NAMESPACE/NAME=INSTANCE_TYPE:VCPUS:RAM_GB``.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

_NAMESPACE = uuid.UUID("6f1c7f9e-3a59-4b9e-9d8e-2f0b6c1d5a10")
_TEMPLATE_NAME = re.compile(r"^[a-z](?:[a-z0-9_-]{0,58}[a-z0-9])?/[a-z](?:[a-z0-9_-]{0,58}[a-z0-9])?$")

REGION = "sandbox-local"
PROVIDER = "ON_PREMISE"


@dataclass(frozen=True)
class Template:
    """One compute requirement template: what each instance it provisions looks like."""

    name: str  # namespace/name
    instance_type: str
    vcpus: float
    ram: float  # GB

    @property
    def id(self) -> str:
        return f"ydid:crt:000000:{uuid.uuid5(_NAMESPACE, self.name)}"

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "instanceType": self.instance_type,
            "vcpus": self.vcpus,
            "ram": self.ram,
            "provider": PROVIDER,
            "region": REGION,
        }


BUILT_IN = (
    Template("sandbox/small", "sandbox.small", 2, 4),
    Template("sandbox/ray-head", "sandbox.large", 8, 32),
    Template("sandbox/ray-worker", "sandbox.medium", 4, 16),
    Template("sandbox/ray-observability", "sandbox.medium", 4, 16),
)


def parse_template(spec: str) -> Template:
    """Parse a ``--template`` value; raises ValueError with what is wrong."""
    name, _, shape = spec.strip().partition("=")
    if not _TEMPLATE_NAME.fullmatch(name):
        raise ValueError(f"template {spec!r}: the name must be NAMESPACE/NAME in lower case, e.g. sandbox/big")
    if not shape:
        small = BUILT_IN[0]
        return Template(name, small.instance_type, small.vcpus, small.ram)
    parts = shape.split(":")
    if len(parts) != 3:
        raise ValueError(f"template {spec!r}: expected NAMESPACE/NAME=INSTANCE_TYPE:VCPUS:RAM_GB")
    try:
        vcpus, ram = float(parts[1]), float(parts[2])
    except ValueError:
        raise ValueError(f"template {spec!r}: VCPUS and RAM_GB must be numbers") from None
    if not parts[0] or vcpus <= 0 or ram <= 0:
        raise ValueError(f"template {spec!r}: needs an instance type and positive VCPUS and RAM_GB")
    return Template(name, parts[0], vcpus, ram)


class TemplateCatalogue:
    """Templates by name and by id."""

    def __init__(self, extra: list[Template] | tuple[Template, ...] = ()) -> None:
        self._by_key: dict[str, Template] = {}
        self._all: list[Template] = []
        for template in (*BUILT_IN, *extra):
            if template.name in self._by_key:
                self._all.remove(self._by_key[template.name])
            self._all.append(template)
            self._by_key[template.name] = template
            self._by_key[template.id] = template

    def find(self, template_id: str) -> Template | None:
        return self._by_key.get(template_id)

    def all(self) -> list[Template]:
        return list(self._all)
