"""The provider's processes that outlive a launch: its fork servers (raydog.fork_server)."""

from __future__ import annotations

import psutil

from raydog import launcher


def fork_servers() -> dict[int, list[str]]:
    """Every running fork server of this machine: pid -> its command line
    (``... FLAG terraform_pid socket lock``). A test picks its own by the Terraform pid or
    the runtime directory in it."""
    found = {}
    for process in psutil.process_iter(["cmdline"]):
        argv = process.info.get("cmdline") or []
        if launcher.FLAG in argv[:-1]:
            found[process.pid] = argv
    return found


def served_terraform(argv: list[str]) -> int:
    """The pid of the Terraform process a fork server's command line serves."""
    return int(argv[argv.index(launcher.FLAG) + 1])
