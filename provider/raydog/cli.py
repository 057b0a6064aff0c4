"""The `raydog` command.

Each subcommand lives in its own module, which provides ``add_arguments(parser)`` and
``run(args) -> int``. To add one, add a line to ``SUBCOMMANDS``; the module is imported
only when that subcommand runs, so one missing optional dependency never breaks the others.
``raydog sandbox`` is another program (the ``raydog_sandbox`` package, extra ``sandbox``),
which the provider never imports: this process becomes ``python -m raydog_sandbox``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from raydog.packaging.cli import VersionAction

# name -> (module providing add_arguments/run, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "install": ("raydog.packaging.cli", "install the provider's release package into a Terraform filesystem mirror"),
    "package": ("raydog.packaging.cli", "build the release: zip, SHA256SUMS, signature, network-mirror JSON"),
    "tunnel": ("raydog.tunnel_cli", "open SSH tunnels to the Ray head (client, dashboard, Grafana, Prometheus)"),
    "import-state": ("raydog.migrate.cli", "import blocks for a cluster from RayDog's saved JSON state"),
}
# Subcommands that take the rest of the command line as it is.
PASSTHROUGH: dict[str, tuple[str, str]] = {
    "terraform": ("raydog.terraform",
                  "run terraform (the one on PATH, else the embedded one; --embedded forces it)"),
}
# Subcommands that are programs of their own: `raydog NAME ARGS` execs `python -m PACKAGE ARGS`.
PROGRAMS: dict[str, tuple[str, str]] = {
    "sandbox": ("raydog_sandbox", "run a local YellowDog-compatible platform (API + scheduler + nodes)"),
}


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    """The parser; only the selected subcommand's module is imported to add its options."""
    parser = argparse.ArgumentParser(prog="raydog", description="Ray clusters on YellowDog, managed by Terraform.")
    parser.add_argument("--version", action=VersionAction, help="print the provider's and embedded Terraform's versions")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in PROGRAMS.items():
        subparsers.add_parser(name, help=help_text, description=help_text, add_help=False)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        if name == selected:
            importlib.import_module(module_name).add_arguments(sub)
    for name, (_, help_text) in PASSTHROUGH.items():
        subparsers.add_parser(name, help=help_text, description=help_text, add_help=False)
    return parser


def exec_program(name: str, argv: list[str]) -> None:
    """Replace this process with ``python -m PACKAGE ARGV``: signals and the exit code are the program's."""
    os.execv(sys.executable, [sys.executable, "-m", PROGRAMS[name][0], *argv])


# Optional dependencies, and the extra of terraform-provider-raydog that installs each.
EXTRAS = {"paramiko": "tunnel", "ray": "ray"}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `raydog` console script.

    Expected failures (a missing optional dependency, a file or address that isn't there,
    Ctrl-C) end with one line on stderr, never a traceback.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv else "raydog"
    try:
        if argv and argv[0] in PASSTHROUGH:
            return int(importlib.import_module(PASSTHROUGH[argv[0]][0]).main(argv[1:]))
        if argv and argv[0] in PROGRAMS:
            exec_program(argv[0], argv[1:])
        selected = next((a for a in argv if not a.startswith("-")), None)
        parser = build_parser(selected if selected in SUBCOMMANDS else None)
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        module = importlib.import_module(SUBCOMMANDS[args.command][0])
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        print(f"raydog {command}: interrupted", file=sys.stderr)
        return 130
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").split(".")[0]
        if missing not in EXTRAS:
            raise
        return fail(command, f"needs {missing}, which is not installed; install the '{EXTRAS[missing]}' extra: "
                             f"pip install 'terraform-provider-raydog[{EXTRAS[missing]}]'")
    except OSError as exc:
        return fail(command, str(exc))


def fail(command: str, message: str) -> int:
    print(f"raydog {command}: error: {message}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
