"""Compute requirement templates: which template a configuration's reference names."""

from __future__ import annotations

from .core import ClientCore


class TemplateOps(ClientCore):
    """Template look-ups of ``YellowDogClient``."""

    def resolve_template(self, reference: str) -> str | None:
        """The id of the template ``reference`` names (its id, or ``namespace/name``); None if there is none."""
        templates = self._sdk.compute_client
        if reference.startswith("ydid:") or "/" not in reference:
            found = self._get_or_none("read compute requirement template", reference,
                                      lambda: templates.get_compute_requirement_template_by_id(reference))
        else:
            namespace, name = reference.split("/", 1)
            found = self._get_or_none("read compute requirement template", reference,
                                      lambda: templates.get_compute_requirement_template_by_name(namespace, name))
        return None if found is None else found.id
