"""A cluster's Terraform working directory: its configuration, the module, and its state.

Layout (``terraform destroy`` in it shuts the cluster down, given YD_API_KEY_ID and
YD_API_KEY_SECRET)::

    <dir>/main.tf.json        the module call, written by config.py
    <dir>/modules/raydog/     a copy of terraform/modules/raydog, taken when the directory is made
    <dir>/terraform.tfstate   the state (unless the configuration names a backend)
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from . import config
from .errors import RayDogBuilderError
from .progress import Progress
from .provider_install import ensure_provider_installed
from .runner import TerraformRunner

MODULE_DIR = Path("modules") / "raydog"


def module_source_dir() -> Path:
    """Where the raydog module is: terraform/modules/raydog of this checkout or distribution."""
    package = Path(__file__).resolve().parents[1]
    for candidate in (package / "terraform_module", package.parents[1] / "terraform" / "modules" / "raydog"):
        if (candidate / "main.tf").is_file():
            return candidate
    raise RayDogBuilderError(
        "the raydog Terraform module (terraform/modules/raydog) was not found next to the raydog package; "
        "install terraform-provider-raydog from its repository checkout (pip install -e .)")


def default_directory(cluster_name: str) -> Path:
    """Where a cluster's working directory goes unless the caller says: ./raydog-clusters/<name>."""
    return Path.cwd() / "raydog-clusters" / cluster_name


@dataclass(frozen=True)
class NodeState:
    """A node resource in state: its worker pool id, node, task and addresses."""

    worker_pool_id: str
    node_id: str | None
    task_id: str | None
    private_ip: str | None
    public_ip: str | None

    @classmethod
    def from_values(cls, values: dict) -> NodeState:
        return cls(values.get("id"), values.get("node_id"), values.get("task_id"), values.get("private_ip"),
                   values.get("public_ip"))


@dataclass(frozen=True)
class ClusterState:
    """What Terraform's state says of the cluster (``terraform show -json``)."""

    work_requirement_id: str | None = None
    head: NodeState | None = None
    observability: NodeState | None = None
    worker_pool_ids: dict[str, str] = field(default_factory=dict)  # internal name -> pool id
    resource_count: int = 0

    @classmethod
    def from_show(cls, shown: dict) -> ClusterState:
        resources = list(_managed_resources((shown.get("values") or {}).get("root_module") or {}))
        found: dict = {"worker_pool_ids": {}, "resource_count": len(resources)}
        for resource in resources:
            values = resource.get("values") or {}
            kind = resource.get("type")
            if kind == "raydog_cluster":
                found["work_requirement_id"] = values.get("id")
            elif kind == "raydog_head":
                found["head"] = NodeState.from_values(values)
            elif kind == "raydog_observability":
                found["observability"] = NodeState.from_values(values)
            elif kind == "raydog_worker_pool":
                key = resource.get("index", values.get("name"))
                found["worker_pool_ids"][str(key)] = values.get("id")
        return cls(**found)


def _managed_resources(module: dict):
    for resource in module.get("resources", []):
        if resource.get("mode") == "managed":
            yield resource
    for child in module.get("child_modules", []):
        yield from _managed_resources(child)


class Workdir:
    """One cluster's working directory and the Terraform runs in it."""

    def __init__(self, path: Path, env: dict[str, str], progress: Progress) -> None:
        self.path = Path(path).expanduser().resolve()
        self.progress = progress
        self.runner = TerraformRunner(self.path, env, progress)
        self._initialised = False

    @property
    def has_configuration(self) -> bool:
        return any(self.path.glob("*.tf")) or any(self.path.glob("*.tf.json"))

    def prepare(self) -> None:
        """Create the directory with its copy of the module (kept once made: the state was built with it)."""
        self.path.mkdir(parents=True, exist_ok=True)
        module = self.path / MODULE_DIR
        if not (module / "main.tf").is_file():
            shutil.copytree(module_source_dir(), module, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("tests", ".terraform*", "*.tfstate*"))

    def write_config(self, document: dict) -> None:
        self.prepare()
        config.write(self.path, document)

    def init(self) -> None:
        """``terraform init`` once per process (after the provider is installed)."""
        if self._initialised:
            return
        ensure_provider_installed()
        self.progress.phase(f"terraform init in {self.path}")
        self.runner.init()
        self._initialised = True

    def state(self) -> ClusterState:
        self.init()
        return ClusterState.from_show(self.runner.show())
