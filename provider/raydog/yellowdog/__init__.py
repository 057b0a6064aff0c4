"""The provider's YellowDog layer: the only code that imports yellowdog_client.

Resources use ``Platform`` (built once per provider process with ``Platform.connect``),
the spec/info dataclasses, and the ``PlatformError`` family; they never see SDK types.

``Platform`` is imported on first use: importing yellowdog_client costs ~0.3 s, and
Terraform starts the provider several times per command, mostly for schemas and
validation, where no platform call is made. ``check_credentials`` (probe.py) checks the
key at configure time without it.
"""

from typing import TYPE_CHECKING

from .errors import (
    NotAuthorisedError,
    NotFoundError,
    PlatformError,
    StoppedError,
    TaskFailedError,
    WaitTimeoutError,
    from_sdk_exception,
)
from .models import (
    NodeAddress,
    PoolInfo,
    PoolSpec,
    TaskGroupInfo,
    TaskGroupSpec,
    TaskInfo,
    TaskSpec,
    WorkRequirementInfo,
)
from .probe import check_credentials

if TYPE_CHECKING:
    from .client import Platform


def __getattr__(name: str):
    if name == "Platform":
        from .client import Platform

        globals()["Platform"] = Platform
        return Platform
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "NodeAddress",
    "NotAuthorisedError",
    "NotFoundError",
    "Platform",
    "PlatformError",
    "PoolInfo",
    "PoolSpec",
    "StoppedError",
    "TaskFailedError",
    "TaskGroupInfo",
    "TaskGroupSpec",
    "TaskInfo",
    "TaskSpec",
    "WaitTimeoutError",
    "WorkRequirementInfo",
    "check_credentials",
    "from_sdk_exception",
]
