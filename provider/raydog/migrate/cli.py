"""``raydog import-state``: adopt a cluster that RayDog built into Terraform, from RayDog's saved state.

Raw-resource mode (the default) writes ``imports.tf``; after ``terraform plan
-generate-config-out=generated.tf``, ``--link`` replaces the literal ids and IPs in
``generated.tf`` by references. ``--module ADDRESS`` writes ``imports.tf`` for an instance
of the raydog module plus ``cluster.tf``, its call (scripts in ``scripts/``). The steps are
in docs/guides/migrating-from-json-state.md.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from raydog.migrate.hcl import (
    GENERATED_FILE,
    IMPORTS_FILE,
    MODULE_FILE,
    VERSIONS_FILE,
    VERSIONS_TF,
    address,
    declares_provider,
    link_generated,
    module_resources,
    render_imports,
    render_module_call,
)
from raydog.migrate.inventory import HEAD, ImportStateError, Inventory, SavedState, take_inventory
from raydog.settings import DEFAULT_API_URL, resolve_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("state_file", type=Path, metavar="STATE.json", help="RayDog's saved cluster state")
    parser.add_argument("--dir", type=Path, required=True, help="the Terraform root module directory to write into")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--resources", action="store_true",
                      help="import into raw resources: raydog_cluster.this, raydog_head.this, ... (the default)")
    mode.add_argument("--module", metavar="ADDRESS", default=None,
                      help="import into an instance of the raydog module, such as module.raydog, and write its call")
    mode.add_argument("--link", action="store_true",
                      help=f"after `terraform plan -generate-config-out={GENERATED_FILE}`: replace literal ids and "
                      f"IPs in {GENERATED_FILE} by references between the resources")
    parser.add_argument("--module-source", default=None,
                        help="source of the raydog module for --module (default: this checkout's terraform/modules/"
                        "raydog, relative to --dir)")
    parser.add_argument("--api-url", default=None, help=f"YellowDog API URL (default: $YD_API_URL or {DEFAULT_API_URL})")
    parser.add_argument("--key-id", default=None, help="application key id (default: $YD_API_KEY_ID)")
    parser.add_argument("--key-secret", default=None,
                        help="application key secret (default: $YD_API_KEY_SECRET, which keeps it out of ps)")
    parser.add_argument("--force", action="store_true", help="overwrite files written before")


def run(args: argparse.Namespace) -> int:
    from raydog.redaction import redact_url
    from raydog.yellowdog import PlatformError, YellowDogClient

    module = args.module
    if module is not None and not re.fullmatch(r"module\.[A-Za-z_][A-Za-z0-9_-]*", module):
        return _fail(f'--module takes a module address such as module.raydog, not "{module}"')
    settings = resolve_settings({"api_url": args.api_url, "application_key_id": args.key_id,
                                 "application_key_secret": args.key_secret}, os.environ)
    url, key_id, key_secret = settings.api_url, settings.key_id, settings.key_secret
    if not key_id or not key_secret:
        return _fail("no application key: set YD_API_KEY_ID and YD_API_KEY_SECRET (or --key-id and --key-secret)")
    directory: Path = args.dir
    module_source = args.module_source or (default_module_source(directory) if module else None)
    if module and not module_source:
        return _fail("--module needs --module-source (where the raydog module is, such as a git URL or a path)")
    try:
        state = SavedState.load(args.state_file)
        outputs = _outputs(args, module)
        if not args.force:
            existing = [directory / name for name in outputs if (directory / name).exists()]
            if existing:
                return _fail(f"{existing[0]} exists; use --force to overwrite it")
        if args.link and not (directory / GENERATED_FILE).is_file():
            return _fail(f"{directory / GENERATED_FILE} does not exist: run `terraform plan "
                         f"-generate-config-out={GENERATED_FILE}` in {directory} first")
        client = YellowDogClient.connect(url, key_id, key_secret)
        try:
            inventory = take_inventory(client, state)
        finally:
            client.close()
    except ImportStateError as exc:
        return _fail(str(exc))
    except PlatformError as exc:
        return _fail(f"YellowDog at {redact_url(url)}: {exc}")

    for skipped_id, why in inventory.skipped:
        print(f"skipped {skipped_id}: {why}")
    if inventory.cluster is None:
        return _fail(f"nothing to import: the RayDog cluster {state.cluster_name} is gone")
    try:
        if args.link:
            return _link(directory / GENERATED_FILE, inventory)
        if module is not None and inventory.node(HEAD) is None:
            return _fail("the cluster has no live head, which the raydog module needs; import it as raw resources "
                         "(without --module) instead")
        resources = module_resources(module_source, directory)
        written = _write(directory, inventory, module, module_source, args.state_file.name, resources)
    except ImportStateError as exc:
        return _fail(str(exc))
    for found in [inventory.cluster, *inventory.nodes]:
        print(f"import {address(found, module, resources):<48} {found.yellowdog_name} ({found.detail})")
    print(f"wrote {', '.join(str(p) for p in written)}")
    steps = ["terraform init"]
    if module is None:
        steps += [f"terraform plan -generate-config-out={GENERATED_FILE}",
                  f"raydog import-state {args.state_file} --dir . --link"]
    steps += ["terraform plan", "terraform apply"]
    print(f"next, in {directory}: " + "; ".join(steps))
    sys.stdout.flush()
    for warning in inventory.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def default_module_source(directory: Path) -> str | None:
    """The module's path relative to ``directory``, when running from a repository checkout."""
    module_dir = Path(__file__).resolve().parents[3] / "terraform" / "modules" / "raydog"
    if not (module_dir / "main.tf").is_file():
        return None
    relative = os.path.relpath(module_dir, directory.resolve())
    return relative if relative.startswith(".") else f"./{relative}"


def _outputs(args: argparse.Namespace, module: str | None) -> list[str]:
    if args.link:
        return []
    return [IMPORTS_FILE] + ([MODULE_FILE] if module else [])


def _write(directory: Path, inventory: Inventory, module: str | None, module_source: str | None,
           source: str, resources: dict[str, str]) -> list[Path]:
    needs_versions = not declares_provider(directory)  # read before anything is written
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    if module is not None:
        text, scripts = render_module_call(inventory, module, module_source)
        (directory / "scripts").mkdir(exist_ok=True)
        for file_name, content in scripts.items():
            (directory / "scripts" / file_name).write_text(content)
            written.append(directory / "scripts" / file_name)
        (directory / MODULE_FILE).write_text(text)
        written.append(directory / MODULE_FILE)
    (directory / IMPORTS_FILE).write_text(render_imports(inventory, module, source, resources))
    written.insert(0, directory / IMPORTS_FILE)
    if needs_versions:
        (directory / VERSIONS_FILE).write_text(VERSIONS_TF)
        written.append(directory / VERSIONS_FILE)
    _format(directory)
    return written


def _format(directory: Path) -> None:
    """``terraform fmt`` the directory (best effort: what was written is laid out as fmt does already)."""
    import subprocess

    from raydog.tunnel_cli import terraform_command

    try:
        subprocess.run([*terraform_command(), "fmt", "-no-color", "."], cwd=directory, capture_output=True,
                       stdin=subprocess.DEVNULL, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        pass


def _link(path: Path, inventory: Inventory) -> int:
    text, count = link_generated(path.read_text(), inventory)
    path.write_text(text)
    print(f"linked {path}: {count} literal value{'s' if count != 1 else ''} replaced by references")
    return 0


def _fail(message: str) -> int:
    print(f"raydog import-state: {message}", file=sys.stderr)
    return 1
