"""RayDog's Python builder API on Terraform.

``RayDogCluster`` and ``RayDogClusterProxy`` keep the signatures of
``yellowdog_ray.raydog.builder`` (yellowdog-ray 2.0.0), so a RayDog program changes only
its import; each call that changes the cluster renders the raydog module's configuration
and runs Terraform (see docs/guides/migrating-from-raydog-builder.md).

Files: ``cluster.py`` and ``proxy.py`` (the API), ``spec.py`` (arguments as typed objects),
``config.py`` (the ``main.tf.json`` module call), ``workdir.py`` (the working directory and
its state), ``runner.py`` (Terraform runs, ``-json`` diagnostics), ``progress.py``,
``provider_install.py`` (install on first use), ``adopt.py`` (RayDog-built clusters),
``state.py`` (saved JSON), ``errors.py``.
"""

from .cluster import RayDogCluster
from .errors import BuildTimeoutError, Diagnostic, HeadNodeFailedError, RayDogBuilderError, TerraformRunError
from .proxy import RayDogClusterProxy
from .spec import WorkerNodeWorkerPool

__all__ = [
    "BuildTimeoutError",
    "Diagnostic",
    "HeadNodeFailedError",
    "RayDogBuilderError",
    "RayDogCluster",
    "RayDogClusterProxy",
    "TerraformRunError",
    "WorkerNodeWorkerPool",
]
