"""Entry point Terraform launches: ``terraform-provider-raydog``.

Nothing may print to stdout before the go-plugin handshake line, and the line comes first:
``raydog.go_plugin`` prints it before the provider's code (``_load``) is imported.
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    from raydog import go_plugin

    go_plugin.serve(_load)
    # The server has stopped: Terraform asked us to shut down and is waiting for this process
    # to exit before it goes on (it starts the provider 3-5 times per command). The
    # interpreter's own teardown (joining gRPC's threads, freeing every module) takes ~70 ms
    # of that wait and has nothing left to save, so end the process now.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _load():
    """The provider and its gRPC services (run once the handshake line is out)."""
    from raydog import go_plugin, tfcompat
    from raydog.provider import RaydogProvider

    provider = RaydogProvider()
    handlers, interceptors = tfcompat.services(provider)
    return go_plugin.Loaded(provider, handlers, interceptors)


if __name__ == "__main__":
    main()
