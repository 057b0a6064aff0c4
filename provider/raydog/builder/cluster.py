"""``RayDogCluster``: RayDog 2.0.0's cluster builder, each state-changing call a Terraform run.

The constructor and methods keep RayDog's signatures, defaults, return values, public
attributes and errors, so a RayDog program changes only its import::

    from raydog.builder import RayDogCluster   # was: from yellowdog_ray.raydog.builder import ...

Under it, the cluster is a call of the raydog module (``config.py``) in a working directory
(``workdir.py``): ``build()`` is ``terraform apply``, adding or removing a worker pool after
the build is an apply of the changed configuration, ``shut_down()`` is ``terraform
destroy``. The state is Terraform's, in the working directory or the backend passed in.
"""

from __future__ import annotations

import json
import os
import re
from datetime import timedelta
from pathlib import Path

from . import config
from .errors import BuildTimeoutError, HeadNodeFailedError, RayDogBuilderError, TerraformRunError
from .progress import Progress
from .runner import RunResult, base_environment
from .spec import (
    NAME_RULE,
    WORKER_NODES_TASK_GROUP_NAME,
    ClusterSpec,
    NodeSpec,
    WorkerNodeWorkerPool,
    pool_key_problem,
)
from .state import saved_state
from .workdir import ClusterState, Workdir, default_directory

YD_DEFAULT_API_URL = "https://api.yellowdog.ai"
MAX_CLUSTER_NAME = 48  # the module's limit: <name>-head-<6 hex> fits YellowDog's 60

# The provider's diagnostics for a node that did not start in time, or whose task ended.
_TIMED_OUT = re.compile(r"^The (head|observability) node did not start")
_FAILED = re.compile(r"^The (head|observability) node failed")


