"""Entry point Terraform launches: ``terraform-provider-raydog``.

Nothing may print to stdout before the go-plugin handshake line, and the line comes first:
``raydog.go_plugin`` prints it before the provider's code (``_load``) is imported. A launch
is first offered to the command's fork server (``raydog.launcher``), which serves it from a
warm copy of this process; only if there is none yet does the launch serve Terraform here.
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    from raydog import launcher

    if len(sys.argv) > 1 and sys.argv[1] == launcher.FLAG:
        from raydog import fork_server

        os._exit(fork_server.serve_forever(sys.argv[2:], serve_here))
    code = launcher.launch(sys.argv)
    if code is not None:
        os._exit(code)
    serve_here()


def serve_here() -> None:
    """Serve Terraform from this process until it shuts the provider down; then exit."""
    from raydog import go_plugin

    go_plugin.serve(_load, schema=go_plugin.prebuilt_schema())
    # The server has stopped: Terraform asked us to shut down and is waiting for this process
    # to exit before it goes on (it starts the provider 3-5 times per command). The
    # interpreter's own teardown (joining gRPC's threads, freeing every module) takes ~70 ms
    # of that wait and has nothing left to save, so end the process now.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _load():
    """The provider and its gRPC services (run once the handshake line is out)."""
    from raydog import go_plugin, launcher, tfcompat
    from raydog.provider import RaydogProvider

    provider = RaydogProvider()
    handlers, interceptors = tfcompat.services(provider)  # logging is set up from here on
    if launcher.forked_from is not None:
        import logging

        logging.getLogger("raydog").debug("launched from the warm copy of the provider (pid %d, SDK %s)",
                                          launcher.forked_from,
                                          "loaded" if "yellowdog_client" in sys.modules else "not loaded yet")
    return go_plugin.Loaded(provider, handlers, interceptors)


if __name__ == "__main__":
    main()
