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

Each target owns two typed values: its **plan** (a subclass of :class:`Plan` carrying what its
``apply`` needs: placement, names; the engine reads only ``actions``) and its **placement
detail** (a frozen value with ``where`` and ``to_dict``, see :class:`PlacementDetail`) that the
registry stores as JSON in a :class:`~mlops_cli.registry.records.DeploymentRecord` and that only
the target parses back (``parse_detail``). Which class serves a kind is one table,
:mod:`mlops_cli.deploy.kinds`; a target is rebuilt from its records by
:meth:`DeployTarget.from_records` of the class the table names, and requests and observations
go through the target's own ``invoke`` and ``status``.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, Protocol, TypeVar

from mlops_cli.errors import NotSupportedError
from mlops_cli.packages.manifest import PackageManifest
from mlops_cli.progress import SILENT, Reporter
from mlops_cli.registry.records import DeploymentRecord
from mlops_cli.spec.modelspec import ModelSpec
from mlops_cli.stores.base import ArtifactStore

if TYPE_CHECKING:
    from mlops_cli.config import Settings

Device = Literal["cpu", "gpu"]
State = Literal["READY", "LOADING", "UNAVAILABLE", "DRIFT", "UNKNOWN", "FAILED"]


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
    """What a deploy or undeploy would do. ``actions`` are for people and --dry-run; a target's
    own subclass adds, as typed fields, what its ``apply`` needs (placement, names), opaque to
    the engine."""

    target: str
    model: str
    version: int | None
    actions: list[Action] = field(default_factory=list)

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


class PlacementDetail(Protocol):
    """Where a target serves a version: a frozen value its target writes at deploy time and
    parses back from the stored JSON (``DeployTarget.parse_detail``)."""

    @property
    def where(self) -> str:
        """Where, for people: server names, an endpoint name."""
        ...

    def to_dict(self) -> dict[str, object]:
        """The JSON object the registry stores."""
        ...


P = TypeVar("P", bound=Plan)
D = TypeVar("D", bound=PlacementDetail)


class DeployTarget(ABC, Generic[P, D]):
    """A place models are served. Subclasses set ``kind``, ``id`` and ``capabilities``, and
    name their plan type ``P`` and placement detail type ``D``.

    Promises: ``plan`` changes nothing; ``apply`` leaves nothing behind when it fails (no
    tarball, nothing loaded) and raises the server's own error; ``retire`` is idempotent (a
    second call, or a version already gone, is fine); ``status`` reports drift both ways where
    the target can see it; ``invoke`` refuses with :class:`NotSupportedError` what
    ``capabilities`` does not declare (``unsupported`` says why)."""

    kind: ClassVar[str]  # "local", "triton", "sagemaker-mme", "mme-local"
    id: str  # the registry's target key, e.g. "local", "triton:gpu-fleet"
    capabilities: Capabilities
    unsupported: ClassVar[Mapping[str, str]] = {}  # capability -> why this target lacks it

    # -- building one ------------------------------------------------------------------------

    @classmethod
    def from_records(
        cls,
        settings: Settings,
        target_id: str,
        records: Sequence[DeploymentRecord],
        *,
        fleet: Path | None = None,
        endpoint: Path | None = None,
    ) -> DeployTarget[Any, Any]:
        """The target ``target_id`` as far as its deployment ``records`` describe it (enough to
        observe and invoke them); a fleet or endpoint file naming the same target, when given,
        describes it whole (what is served but not recorded, too). The kind picks the class
        (:func:`mlops_cli.deploy.kinds.rebuild_target`); each target class implements it."""
        raise NotImplementedError(f"{cls.__name__} cannot be rebuilt from its records")

    @classmethod
    def open(
        cls,
        settings: Settings,
        *,
        fleet: Path | None = None,
        endpoint: Path | None = None,
        reporter: Reporter = SILENT,
    ) -> DeployTarget[P, D]:
        """The target as its file describes it (the fleet file for ``triton``, the endpoint
        file for the SageMaker kinds; UsageError naming the option when it is missing)."""
        raise NotImplementedError(f"{cls.__name__} is not opened from a file")

    @classmethod
    @abstractmethod
    def parse_detail(cls, record: DeploymentRecord) -> D:
        """This target's placement detail, read from the JSON ``record`` stores. Lenient: a
        field the record lacks gets its default (records written by older versions)."""

    def lock(self) -> contextlib.AbstractContextManager[None]:
        """Held by the engine around a whole deploy or undeploy, so that two mlops processes
        changing the same target take turns. Default: no lock (the conditional alias write is
        the only guard)."""
        return contextlib.nullcontext()

    # -- the contract -------------------------------------------------------------------------

    @abstractmethod
    def plan(self, desired: Desired, records: Sequence[DeploymentRecord]) -> P:
        """What it takes to serve ``desired``, given this target's deployment records of the
        model. Pure observation: changes nothing."""

    @abstractmethod
    def apply(self, plan: P, *, reporter: Reporter = SILENT) -> D:
        """Make the planned version servable (and warmed up) beside any old one; return the
        detail to record. On failure: undo what it did, raise with the server's message."""

    @abstractmethod
    def retire(self, model: str, version: int, detail: D, *, reporter: Reporter = SILENT) -> None:
        """Stop serving an old version (after the engine's drain). Idempotent."""

    @abstractmethod
    def status(self, records: Sequence[DeploymentRecord]) -> list[DeploymentStatus]:
        """Observe the recorded deployments, and report drift both ways: recorded but not
        served, and served but not recorded."""

    def invoke(self, record: DeploymentRecord, request: InvokeRequest) -> Iterator[Chunk]:
        """Send one request to the recorded version; yields one chunk, or each streamed chunk as
        it arrives. NotSupportedError for a stream on a target that declares none."""
        if request.stream and not self.capabilities.streaming:
            why = self.unsupported.get("streaming", f"target {self.id} cannot stream")
            raise NotSupportedError(
                f"cannot stream {record.model} v{record.version}: {why}",
                hint="invoke without --stream (the router streams through routing)",
            )
        return self._invoke(record, request)

    @abstractmethod
    def _invoke(self, record: DeploymentRecord, request: InvokeRequest) -> Iterator[Chunk]:
        """:meth:`invoke`, once the capabilities allow the request."""


__all__ = [
    "Action",
    "Capabilities",
    "Chunk",
    "DeployTarget",
    "DeploymentRecord",
    "DeploymentStatus",
    "Desired",
    "Device",
    "InvokeRequest",
    "PlacementDetail",
    "Plan",
    "State",
]
