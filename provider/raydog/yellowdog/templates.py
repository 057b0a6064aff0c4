"""Compute requirement templates: which template a configuration's reference names."""

from __future__ import annotations

from .core import ClientCore
from .rest import template_reference


class TemplateOps(ClientCore):
    """Template look-ups of ``YellowDogClient``."""

    def resolve_template(self, reference: str) -> str | None:
        """The id of the template ``reference`` names (its id, or ``namespace/name``); None if there is none."""
        templates = self._sdk.compute_client
        namespace, name = template_reference(reference)
        if namespace is None:
            found = self._get_or_none("read compute requirement template", reference,
                                      lambda: templates.get_compute_requirement_template_by_id(reference))
        else:
            found = self._get_or_none("read compute requirement template", reference,
                                      lambda: templates.get_compute_requirement_template_by_name(namespace, name))
        return None if found is None else found.id