class RayDogCluster:
    """A Ray cluster on YellowDog, built and changed by Terraform (RayDog's ``RayDogCluster``).

    Beyond RayDog's arguments, keyword-only:

    - ``terraform_dir``: the cluster's Terraform working directory (default
      ``./raydog-clusters/<cluster_name>``); ``terraform destroy`` there shuts it down;
    - ``terraform_backend``: a Terraform backend for the state, as ``{type: settings}``
      (e.g. ``{"s3": {"bucket": ..., "key": ..., "region": ...}}``); default: a local
      ``terraform.tfstate`` in ``terraform_dir``;
    - ``quiet``: no progress lines.
    """

    def __init__(
        self,
        yd_application_key_id: str,
        yd_application_key_secret: str,
        cluster_name: str,
        cluster_namespace: str,
        head_node_compute_requirement_template_id: str,
        head_node_ray_start_script: str,
        yd_platform_api_url: str = YD_DEFAULT_API_URL,
        cluster_tag: str | None = None,
        head_node_images_id: str | None = None,
        head_node_userdata: str | None = None,
        head_node_instance_tags: dict[str, str] | None = None,
        head_node_metrics_enabled: bool | None = None,
        enable_observability: bool = False,
        observability_node_compute_requirement_template_id: str | None = None,
        observability_node_instance_tags: dict[str, str] | None = None,
        observability_node_images_id: str | None = None,
        observability_node_userdata: str | None = None,
        observability_node_metrics_enabled: bool | None = None,
        observability_node_start_script: str | None = None,
        cluster_lifetime: timedelta | None = None,
        *,
        terraform_dir: str | os.PathLike | None = None,
        terraform_backend: dict | None = None,
        quiet: bool = False,
    ):
        if not NAME_RULE.fullmatch(cluster_name or "") or len(cluster_name) > MAX_CLUSTER_NAME:
            raise ValueError(
                f"cluster_name {cluster_name!r} must follow YellowDog's naming rule (a lowercase letter first, "
                f"a letter or digit last, only lowercase letters, digits, '-' and '_') and be at most "
                f"{MAX_CLUSTER_NAME} characters long")
        if enable_observability and observability_node_compute_requirement_template_id is None:
            raise ValueError(
                "observability_node_compute_requirement_template_id is required when enable_observability is True")

        observability = None
        if enable_observability:
            observability = NodeSpec(observability_node_compute_requirement_template_id,
                                     observability_node_start_script, observability_node_images_id,
                                     observability_node_userdata, observability_node_instance_tags,
                                     observability_node_metrics_enabled)
        self._spec = ClusterSpec(
            name=cluster_name,
            namespace=cluster_namespace,
            api_url=yd_platform_api_url,
            tag=cluster_tag,
            lifetime=cluster_lifetime,
            head=NodeSpec(head_node_compute_requirement_template_id, head_node_ray_start_script,
                          head_node_images_id, head_node_userdata, head_node_instance_tags,
                          head_node_metrics_enabled),
            observability=observability,
        )
        self._credentials = (yd_application_key_id, yd_application_key_secret)
        self._backend = terraform_backend
        self._progress = Progress(cluster_name, quiet)
        self._workdir = Workdir(Path(terraform_dir) if terraform_dir else default_directory(cluster_name),
                                base_environment(yd_platform_api_url, *self._credentials), self._progress)
        self._task_group_running_total = 0  # as RayDog: never decremented
        self._applied = False
        self._is_built = False
        self._is_shut_down = False
        self._yd_client = None

        # RayDog's public attributes.
        self.work_requirement_id: str | None = None
        self.head_node_worker_pool_id: str | None = None
        self.head_node_node_id: str | None = None
        self.head_node_private_ip: str | None = None
        self.head_node_public_ip: str | None = None
        self.head_node_task_id: str | None = None
        self.worker_node_worker_pools: dict[str, WorkerNodeWorkerPool] = self._spec.worker_pools
        self.enable_observability = enable_observability
        self.observability_node_id: str | None = None
        self.observability_node_private_ip: str | None = None
        self.observability_node_worker_pool_id: str | None = None
        self.observability_node_task_id: str | None = None

    # -- RayDog's API ---------------------------------------------------------------------------

    @property
    def yd_client(self):
        """A YellowDog SDK ``PlatformClient`` for this cluster's account (made on first use)."""
        if self._yd_client is None:
            from raydog.yellowdog import YellowDogClient

            self._yd_client = YellowDogClient.connect(self._spec.api_url, *self._credentials).sdk
        return self._yd_client

    @property
    def terraform_dir(self) -> Path:
        """The cluster's Terraform working directory."""
        return self._workdir.path

    def add_worker_pool(
        self,
        worker_node_compute_requirement_template_id: str,
        worker_node_task_script: str,
        worker_pool_node_count: int,
        worker_pool_internal_name: str | None = None,
        worker_node_images_id: str | None = None,
        worker_node_userdata: str | None = None,
        worker_node_instance_tags: dict[str, str] | None = None,
        worker_node_metrics_enabled: bool | None = None,
    ) -> str | None:
        """Add a worker pool. Before ``build()`` it is created by the build and None is returned;
        after, it is created now (``terraform apply``) and its worker pool id is returned.

        ``worker_pool_internal_name`` (default ``worker-nodes-NN``) must be unique in the
        cluster and follow YellowDog's naming rule: it is the pool's key in the module.
        """
        if self._is_shut_down:
            raise RayDogBuilderError("'add_worker_pool()' method called on already shut-down cluster")
        if worker_pool_node_count < 1:
            raise ValueError("worker_pool_node_count must be > 0")

        self._task_group_running_total += 1
        internal_name = (f"{WORKER_NODES_TASK_GROUP_NAME}-{str(self._task_group_running_total).zfill(2)}"
                         if worker_pool_internal_name is None else worker_pool_internal_name)
        if internal_name in self.worker_node_worker_pools:
            raise RayDogBuilderError(f"Internal name '{internal_name}' for worker node worker pool is already in use")
        problem = pool_key_problem(internal_name)
        if problem:
            raise ValueError(f"worker_pool_internal_name {internal_name!r} {problem}")

        pool = WorkerNodeWorkerPool(worker_node_compute_requirement_template_id, worker_node_task_script,
                                    worker_pool_node_count, worker_node_images_id, worker_node_userdata,
                                    worker_node_instance_tags, worker_node_metrics_enabled)
        self.worker_node_worker_pools[internal_name] = pool
        if not self._is_built:
            return None

        self._progress.phase(f"adding worker pool {internal_name} ({worker_pool_node_count} nodes)")
        result = self._apply()
        if not result.ok:
            del self.worker_node_worker_pools[internal_name]
            # Whatever the failed apply left (a tainted pool) goes with an apply of the old configuration.
            self._apply()
            raise self._workdir.runner.error(result, f"could not add worker pool {internal_name}")
        self._read_state()
        self._progress.done(f"worker pool {internal_name} added")
        return pool.worker_pool_id

    def build(self, head_node_build_timeout: timedelta | None = None) -> tuple[str, str | None]:
        """Build the cluster (``terraform apply``); blocks until the head node runs.

        Returns (head private IP, head public IP or None). If the head (or observability)
        node is not running within ``head_node_build_timeout``, raises ``TimeoutError``
        (``BuildTimeoutError``) after removing everything the build created. Without a
        timeout, the module's default (20 minutes) bounds the wait.
        """
        if self._is_built:
            raise RayDogBuilderError("'build()' method already called")
        if self._is_shut_down:
            raise RayDogBuilderError("'build()' method called on already shut-down cluster")

        self._spec.build_timeout = head_node_build_timeout
        self._write_config()
        existing = self._workdir.state()
        if existing.resource_count:
            raise RayDogBuilderError(
                f"{self._workdir.path} already holds the Terraform state of a cluster ({existing.resource_count} "
                "resources); shut it down first (RayDogClusterProxy, or `terraform destroy` there) or pass "
                "another terraform_dir")

        pools = len(self.worker_node_worker_pools)
        self._progress.phase(f"building: head node{', observability node' if self.enable_observability else ''}"
                             f" and {pools} worker pool{'s' if pools != 1 else ''}")
        result = self._apply()
        if not result.ok:
            error = self._build_error(result)
            self._progress.phase("build failed: removing what it created")
            self._destroy_after_failure(error)
            if isinstance(error, (BuildTimeoutError, HeadNodeFailedError)):
                self._is_shut_down = True  # RayDog shut the cluster down on these
            raise error
        self._read_state()
        self._is_built = True
        self._progress.done(f"built: head node at {self.head_node_private_ip}")
        return self.head_node_private_ip, self.head_node_public_ip

    def remove_worker_pool(self, worker_pool_id: str):
        """Remove the worker pool with this id (``terraform apply`` without it); the cluster stays up."""
        if self._is_shut_down:
            raise RayDogBuilderError("'remove_worker_pool()' method called on already shut-down cluster")
        internal_name = self.get_worker_pool_internal_name_by_id(worker_pool_id)
        if internal_name is None:
            raise RayDogBuilderError(
                f"Worker pool ID '{worker_pool_id}' not in current list of worker node worker pools")
        self._remove(internal_name)

    def remove_worker_pool_by_internal_name(self, internal_name: str):
        """Remove a worker pool by its internal name; raises if there is none of that name."""
        if self._is_shut_down:
            raise RayDogBuilderError(
                "'remove_worker_pool_by_internal_name()' method called on already shut-down cluster")
        pool = self.worker_node_worker_pools.get(internal_name)
        if pool is None:
            raise RayDogBuilderError(f"Worker pool with internal name '{internal_name}' not found")
        if pool.worker_pool_id is not None:
            self.remove_worker_pool(pool.worker_pool_id)
        else:
            del self.worker_node_worker_pools[internal_name]

    def get_worker_pool_internal_name_by_id(self, worker_pool_id: str) -> str | None:
        """The internal name of the worker pool with this id, or None."""
        for name, pool in self.worker_node_worker_pools.items():
            if pool.worker_pool_id == worker_pool_id:
                return name
        return None

    @property
    def worker_pool_ids(self) -> list[str]:
        """The ids of the worker pools that exist."""
        return [p.worker_pool_id for p in self.worker_node_worker_pools.values() if p.worker_pool_id is not None]

    @property
    def worker_pool_internal_names(self) -> list[str]:
        return list(self.worker_node_worker_pools)

    def shut_down(self):
        """Shut the cluster down (``terraform destroy``). A second call does nothing, as in RayDog."""
        if self._is_shut_down:
            return
        if self._applied:
            self._progress.phase("shutting down (terraform destroy)")
            result = self._workdir.runner.destroy()
            if not result.ok:
                raise self._workdir.runner.error(result, f"could not shut down cluster {self._spec.name}")
            self._progress.done("shut down")
        self.work_requirement_id = None
        self.head_node_worker_pool_id = None
        self.observability_node_worker_pool_id = None
        self.worker_node_worker_pools.clear()
        self._is_shut_down = True

    def save_state_to_json(self) -> str:
        """The cluster's state as JSON: RayDog's fields plus ``terraform_dir``."""
        return json.dumps(self._save_state(), indent=2)

    def save_state_to_json_file(self, file_name: str):
        """``save_state_to_json()`` into ``file_name``."""
        with open(file_name, "w") as f:
            json.dump(self._save_state(), f, indent=2)

    # -- under it -------------------------------------------------------------------------------

    def _save_state(self) -> dict:
        if not self._is_built:
            raise RayDogBuilderError("Cannot save state on a cluster that is not yet built")
        if self._is_shut_down:
            raise RayDogBuilderError("Cannot save state on a cluster that is shut down")
        pool_ids = self.worker_pool_ids + [self.head_node_worker_pool_id]
        if self.enable_observability:
            pool_ids.append(self.observability_node_worker_pool_id)
        return saved_state(self._spec.name, self._spec.namespace, self._spec.tag, self.work_requirement_id,
                           pool_ids, self._workdir.path)

    def _write_config(self) -> None:
        self._workdir.write_config(config.render(self._spec, self._backend))

    def _apply(self) -> RunResult:
        self._write_config()
        self._workdir.init()
        self._applied = True
        return self._workdir.runner.apply()

    def _remove(self, internal_name: str) -> None:
        pool = self.worker_node_worker_pools.pop(internal_name)
        self._progress.phase(f"removing worker pool {internal_name}")
        result = self._apply()
        if not result.ok:
            self.worker_node_worker_pools[internal_name] = pool
            raise self._workdir.runner.error(result, f"could not remove worker pool {internal_name}")
        self._progress.done(f"worker pool {internal_name} removed")

    def _read_state(self) -> None:
        state: ClusterState = self._workdir.state()
        self.work_requirement_id = state.work_requirement_id
        if state.head is not None:
            self.head_node_worker_pool_id = state.head.worker_pool_id
            self.head_node_node_id = state.head.node_id
            self.head_node_task_id = state.head.task_id
            self.head_node_private_ip = state.head.private_ip
            self.head_node_public_ip = state.head.public_ip
        if state.observability is not None:
            self.observability_node_worker_pool_id = state.observability.worker_pool_id
            self.observability_node_id = state.observability.node_id
            self.observability_node_task_id = state.observability.task_id
            self.observability_node_private_ip = state.observability.private_ip
        for name, pool in self.worker_node_worker_pools.items():
            pool.worker_pool_id = state.worker_pool_ids.get(name)

    def _build_error(self, result: RunResult) -> TerraformRunError:
        runner = self._workdir.runner
        summaries = [d.summary for d in result.errors]
        timed_out = next((m for m in map(_TIMED_OUT.match, summaries) if m), None)
        if timed_out:
            return runner.error(result, f"Timeout waiting for Ray {timed_out.group(1)} node task to enter "
                                        "EXECUTING state", BuildTimeoutError)
        failed = next((m for m in map(_FAILED.match, summaries) if m), None)
        if failed:
            return runner.error(result, f"Unexpected {failed.group(1)} node task status", HeadNodeFailedError)
        return runner.error(result, f"could not build cluster {self._spec.name}")

    def _destroy_after_failure(self, error: TerraformRunError) -> None:
        result = self._workdir.runner.destroy()
        if result.ok:
            self._applied = False
            return
        cleanup = self._workdir.runner.error(result, "and removing what the build created failed too")
        error.add_note(f"{cleanup}\nRun `terraform destroy` in {self._workdir.path} to finish the clean-up.")
