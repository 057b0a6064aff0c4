"""The exceptions a builder program catches.

RayDog 2.0.0 raised ``TimeoutError`` when the head (or observability) node did not start
in time and a plain ``Exception`` for everything else, so each class here derives from
what RayDog raised: code written for RayDog keeps catching what it caught. Errors that
come from a Terraform run carry that run's diagnostics, and their text is in the message.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Diagnostic:
    """One diagnostic of a Terraform run (``-json`` output)."""

    severity: str
    summary: str
    detail: str = ""
    address: str | None = None

    def __str__(self) -> str:
        where = f" ({self.address})" if self.address else ""
        return f"{self.severity.capitalize()}: {self.summary}{where}" + (f"\n  {self.detail}" if self.detail else "")


class RayDogBuilderError(Exception):
    """A builder call could not do what was asked; the message says why.

    Also what RayDog raised as a plain ``Exception`` for misuse (``build()`` twice,
    ``add_worker_pool()`` after ``shut_down()``, an unknown worker pool id, ...).
    """


class TerraformRunError(RayDogBuilderError):
    """A Terraform command failed; ``diagnostics`` are its errors (and warnings)."""

    def __init__(self, message: str, diagnostics: tuple[Diagnostic, ...] = (), command: str = "",
                 directory: str = "") -> None:
        self.diagnostics = tuple(diagnostics)
        self.command = command
        self.directory = directory
        text = message
        errors = [d for d in self.diagnostics if d.severity == "error"]
        if errors:
            text += "\n" + "\n".join(str(d) for d in errors)
        super().__init__(text)


class BuildTimeoutError(TerraformRunError, TimeoutError):
    """The head (or observability) node did not start within ``head_node_build_timeout``.

    A ``TimeoutError``, as RayDog's ``build()`` raised; nothing of the cluster is left live.
    """


class HeadNodeFailedError(TerraformRunError):
    """The head (or observability) node's task ended before it was running (RayDog's
    "Unexpected head node task status"); nothing of the cluster is left live."""
