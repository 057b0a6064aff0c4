"""Entry point Terraform launches: ``terraform-provider-raydog``.

Nothing may print to stdout before the go-plugin handshake line, so imports stay lazy.
"""

from __future__ import annotations


def main() -> None:
    from raydog import tfcompat
    from raydog.provider import RaydogProvider

    tfcompat.run(RaydogProvider())


if __name__ == "__main__":
    main()
