"""Entry point Terraform launches: ``terraform-provider-raydog``.

Nothing may print to stdout before the go-plugin handshake line, so imports stay lazy.
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    from raydog import tfcompat
    from raydog.provider import RaydogProvider

    tfcompat.run(RaydogProvider())
    # The server has stopped: Terraform asked us to shut down and is waiting for this process
    # to exit before it goes on (it starts the provider 3-5 times per command). The
    # interpreter's own teardown (joining gRPC's threads, freeing every module) takes ~70 ms
    # of that wait and has nothing left to save, so end the process now.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
