"""The registry's records: what a registry stores and returns, as frozen values.

Every backend returns these types (never its rows or items), so callers and the conformance suite
compare backends record by record. ``to_dict`` is the JSON shape the command line prints.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

DEFAULT_ALIAS = "production"


@dataclass(frozen=True)
class ModelRecord:
    name: str
    description: str = ""
    default_alias: str = DEFAULT_ALIAS
    private_to: tuple[str, ...] = ()  # empty: every tenant may use it
    tags: Mapping[str, str] = field(default_factory=dict)
    created_at: str = ""
    latest_version: int = 0
    routing_revision: int = 0

    def visible_to(self, tenant: str) -> bool:
        return not self.private_to or tenant in self.private_to

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["private_to"] = list(self.private_to)
        data["tags"] = dict(self.tags)
        return data


@dataclass(frozen=True)
class VersionRecord:
    model: str
    version: int
    package_digest: str
    package_uri: str
    code_digest: str = ""
    source: Mapping[str, str] = field(default_factory=dict)
    lineage: Mapping[str, Any] = field(default_factory=dict)  # git, user, time, tool version
    tags: Mapping[str, str] = field(default_factory=dict)
    description: str = ""
    status: Literal["active", "archived"] = "active"
    created_at: str = ""
    memory_mb: float | None = None  # measured by `mlops profile`: peak host memory
    latency_ms: float | None = None
    gpu_memory_mb: float | None = None  # measured by `mlops profile` on a GPU server

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["source"] = dict(self.source)
        data["lineage"] = dict(self.lineage)
        data["tags"] = dict(self.tags)
        return data


@dataclass(frozen=True)
class AliasRecord:
    model: str
    alias: str
    version: int
    revision: int
    updated_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RouteRecord:
    """Tenant ``tenant`` gets ``model`` at ``version`` or at the version of ``alias`` (exactly one
    is set), except ``canary_percent`` percent of its requests, which get ``canary_version``."""

    tenant: str
    model: str
    version: int | None = None
    alias: str | None = None
    canary_version: int | None = None
    canary_percent: float = 0.0
    revision: int = 0
    updated_at: str = ""

    @property
    def target(self) -> str:
        return f"@{self.alias}" if self.alias else str(self.version)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["target"] = self.target
        return data


@dataclass(frozen=True)
class DeploymentRecord:
    """That target ``target`` (an id: ``local``, ``triton:<fleet>``, ``<kind>:<endpoint>``)
    serves ``model`` at ``version``, and where: ``detail`` is the JSON object the target wrote
    when it deployed it. The registry stores it and never reads it; only the target that wrote it
    parses it, into its own typed detail (``DeployTarget.parse_detail``)."""

    model: str
    version: int
    target: str
    detail: Mapping[str, object] = field(default_factory=dict)
    updated_at: str = ""  # when the deployment was last recorded

    def __post_init__(self) -> None:
        # Its own copy, as plain JSON: the record is a value, typed read-only (Mapping).
        object.__setattr__(self, "detail", json.loads(self.detail_json()))

    @property
    def kind(self) -> str:
        """The target kind of the id: ``triton`` for ``triton:gpu-fleet``."""
        return self.target.partition(":")[0]

    def detail_json(self) -> str:
        """The detail as stored: canonical JSON."""
        return json.dumps(dict(self.detail), sort_keys=True, default=str)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "target": self.target,
            "detail": json.loads(self.detail_json()),
            "updated_at": self.updated_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeploymentRecord:
        """The record :meth:`to_dict` wrote (``detail`` as an object or as its JSON text)."""
        detail = data.get("detail") or {}
        if isinstance(detail, str):
            detail = json.loads(detail or "{}")
        return cls(
            model=str(data["model"]),
            version=int(data["version"]),
            target=str(data["target"]),
            detail=detail,
            updated_at=str(data.get("updated_at") or ""),
        )


@dataclass(frozen=True)
class RouterHeartbeat:
    """A router's last report: what routing it serves and what it still has in flight.

    ``in_flight`` maps ``"model@version"`` to the requests in flight there now; entries of 0 are
    dropped when the record is built, so a version the router no longer serves is simply absent.
    """

    router_id: str  # unique per router process: 1-128 characters of A-Z a-z 0-9 . _ : -
    applied_revision: int  # the registry_revision() its routing state reflects
    in_flight: Mapping[str, int]
    at: float  # unix time (time.time()) of the report
    address: str = ""  # where it listens, "host:port"
    started_at: float = 0.0

    def __post_init__(self) -> None:
        # Its own copy, sorted, without zeros (non-numbers stay, for the registry to refuse).
        kept = {key: count for key, count in self.in_flight.items() if not _is_zero(count)}
        object.__setattr__(self, "in_flight", dict(sorted(kept.items(), key=lambda i: str(i[0]))))

    def in_flight_on(self, model: str, version: int) -> int:
        """Requests in flight on ``model`` at ``version`` (0 when none)."""
        return self.in_flight.get(f"{model}@{version}", 0)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["in_flight"] = dict(self.in_flight)
        return data


@dataclass(frozen=True)
class Lease:
    """A lock held in the registry: ``holder`` has ``name`` until ``expires_at`` (unix time)
    unless it renews it first. Past that time anyone may take it, so a holder that crashed
    blocks nobody for longer than its ttl.

    ``revision`` moves with every write of the lease (acquired, renewed, released) and never
    goes back, also across holders: a fencing token. ``acquired_at`` is when this holder got it
    (a renewal keeps it)."""

    name: str
    holder: str
    expires_at: float
    acquired_at: float
    revision: int

    def expired(self, now: float) -> bool:
        """Whether anyone may take it at ``now``."""
        return now >= self.expires_at

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PlacementRecord:
    """The stored placement of a fleet (the plan and its routing table, a JSON object whose
    shape the placement module owns; the registry never reads it) at ``revision``, which moves
    by one with every put and serves as the compare-and-swap token."""

    fleet: str
    revision: int
    document: Mapping[str, Any] = field(default_factory=dict)
    updated_at: str = ""

    def __post_init__(self) -> None:
        # Its own copy, as plain JSON (like DeploymentRecord's detail).
        object.__setattr__(self, "document", json.loads(self.document_json()))

    def document_json(self) -> str:
        """The document as stored: canonical JSON."""
        return json.dumps(dict(self.document), sort_keys=True, separators=(",", ":"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "fleet": self.fleet,
            "revision": self.revision,
            "document": json.loads(self.document_json()),
            "updated_at": self.updated_at,
        }


def _is_zero(count: object) -> bool:
    return isinstance(count, int) and not isinstance(count, bool) and count == 0


@dataclass(frozen=True)
class NewVersion:
    """What ``register_version`` is given; the registry adds the number and the time."""

    package_digest: str
    package_uri: str
    code_digest: str = ""
    source: Mapping[str, str] = field(default_factory=dict)
    lineage: Mapping[str, Any] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    description: str = ""


@dataclass(frozen=True)
class Registered:
    version: VersionRecord
    created: bool  # False: the package was already registered for this model


@dataclass(frozen=True)
class RoutingState:
    """Everything resolution needs about one (tenant, model), read in as few requests as the
    backend allows (DynamoDB: at most two)."""

    model: ModelRecord
    route: RouteRecord | None
    alias: AliasRecord | None  # the alias the route names, else the model's default alias


__all__ = [
    "DEFAULT_ALIAS",
    "AliasRecord",
    "DeploymentRecord",
    "Lease",
    "ModelRecord",
    "NewVersion",
    "PlacementRecord",
    "Registered",
    "RouteRecord",
    "RouterHeartbeat",
    "RoutingState",
    "VersionRecord",
]
