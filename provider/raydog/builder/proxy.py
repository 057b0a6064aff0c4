"""``RayDogClusterProxy``: shut down a cluster known by its saved JSON (RayDog's class of the same name).

JSON from ``RayDogCluster.save_state_to_json()`` names the cluster's Terraform working
directory: shutting down is ``terraform destroy`` there. JSON that RayDog itself saved (a
cluster RayDog built) has none, and a working directory may have been deleted: then the
cluster is first adopted from the JSON's ids into a new working directory (``adopt.py``),
then destroyed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .adopt import adopt
from .errors import RayDogBuilderError
from .progress import Progress
from .runner import base_environment
from .state import CLUSTER_NAME, TERRAFORM_DIR
from .workdir import Workdir, default_directory

YD_DEFAULT_API_URL = "https://api.yellowdog.ai"


class RayDogClusterProxy:
    """Load a cluster's saved state and shut the cluster down.

    Beyond RayDog's arguments, keyword-only: ``terraform_dir`` (where a cluster RayDog built
    is adopted; default ``./raydog-clusters/<cluster_name>``), ``terraform_backend`` (the
    adopted cluster's state backend) and ``quiet``.
    """

    def __init__(
        self,
        yd_application_key_id: str,
        yd_application_key_secret: str,
        yd_platform_api_url: str = YD_DEFAULT_API_URL,
        *,
        terraform_dir: str | os.PathLike | None = None,
        terraform_backend: dict | None = None,
        quiet: bool = False,
    ):
        self._api_url = yd_platform_api_url
        self._credentials = (yd_application_key_id, yd_application_key_secret)
        self._terraform_dir = Path(terraform_dir) if terraform_dir else None
        self._backend = terraform_backend
        self._quiet = quiet
        self._cluster_state: dict | None = None
        self._is_shut_down = False

    def load_saved_state_from_json(self, cluster_state: str):
        """Load the cluster state from a JSON string."""
        self._cluster_state = json.loads(cluster_state)

    def load_saved_state_from_json_file(self, file_name: str):
        """Load the cluster state from a JSON file."""
        with open(file_name) as f:
            self._cluster_state = json.load(f)

    def shut_down(self):
        """Shut the cluster down (``terraform destroy``); a second call raises, as in RayDog."""
        if self._cluster_state is None:
            raise RayDogBuilderError("Cannot shut down cluster with no cluster state")
        if self._is_shut_down:
            raise RayDogBuilderError("Cluster already shut down")
        state = self._cluster_state
        name = state.get(CLUSTER_NAME) or "cluster"
        progress = Progress(name, self._quiet)
        env = base_environment(self._api_url, *self._credentials)
        saved_dir = Path(state[TERRAFORM_DIR]) if state.get(TERRAFORM_DIR) else None
        if saved_dir is not None and Workdir(saved_dir, env, progress).has_configuration:
            workdir = Workdir(saved_dir, env, progress)
            workdir.init()
        else:
            if saved_dir is not None:
                # The working directory went away, but the JSON still names every id: adopt them.
                progress.line(f"{saved_dir} holds no Terraform configuration: adopting the cluster from its ids")
            workdir = Workdir(self._terraform_dir or default_directory(name), env, progress)
            if not adopt(state, workdir, self._api_url, *self._credentials, backend=self._backend):
                progress.line(f"cluster {name} is already gone")
                self._is_shut_down = True
                return
        progress.phase("shutting down (terraform destroy)")
        result = workdir.runner.destroy()
        if not result.ok:
            raise workdir.runner.error(result, f"could not shut down cluster {name}")
        progress.done("shut down")
        self._is_shut_down = True
