"""The Registry contract: models, immutable numbered versions, aliases and tenant routes.

Promises every implementation keeps (``tests/conformance`` runs the same suite on each):

- **Versions are immutable and numbered without races.** ``register_version`` allocates the next
  number from an atomic per-model counter and writes the version with a conditional put; it never
  reads the maximum and adds one. Concurrent registrations of different packages get distinct,
  increasing numbers (consecutive unless a registration fails after allocating). Registering a
  package already registered for that model returns the existing version (``created=False``)
  unless ``new_version=True``.
- **Aliases and routes change by compare-and-swap.** Every alias and route carries a revision;
  ``set_alias(expect_version=...)`` / ``set_route(expect_revision=...)`` succeed only if the
  current state is the expected one, and otherwise raise :class:`ConflictError` (a lost race is an
  error, never a silent overwrite). Without an expectation the write is unconditional but still
  atomic.
- **Routes respect visibility.** ``set_route`` refuses (:class:`PrivateModelError`) to route a
  tenant to a model private to other tenants, checked in the same transaction as the write.
- **Nothing dangles.** An alias or route can only point at an existing, active version (or an
  existing alias); archiving a version that an alias, route or deployment uses is refused.
- **Every change bumps the model's routing revision**, so caches (:class:`mlops_cli.registry.router.Router`)
  can tell cheaply whether what they hold is still current.
- **Failed calls change nothing**: validation happens before the first write, and multi-item
  writes are transactions.
- Errors: :class:`NotFoundError` (``LookupError``) for unknown models, versions, aliases, routes;
  :class:`ConflictError` for lost races; :class:`RegistryNameError` (``ValueError``) for names
  outside the rules; :class:`RegistryUnavailableError` for a backend that cannot be reached or keeps
  throttling. Backend exceptions never leak.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from mlops_cli.errors import ConflictError, MlopsError, NotFoundError, UsageError

MODEL_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
ALIAS_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
TENANT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
TAG_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$")
DEFAULT_ALIAS = "production"

NAME_RULES = {
    "model": "1-64 characters of a-z 0-9 . _ -, starting with a letter or digit",
    "alias": "1-32 characters of a-z 0-9 _ -, starting with a letter",
    "tenant": "1-128 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit",
    "tag": "tag keys: 1-63 characters of A-Z a-z 0-9 . _ / -, starting with a letter or digit",
}
_PATTERNS = {"model": MODEL_NAME, "alias": ALIAS_NAME, "tenant": TENANT_NAME, "tag": TAG_KEY}


class RegistryNameError(UsageError):
    """A name outside the rules; the message prints the rule."""


class PrivateModelError(UsageError):
    """A route would send a tenant to a model private to other tenants."""


class RegistryUnavailableError(MlopsError):
    """The registry backend cannot be reached, or keeps throttling after retries."""


def check_name(kind: str, value: str) -> str:
    """Return ``value`` if it is a valid ``kind`` name (model, alias, tenant, tag)."""
    if not isinstance(value, str) or not _PATTERNS[kind].fullmatch(value):
        raise RegistryNameError(f"invalid {kind} name {value!r}: {NAME_RULES[kind]}")
    return value


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
    memory_mb: float | None = None  # measured by `mlops profile`
    latency_ms: float | None = None

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


class Registry(ABC):
    """Where versions and routes live. Pick one with :func:`mlops_cli.registry.open_registry`."""

    uri: str

    # -- setup -----------------------------------------------------------------------------

    @abstractmethod
    def init(self) -> bool:
        """Create the backing schema or table if needed; True when something was created.
        Idempotent."""

    # -- models and versions ---------------------------------------------------------------

    @abstractmethod
    def register_version(
        self,
        model: str,
        new: NewVersion,
        *,
        new_version: bool = False,
        alias: str | None = None,
        model_description: str = "",
    ) -> Registered:
        """Record ``new`` as the next version of ``model`` (creating the model on first use),
        and point ``alias`` at it in the same transaction when given."""

    @abstractmethod
    def get_model(self, model: str) -> ModelRecord:
        """NotFoundError when absent."""

    @abstractmethod
    def list_models(self) -> list[ModelRecord]:
        """Every model, sorted by name."""

    @abstractmethod
    def update_model(
        self,
        model: str,
        *,
        description: str | None = None,
        default_alias: str | None = None,
        private_to: tuple[str, ...] | None = None,
    ) -> ModelRecord:
        """Change a model's settings (``private_to=()`` makes it public); bumps its routing
        revision."""

    @abstractmethod
    def get_version(self, model: str, version: int) -> VersionRecord:
        """NotFoundError when absent."""

    @abstractmethod
    def list_versions(self, model: str) -> list[VersionRecord]:
        """Versions of ``model``, oldest first. NotFoundError for an unknown model."""

    @abstractmethod
    def find_versions_by_digest(self, package_digest: str) -> list[VersionRecord]:
        """Every version (of any model) registered from this package."""

    @abstractmethod
    def archive_version(self, model: str, version: int) -> VersionRecord:
        """Mark a version archived. ConflictError while an alias, route or deployment uses it."""

    @abstractmethod
    def set_version_metrics(
        self, model: str, version: int, *, memory_mb: float | None, latency_ms: float | None
    ) -> VersionRecord:
        """Store measured memory and latency (the one mutable part of a version)."""

    # -- aliases ---------------------------------------------------------------------------

    @abstractmethod
    def set_alias(
        self,
        model: str,
        alias: str,
        version: int,
        *,
        expect_version: int | Literal["absent"] | None = None,
    ) -> AliasRecord:
        """Point ``alias`` at ``version``. ``expect_version``: the version the alias must point
        at now (``"absent"``: it must not exist yet); otherwise ConflictError."""

    @abstractmethod
    def get_alias(self, model: str, alias: str) -> AliasRecord:
        """NotFoundError when absent."""

    @abstractmethod
    def list_aliases(self, model: str) -> list[AliasRecord]:
        """Aliases of ``model``, sorted by name."""

    @abstractmethod
    def delete_alias(self, model: str, alias: str, *, expect_version: int | None = None) -> None:
        """Remove an alias (ConflictError if ``expect_version`` differs, or a route uses it)."""

    # -- routes ----------------------------------------------------------------------------

    @abstractmethod
    def set_route(
        self,
        tenant: str,
        model: str,
        *,
        version: int | None = None,
        alias: str | None = None,
        canary_version: int | None = None,
        canary_percent: float = 0.0,
        expect_revision: int | None = None,
    ) -> RouteRecord:
        """Route ``tenant`` to ``model`` at a version or an alias, with an optional canary."""

    @abstractmethod
    def get_route(self, tenant: str, model: str) -> RouteRecord:
        """NotFoundError when absent."""

    @abstractmethod
    def list_routes(
        self, *, tenant: str | None = None, model: str | None = None
    ) -> list[RouteRecord]:
        """Routes filtered by tenant and/or model, sorted by (tenant, model)."""

    @abstractmethod
    def delete_route(self, tenant: str, model: str, *, expect_revision: int | None = None) -> None:
        """Remove a route (NotFoundError when absent)."""

    # -- resolution ------------------------------------------------------------------------

    @abstractmethod
    def routing_state(self, tenant: str, model: str) -> RoutingState:
        """The model, the tenant's route and the alias that applies, for resolution.
        NotFoundError for an unknown model."""

    @abstractmethod
    def routing_revision(self, model: str) -> int:
        """The model's routing revision (one cheap read): changes whenever anything that
        resolution depends on changes."""

    # -- deployments (recorded by deploy targets) --------------------------------------------

    @abstractmethod
    def record_deployment(
        self, model: str, version: int, target: str, *, detail: Mapping[str, Any]
    ) -> None:
        """Note that ``target`` serves ``model`` at ``version`` (archive is refused meanwhile)."""

    @abstractmethod
    def remove_deployment(self, model: str, version: int, target: str) -> None:
        """Forget a deployment record. Idempotent."""

    @abstractmethod
    def list_deployments(self, model: str | None = None) -> list[dict[str, Any]]:
        """Deployment records: model, version, target, detail, updated_at."""


def check_new_version(model: str, new: NewVersion, alias: str | None) -> None:
    """Validation shared by every backend's ``register_version``."""
    check_name("model", model)
    if alias is not None:
        check_name("alias", alias)
    for key in new.tags:
        check_name("tag", key)
    if not new.package_digest or not new.package_uri:
        raise UsageError("a version needs a package digest and a package URI")


