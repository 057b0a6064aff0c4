"""The provider's YellowDog layer: the only code that imports yellowdog_client.

Resources use ``YellowDogClient`` (built once per provider process with ``YellowDogClient.connect``),
the spec/info dataclasses, and the ``PlatformError`` family; they never see SDK types.

``YellowDogClient`` is imported on first use: importing yellowdog_client costs ~0.3 s, and
Terraform starts the provider several times per command, mostly for schemas and
validation, where no platform call is made. ``check_credentials`` (probe.py) checks the
key at configure time without it.
"""

from typing import TYPE_CHECKING

from .errors import (
    NotAuthorisedError,
    NotFoundError,
    OwnedElsewhereError,
    PlatformError,
    StoppedError,
    TaskFailedError,
    WaitTimeoutError,
    from_sdk_exception,
)
from .models import (
    TASK_GROUPS_MAX,
    NodeAddress,
    PoolInfo,
    PoolSpec,
    TaskGroupInfo,
    TaskGroupSpec,
    TaskInfo,
    TaskSpec,
    WorkRequirementInfo,
)
from .ownership import new_owner_token
from .probe import check_credentials

if TYPE_CHECKING:
    from .client import YellowDogClient


def __getattr__(name: str):
    if name == "YellowDogClient":
        from .client import YellowDogClient

        globals()["YellowDogClient"] = YellowDogClient
        return YellowDogClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "NodeAddress",
    "NotAuthorisedError",
    "NotFoundError",
    "OwnedElsewhereError",
    "YellowDogClient",
    "PlatformError",
    "PoolInfo",
    "PoolSpec",
    "StoppedError",
    "TASK_GROUPS_MAX",
    "TaskFailedError",
    "TaskGroupInfo",
    "TaskGroupSpec",
    "TaskInfo",
    "TaskSpec",
    "WaitTimeoutError",
    "WorkRequirementInfo",
    "check_credentials",
    "new_owner_token",
    "from_sdk_exception",
]
