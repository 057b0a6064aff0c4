"""The provider's processes that outlive a launch: its fork servers (raydog.fork_server)."""

from __future__ import annotations

from typing import Optional

import psutil

from raydog import launcher


def served_terraform(argv: list[str]) -> Optional[int]:
    """The pid of the Terraform process a fork server's command line
    (``... FLAG terraform_pid socket lock``) serves; None for any other command line."""
    if launcher.FLAG not in argv[:-1]:
        return None
    return int(argv[argv.index(launcher.FLAG) + 1])


def fork_servers() -> dict[int, list[str]]:
    """Every running fork server of this machine: pid -> its command line. A test picks its
    own by the Terraform pid or the runtime directory in it."""
    found = {}
    for process in psutil.process_iter(["cmdline"]):
        argv = process.info.get("cmdline") or []
        if served_terraform(argv) is not None:
            found[process.pid] = argv
    return found