def check_route_visibility(model: ModelRecord, tenant: str) -> None:
    """Rule shared by every backend's ``set_route``: only to a model the tenant may see."""
    if not model.visible_to(tenant):
        raise PrivateModelError(
            f"model {model.name} is private to other tenants; {tenant} cannot be routed to it",
            hint=f"mlops models update {model.name} --private-to TENANTS,{tenant} (or --public) first",
        )


def check_route_args(
    version: int | None, alias: str | None, canary_version: int | None, canary_percent: float
) -> None:
    """Validation shared by every backend's ``set_route``."""
    if (version is None) == (alias is None):
        raise UsageError("a route names exactly one of a version or an @alias")
    if alias is not None:
        check_name("alias", alias)
    if not 0 <= canary_percent <= 100:
        raise UsageError(f"canary percent {canary_percent} is outside 0-100")
    if (canary_version is None) != (canary_percent == 0):
        raise UsageError(
            "a canary needs both a version and a percent above 0", hint="--canary VERSION:PERCENT"
        )


__all__ = [
    "DEFAULT_ALIAS",
    "NAME_RULES",
    "AliasRecord",
    "ConflictError",
    "ModelRecord",
    "NewVersion",
    "NotFoundError",
    "PrivateModelError",
    "Registered",
    "Registry",
    "RegistryNameError",
    "RegistryUnavailableError",
    "RouteRecord",
    "RoutingState",
    "VersionRecord",
    "check_name",
    "check_new_version",
    "check_route_args",
    "check_route_visibility",
]
