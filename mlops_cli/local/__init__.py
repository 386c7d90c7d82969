"""The managed local servers under the workspace: the embedded Triton (:mod:`.server`) and
mme-local (:mod:`.mme`), both on one process manager (:mod:`.manager`) that records each in a
state file (:mod:`.state`)."""

from mlops_cli.local.manager import (
    DownResult,
    LocalModel,
    LocalServerStatus,
    ManagedServer,
    UpResult,
)
from mlops_cli.local.server import LocalTriton, TritonState, running_server
from mlops_cli.local.state import ServerState

__all__ = [
    "DownResult",
    "LocalModel",
    "LocalServerStatus",
    "LocalTriton",
    "ManagedServer",
    "ServerState",
    "TritonState",
    "UpResult",
    "running_server",
]
