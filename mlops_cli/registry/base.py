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
  can tell cheaply whether what they hold is still current. Deployment records count as changes.
- **One registry-wide revision** (:meth:`Registry.registry_revision`, one cheap read) increases
  with every change to any model (a model created or updated, a version registered or archived,
  aliases, routes, deployment records), in the same transaction as the change: a router that
  holds all routing state polls it alone, and a reader that sees revision R after a write
  returned also sees that write. A refused change does not move it; neither do heartbeats.
- **Routers report by heartbeat** (:class:`RouterHeartbeat`): an upsert per router id, listed
  by id, so that a deploy drains an old version on evidence (what every live router applied and
  still has in flight) rather than on a timer.
- **Leases and placements** (:mod:`mlops_cli.registry.coordination`, whose docstring holds
  their promises): a lock with an expiry per name, taken by compare-and-swap, and one JSON
  placement document per fleet with a revision; a placement put moves the registry revision,
  a lease write does not.
- **Failed calls change nothing**: validation happens before the first write, and multi-item
  writes are transactions.
- Errors: :class:`NotFoundError` (``LookupError``) for unknown models, versions, aliases, routes;
  :class:`ConflictError` for lost races; :class:`RegistryNameError` (``ValueError``) for names
  outside the rules; :class:`RegistryUnavailableError` for a backend that cannot be reached or keeps
  throttling. Backend exceptions never leak.

How the work is split: the public methods of :class:`Registry` are template methods, written once.
They check names and arguments, build a change (:mod:`mlops_cli.registry.changes`), hand it to the
**storage port** (the abstract ``_read_*`` and ``_apply_*``-style methods a backend implements),
and raise the rules' errors. A backend only stores: it reads and writes records, keeps each change
atomic (a SQLite transaction; DynamoDB conditional writes and transactions) and calls the change's
``check`` on the model as it read it there. So the rules, their order and their messages are the
same on every backend by construction, not by care.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, Literal

from mlops_cli.errors import ConflictError, NotFoundError
from mlops_cli.registry.changes import (
    AliasChange,
    AliasDeletion,
    Archive,
    DeploymentChange,
    RouteChange,
    RouteDeletion,
)
from mlops_cli.registry.coordination import Coordination, LeaseHeldError, LeaseLostError
from mlops_cli.registry.records import (
    DEFAULT_ALIAS,
    AliasRecord,
    DeploymentRecord,
    Lease,
    ModelRecord,
    NewVersion,
    PlacementRecord,
    Registered,
    RouteRecord,
    RouterHeartbeat,
    RoutingState,
    VersionRecord,
)
from mlops_cli.registry.rules import (
    NAME_RULES,
    ModelUpdate,
    PrivateModelError,
    RegistryNameError,
    RegistryUnavailableError,
    VersionMetrics,
    alias_missing,
    check_heartbeat,
    check_max_age,
    check_name,
    check_new_version,
    check_route_args,
    check_route_visibility,
    model_missing,
    route_missing,
    version_missing,
)


