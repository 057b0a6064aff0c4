"""The provider's YellowDog layer: the only code that imports yellowdog_client.

Resources use ``Platform`` (built once per provider process with ``Platform.connect``),
the spec/info dataclasses, and the ``PlatformError`` family; they never see SDK types.
"""

from .client import Platform
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
    "from_sdk_exception",
]
