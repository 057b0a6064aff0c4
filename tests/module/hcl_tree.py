"""A copy of the repository's HCL to run Terraform in, and the list of examples.

Terraform writes .terraform/, lock files and state next to the configuration, so tests
never run it in the repository: they copy terraform/ and examples/ (keeping their relative
layout, so an example's `source = "../../terraform/modules/raydog"` still resolves).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from harness.terraform import REPO

MODULE = Path("terraform/modules/raydog")
EXAMPLES = REPO / "examples"
IGNORE = shutil.ignore_patterns(".terraform", ".terraform.lock.hcl", "*.tfstate", "*.tfstate.*", "tfplan", "*.tfvars")


def example_names() -> list[str]:
    """Every example directory (a runnable root module)."""
    return sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir() and any(p.glob("*.tf")))


def copy_tree(destination: Path) -> Path:
    """Copy terraform/ and examples/ under ``destination``; returns ``destination``."""
    for top in ("terraform", "examples"):
        shutil.copytree(REPO / top, destination / top, ignore=IGNORE, dirs_exist_ok=True)
    return destination