class Registry(Coordination, ABC):
    """Where versions and routes live. Pick one with :func:`mlops_cli.registry.open_registry`."""

    uri: str

    # -- setup -----------------------------------------------------------------------------

    @abstractmethod
    def init(self) -> bool:
        """Create the backing schema or table if needed; True when something was created.
        Idempotent."""

    def exists(self) -> bool:
        """Whether the backing store is there (reads of a registry that is not answer as an
        empty one; a long-running reader such as the router refuses to start on it instead).
        A backend whose absence its reads already report as an error keeps this default."""
        return True

    # -- models and versions ---------------------------------------------------------------

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
        check_new_version(model, new, alias)
        return self._register(
            model, new, new_version=new_version, alias=alias, model_description=model_description
        )

    def get_model(self, model: str) -> ModelRecord:
        """NotFoundError when absent."""
        check_name("model", model)
        if (found := self._read_model(model)) is None:
            raise model_missing(model)
        return found

    def list_models(self) -> list[ModelRecord]:
        """Every model, sorted by name."""
        return sorted(self._read_models(), key=lambda m: m.name)

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
        check_name("model", model)
        update = ModelUpdate(description, default_alias, private_to)
        if (found := self._update_model(model, update)) is None:
            raise model_missing(model)
        return found

    def get_version(self, model: str, version: int) -> VersionRecord:
        """NotFoundError when absent."""
        check_name("model", model)
        if (found := self._read_version(model, version)) is None:
            self.get_model(model)
            raise version_missing(model, version)
        return found

    def list_versions(self, model: str) -> list[VersionRecord]:
        """Versions of ``model``, oldest first. NotFoundError for an unknown model."""
        check_name("model", model)
        if not (found := self._read_versions(model)):
            self.get_model(model)
        return sorted(found, key=lambda v: v.version)

    def find_versions_by_digest(self, package_digest: str) -> list[VersionRecord]:
        """Every version (of any model) registered from this package."""
        return sorted(
            self._read_versions_by_digest(package_digest), key=lambda v: (v.model, v.version)
        )

    def archive_version(self, model: str, version: int) -> VersionRecord:
        """Mark a version archived. ConflictError while an alias, route or deployment uses it."""
        return self._archive(Archive(model, version))

    def set_version_metrics(
        self,
        model: str,
        version: int,
        *,
        memory_mb: float | None,
        latency_ms: float | None,
        gpu_memory_mb: float | None = None,
    ) -> VersionRecord:
        """Store measured memory and latency (the one mutable part of a version)."""
        check_name("model", model)
        metrics = VersionMetrics(memory_mb, latency_ms, gpu_memory_mb)
        if (found := self._set_metrics(model, version, metrics)) is None:
            self.get_model(model)
            raise version_missing(model, version)
        return found

    # -- aliases ---------------------------------------------------------------------------

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
        return self._set_alias(AliasChange(model, alias, version, expect_version))

    def get_alias(self, model: str, alias: str) -> AliasRecord:
        """NotFoundError when absent."""
        check_name("model", model)
        check_name("alias", alias)
        if (found := self._read_alias(model, alias)) is None:
            self.get_model(model)
            raise alias_missing(model, alias)
        return found

    def list_aliases(self, model: str) -> list[AliasRecord]:
        """Aliases of ``model``, sorted by name."""
        check_name("model", model)
        if not (found := self._read_aliases(model)):
            self.get_model(model)
        return sorted(found, key=lambda a: a.alias)

    def delete_alias(self, model: str, alias: str, *, expect_version: int | None = None) -> None:
        """Remove an alias (ConflictError if ``expect_version`` differs, or a route uses it)."""
        self._delete_alias(AliasDeletion(model, alias, expect_version))

    # -- routes ----------------------------------------------------------------------------

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
        change = RouteChange(
            tenant, model, version, alias, canary_version, float(canary_percent), expect_revision
        )
        return self._set_route(change)

    def get_route(self, tenant: str, model: str) -> RouteRecord:
        """NotFoundError when absent."""
        check_name("tenant", tenant)
        check_name("model", model)
        if (found := self._read_route(tenant, model)) is None:
            raise route_missing(tenant, model)
        return found

    def list_routes(
        self, *, tenant: str | None = None, model: str | None = None
    ) -> list[RouteRecord]:
        """Routes filtered by tenant and/or model, sorted by (tenant, model)."""
        if tenant is not None:
            check_name("tenant", tenant)
        if model is not None:
            check_name("model", model)
        found = self._read_routes(tenant=tenant, model=model)
        return sorted(found, key=lambda r: (r.tenant, r.model))

    def delete_route(self, tenant: str, model: str, *, expect_revision: int | None = None) -> None:
        """Remove a route (NotFoundError when absent)."""
        self._delete_route(RouteDeletion(tenant, model, expect_revision))

    # -- resolution ------------------------------------------------------------------------

    def routing_state(self, tenant: str, model: str) -> RoutingState:
        """The model, the tenant's route and the alias that applies, for resolution.
        NotFoundError for an unknown model."""
        check_name("tenant", tenant)
        check_name("model", model)
        if (found := self._read_routing_state(tenant, model)) is None:
            raise model_missing(model)
        return found

    def routing_revision(self, model: str) -> int:
        """The model's routing revision (one cheap read): changes whenever anything that
        resolution depends on changes."""
        check_name("model", model)
        if (found := self._read_routing_revision(model)) is None:
            raise model_missing(model)
        return found

    def registry_revision(self) -> int:
        """One cheap read (one GetItem / one SELECT): a number that increases, never decreases,
        whenever anything resolution or serving depends on changes in any model (see the
        module's promises). 0 on an empty registry; a registry that was never initialised reads
        as :meth:`routing_revision` would (SQLite: empty, so 0; DynamoDB: NotFoundError naming
        ``mlops registry init``)."""
        return self._read_registry_revision()

    # -- router heartbeats -------------------------------------------------------------------

    def record_heartbeat(self, heartbeat: RouterHeartbeat) -> None:
        """Upsert the heartbeat of ``heartbeat.router_id`` (the whole record is replaced).
        RegistryNameError for a bad router id or in-flight key, UsageError for more than 10,000
        in-flight entries or a count that is not an integer >= 0; nothing is stored then. Does
        not move any revision."""
        check_heartbeat(heartbeat)
        self._write_heartbeat(heartbeat)

    def list_heartbeats(
        self, *, max_age_s: float | None = None, now: float | None = None
    ) -> list[RouterHeartbeat]:
        """Heartbeats sorted by router id; with ``max_age_s`` only those with
        ``now - at <= max_age_s`` (``now`` defaults to ``time.time()``)."""
        check_max_age(max_age_s)
        found = sorted(self._read_heartbeats(), key=lambda h: h.router_id)
        if max_age_s is None:
            return found
        reference = time.time() if now is None else now
        return [h for h in found if reference - h.at <= max_age_s]

    def remove_heartbeat(self, router_id: str) -> None:
        """Forget a router (it stopped). Idempotent."""
        check_name("router", router_id)
        self._delete_heartbeat(router_id)

    # -- deployments (recorded by deploy targets) --------------------------------------------

    def record_deployment(
        self, model: str, version: int, target: str, *, detail: Mapping[str, Any]
    ) -> None:
        """Note that ``target`` serves ``model`` at ``version`` (archive is refused meanwhile);
        bumps the model's routing revision."""
        self._record_deployment(DeploymentChange(model, version, target), detail)

    def remove_deployment(self, model: str, version: int, target: str) -> None:
        """Forget a deployment record; bumps the model's routing revision when there was one.
        Idempotent."""
        check_name("model", model)
        self._remove_deployment(model, version, target)

    def list_deployments(self, model: str | None = None) -> list[DeploymentRecord]:
        """Deployment records (of ``model`` only, when given), by model, version, target."""
        if model is not None:
            check_name("model", model)
        found = self._read_deployments(model)
        return sorted(found, key=lambda d: (d.model, d.version, d.target))

    def get_deployment(self, model: str, version: int, target: str) -> DeploymentRecord:
        """The record of ``model`` v``version`` on the target id ``target``. NotFoundError when
        there is none."""
        for record in self.list_deployments(model):
            if record.version == version and record.target == target:
                return record
        raise NotFoundError(
            f"{model} v{version} is not deployed on {target}",
            hint=f"mlops deploy {model}@{version}",
        )

    # -- the storage port: reads (None or empty when absent; names are checked already) ------

    @abstractmethod
    def _read_model(self, model: str) -> ModelRecord | None: ...

    @abstractmethod
    def _read_models(self) -> list[ModelRecord]: ...

    @abstractmethod
    def _read_version(self, model: str, version: int) -> VersionRecord | None: ...

    @abstractmethod
    def _read_versions(self, model: str) -> list[VersionRecord]: ...

    @abstractmethod
    def _read_versions_by_digest(self, package_digest: str) -> list[VersionRecord]: ...

    @abstractmethod
    def _read_alias(self, model: str, alias: str) -> AliasRecord | None: ...

    @abstractmethod
    def _read_aliases(self, model: str) -> list[AliasRecord]: ...

    @abstractmethod
    def _read_route(self, tenant: str, model: str) -> RouteRecord | None: ...

    @abstractmethod
    def _read_routes(self, *, tenant: str | None, model: str | None) -> list[RouteRecord]: ...

    @abstractmethod
    def _read_routing_state(self, tenant: str, model: str) -> RoutingState | None:
        """The three records of :class:`RoutingState` as one consistent read; None: no model."""

    @abstractmethod
    def _read_routing_revision(self, model: str) -> int | None: ...

    @abstractmethod
    def _read_deployments(self, model: str | None) -> list[DeploymentRecord]: ...

    @abstractmethod
    def _read_registry_revision(self) -> int:
        """0 when no change was ever counted (a missing counter)."""

    @abstractmethod
    def _read_heartbeats(self) -> list[RouterHeartbeat]: ...

    # -- the storage port: writes ------------------------------------------------------------
    # Each applies one change atomically: the change's ``check`` runs on the model as read in
    # the same atomic context (or, for a conditional write that was refused, as read after it;
    # when that check passes, the backend raises ``change.lost_race()``). A write that changes
    # something (not a repeated registration, nor archiving an archived version) adds one to the
    # registry revision in that same atomic context.

    @abstractmethod
    def _register(
        self,
        model: str,
        new: NewVersion,
        *,
        new_version: bool,
        alias: str | None,
        model_description: str,
    ) -> Registered:
        """Allocate the next number from the model's counter and write the version (and the
        alias) in one transaction; an existing registration of the package unless
        ``new_version``."""

    @abstractmethod
    def _update_model(self, model: str, update: ModelUpdate) -> ModelRecord | None:
        """Apply ``update`` and bump the routing revision; None when there is no such model."""

    @abstractmethod
    def _archive(self, change: Archive) -> VersionRecord: ...

    @abstractmethod
    def _set_metrics(
        self, model: str, version: int, metrics: VersionMetrics
    ) -> VersionRecord | None:
        """None when there is no such version."""

    @abstractmethod
    def _set_alias(self, change: AliasChange) -> AliasRecord: ...

    @abstractmethod
    def _delete_alias(self, change: AliasDeletion) -> None: ...

    @abstractmethod
    def _set_route(self, change: RouteChange) -> RouteRecord: ...

    @abstractmethod
    def _delete_route(self, change: RouteDeletion) -> None: ...

    @abstractmethod
    def _record_deployment(self, change: DeploymentChange, detail: Mapping[str, Any]) -> None: ...

    @abstractmethod
    def _remove_deployment(self, model: str, version: int, target: str) -> None:
        """Idempotent; bumps the revisions only when a record was removed."""

    # Heartbeats: checked already; they move no revision.

    @abstractmethod
    def _write_heartbeat(self, heartbeat: RouterHeartbeat) -> None:
        """Replace the router's heartbeat, atomically (a reader sees the old or the new one)."""

    @abstractmethod
    def _delete_heartbeat(self, router_id: str) -> None:
        """Idempotent."""


__all__ = [
    "DEFAULT_ALIAS",
    "NAME_RULES",
    "AliasRecord",
    "ConflictError",
    "DeploymentRecord",
    "Lease",
    "LeaseHeldError",
    "LeaseLostError",
    "ModelRecord",
    "NewVersion",
    "NotFoundError",
    "PlacementRecord",
    "PrivateModelError",
    "Registered",
    "Registry",
    "RegistryNameError",
    "RegistryUnavailableError",
    "RouteRecord",
    "RouterHeartbeat",
    "RoutingState",
    "VersionRecord",
    "check_name",
    "check_new_version",
    "check_route_args",
    "check_route_visibility",
]
