"""The DeployTarget contract: plan what would change, apply it, observe it, take it down.

A deploy is driven by :func:`mlops_cli.deploy.engine.deploy`, the same for every target:

1. ``target.plan(desired, records)`` compares one wanted model version with what the target
   serves (``records``: this target's deployment records of the model, from the registry) and
   returns a :class:`Plan`. ``--dry-run`` prints it and stops. A plan with no changes stops too:
   an identical second deploy changes nothing.
2. ``target.apply(plan)`` makes the new version servable beside the old one (render, publish, load,
   wait until READY, warm up) and returns the detail the registry records. If it fails it leaves
   the target as it found it and raises with the server's own error text.
3. The engine switches the alias with a conditional write (the cut-over), records the deployment,
   then ``target.retire(...)`` unloads each old version no alias or route still needs, after a
   drain period so that requests already routed to it finish.

Targets never touch the registry; the engine alone writes it.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from mlops_cli.modelspec import ModelSpec
from mlops_cli.package import PackageManifest
from mlops_cli.progress import SILENT, Reporter
from mlops_cli.stores.base import ArtifactStore

Device = Literal["cpu", "gpu"]
State = Literal["READY", "LOADING", "UNAVAILABLE", "DRIFT", "UNKNOWN"]


@dataclass(frozen=True)
class Capabilities:
    """What a target can do; the CLI refuses what a target cannot."""

    streaming: bool
    multi_model: bool
    explicit_load: bool
    gpu: bool

    def to_dict(self) -> dict[str, bool]:
        return asdict(self)


@dataclass(frozen=True)
class Desired:
    """One registered model version that should be served."""

    model: str
    version: int
    spec: ModelSpec
    manifest: PackageManifest
    store: ArtifactStore  # holds the package's blobs
    package_uri: str
    device: Device
    memory_mb: float  # measured by `mlops profile` if it was, else declared, else a default


@dataclass(frozen=True)
class Action:
    """One step of a plan, e.g. ``load m v2 on a``, ``switch @production 1 -> 2``."""

    op: str  # load | unload | switch | keep | publish | create | update | delete ...
    model: str
    version: int | None = None
    where: str = ""
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        what = self.model if self.version is None else f"{self.model} v{self.version}"
        text = f"{self.op} {what}"
        if self.where:
            text += f" on {self.where}"
        if self.detail:
            text += f" ({self.detail})"
        return text


@dataclass
class Plan:
    """What a deploy or undeploy would do. ``actions`` are for people and --dry-run; ``state``
    carries what the target needs to apply it (placement, names), opaque to everyone else."""

    target: str
    model: str
    version: int | None
    actions: list[Action] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def changes(self) -> bool:
        return any(action.op != "keep" for action in self.actions)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "model": self.model,
            "version": self.version,
            "changes": self.changes,
            "actions": [action.to_dict() for action in self.actions],
        }


@dataclass(frozen=True)
class DeploymentStatus:
    """One deployment as observed now."""

    model: str
    version: int
    target: str
    where: str
    state: State
    note: str = ""
    requests: int | None = None
    failures: int | None = None
    latency_ms: float | None = None  # mean of successful requests, from server statistics
    detail: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["detail"] = dict(self.detail)
        return data


@dataclass(frozen=True)
class InvokeRequest:
    """A request in the model's own terms: input name -> nested lists (or strings for BYTES)."""

    inputs: Mapping[str, Any]
    spec: ModelSpec
    stream: bool = False
    protocol: Literal["http", "grpc"] = "http"
    timeout: float = 60.0


@dataclass(frozen=True)
class Chunk:
    """One response (a whole answer, or one streamed piece): output name -> value as lists."""

    outputs: Mapping[str, Any]
    received_at: float  # time.monotonic() when it arrived


class DeployTarget(ABC):
    """A place models are served. Subclasses set ``kind``, ``id`` and ``capabilities``."""

    kind: str  # "local", "triton", "sagemaker-mme", "mme-local"
    id: str  # the registry's target key, e.g. "local", "triton:gpu-fleet"
    capabilities: Capabilities

    def lock(self) -> contextlib.AbstractContextManager[None]:
        """Held by the engine around a whole deploy or undeploy, so that two mlops processes
        changing the same target take turns. Default: no lock (the conditional alias write is
        the only guard)."""
        return contextlib.nullcontext()

    @abstractmethod
    def plan(self, desired: Desired, records: Sequence[Mapping[str, Any]]) -> Plan:
        """What it takes to serve ``desired``, given this target's deployment records of the
        model. Pure observation: changes nothing."""

    @abstractmethod
    def apply(self, plan: Plan, *, reporter: Reporter = SILENT) -> dict[str, Any]:
        """Make the planned version servable (and warmed up) beside any old one; return the
        detail to record. On failure: undo what it did, raise with the server's message."""

    @abstractmethod
    def retire(
        self, model: str, version: int, detail: Mapping[str, Any], *, reporter: Reporter = SILENT
    ) -> None:
        """Stop serving an old version (after the engine's drain). Idempotent."""

    @abstractmethod
    def status(self, records: Sequence[Mapping[str, Any]]) -> list[DeploymentStatus]:
        """Observe the recorded deployments, and report drift both ways: recorded but not
        served, and served but not recorded."""

    @abstractmethod
    def invoke(
        self, model: str, version: int, detail: Mapping[str, Any], request: InvokeRequest
    ) -> Iterator[Chunk]:
        """Send one request to the version; yields one chunk, or each streamed chunk as it
        arrives."""


__all__ = [
    "Action",
    "Capabilities",
    "Chunk",
    "DeployTarget",
    "DeploymentStatus",
    "Desired",
    "Device",
    "InvokeRequest",
    "Plan",
    "State",
]
