"""Adopt a cluster that RayDog built (known by RayDog's saved JSON) into a Terraform working directory.

This is ``raydog import-state``'s path: each id in the JSON is looked up on the platform
and written as an ``import`` block. With a live head, the cluster becomes a call of the raydog
module (the same shape as a cluster the builder made); without one, raw resources, whose
configuration Terraform generates. One ``terraform apply`` then adopts it, and the
directory's state holds it from then on.
"""

from __future__ import annotations

import json

from raydog.migrate import hcl, inventory as migration

from . import config
from .errors import RayDogBuilderError
from .workdir import MODULE_DIR, Workdir

SAVED_STATE_FILE = "raydog-state.json"
ADOPT_CONFIG_FILE = "adopt.tf.json"
MODULE_ADDRESS = f"module.{config.MODULE_NAME}"


def adopt(saved: dict, workdir: Workdir, api_url: str, key_id: str, key_secret: str,
          backend: dict | None = None) -> bool:
    """Bring the cluster in ``saved`` under ``workdir``'s state; False when nothing of it is live."""
    from raydog.yellowdog import PlatformError, YellowDogClient

    if workdir.has_configuration:
        raise RayDogBuilderError(f"{workdir.path} already holds a Terraform configuration; pass another "
                                 "terraform_dir to adopt the cluster into")
    workdir.prepare()
    state_file = workdir.path / SAVED_STATE_FILE
    state_file.write_text(json.dumps(saved, indent=2))
    try:
        state = migration.SavedState.load(state_file)
        platform = YellowDogClient.connect(api_url, key_id, key_secret)
        try:
            inventory = migration.take_inventory(platform, state)
        finally:
            platform.close()
    except (migration.ImportStateError, PlatformError) as exc:
        raise RayDogBuilderError(f"cannot adopt cluster {saved.get('cluster_name')}: {exc}") from exc
    for skipped_id, why in inventory.skipped:
        workdir.progress.line(f"skipped {skipped_id}: {why}")
    if inventory.cluster is None:
        return False

    module = MODULE_ADDRESS if inventory.node(migration.HEAD) is not None else None
    _write_adoption(workdir, inventory, module, backend, api_url)
    workdir.init()
    runner = workdir.runner
    if module is None:
        runner.check(runner.run("plan", "-input=false", "-no-color",
                                f"-generate-config-out={hcl.GENERATED_FILE}"),
                     "terraform plan -generate-config-out")
    count = len(inventory.nodes)
    workdir.progress.phase(f"adopting the work requirement and {count} pool{'s' if count != 1 else ''} "
                           "into Terraform's state")
    result = runner.apply()
    if not result.ok:
        raise runner.error(result, f"could not adopt cluster {state.cluster_name}")
    return True


def _write_adoption(workdir: Workdir, inventory, module: str | None, backend: dict | None, api_url: str) -> None:
    directory = workdir.path
    source = f"./{MODULE_DIR.as_posix()}"
    resources = hcl.module_resources(source, directory)
    (directory / hcl.IMPORTS_FILE).write_text(
        hcl.render_imports(inventory, module, SAVED_STATE_FILE, resources))
    if module is not None:
        text, scripts = hcl.render_module_call(inventory, module, source)
        (directory / "scripts").mkdir(exist_ok=True)
        for name, content in scripts.items():
            (directory / "scripts" / name).write_text(content)
        (directory / hcl.MODULE_FILE).write_text(text)
    document = {"terraform": config.terraform_block(backend), "provider": config.provider_block(api_url)}
    (directory / ADOPT_CONFIG_FILE).write_text(json.dumps(document, indent=2) + "\n")
