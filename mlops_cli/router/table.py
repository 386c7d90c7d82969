"""The router's routing table: every model's routes, aliases and servers, held in memory.

A :class:`RoutingTable` is an immutable snapshot of the registry at one registry revision. It
answers, at the speed of a dictionary lookup and without I/O, the two questions of the request
path: which version a tenant gets for a stable model name (:meth:`RoutingTable.resolve`), and
which servers serve that version (:meth:`ModelEntry.upstreams`).

Resolution gives the answers :func:`mlops_cli.registry.routing.resolve_state` gives (the
conformance test ``tests/unit/test_router_table.py`` compares them): visibility first (a private
model is unknown to every other tenant), then the tenant's route (a version, or an alias; a
canary side chosen by a stable hash of tenant and request key), else the model's default alias.
The answer of a route without a canary, and of the default alias, is computed once when the
table is built; a request only looks it up.

:func:`build_entry` makes one model's entry from its records; :mod:`mlops_cli.router.refresh`
rebuilds only the models whose routing revision changed, and shares the others with the previous
table.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from mlops_cli.errors import NotFoundError
from mlops_cli.registry.records import AliasRecord, DeploymentRecord, ModelRecord, RouteRecord
from mlops_cli.registry.routing import CANARY_BUCKETS, canary_bucket, model_not_found


@dataclass(frozen=True, slots=True)
class Choice:
    """A version, and why: the tenant's ``route``, the model's default ``alias``, or the
    ``canary`` side of a route. Shared by every tenant that gets the same answer."""

    version: int
    source: Literal["route", "alias", "canary"]


@dataclass(frozen=True, slots=True)
class TritonUpstream:
    """A Triton server that loaded the version, and the version's name there."""

    url: str  # http://host:port
    name: str  # the model's name on that server (answer-v2)
    memory_mb: float | None = None  # what the version takes loaded (its deployment record)
    capacity_mb: float | None = None  # a dynamic server's memory for models; None: static

    @property
    def key(self) -> str:
        return self.url


@dataclass(frozen=True, slots=True)
class SageMakerUpstream:
    """A multi-model endpoint (SageMaker, or mme-local at ``runtime_url``) and the version's
    ``TargetModel`` on it."""

    endpoint: str
    target_model: str
    region: str | None = None
    runtime_url: str | None = None

    @property
    def key(self) -> str:
        return f"sagemaker:{self.runtime_url or self.region}:{self.endpoint}"


@dataclass(frozen=True, slots=True)
class ComponentUpstream:
    """An endpoint's inference component serving the version (SageMaker, or mme-local's
    inference-components mode at ``runtime_url``), called with ``InferenceComponentName``; it
    can stream (``InvokeEndpointWithResponseStream``)."""

    endpoint: str
    component: str
    region: str | None = None
    runtime_url: str | None = None

    @property
    def key(self) -> str:
        return f"sagemaker:{self.runtime_url or self.region}:{self.endpoint}"


Upstream = TritonUpstream | SageMakerUpstream | ComponentUpstream


@dataclass(frozen=True, slots=True)
class _Route:
    choice: Choice | None  # None: the route names an alias that does not exist
    canary: Choice | None
    threshold: int  # canary buckets below this go to the canary
    alias: str | None


@dataclass(frozen=True)
class ModelEntry:
    """One model as the router holds it."""

    name: str
    routing_revision: int
    private_to: frozenset[str] | None  # None: public
    default: Choice | None  # the default alias's version; None when the alias is absent
    default_alias: str
    routes: Mapping[str, _Route]
    serving: Mapping[int, tuple[Upstream, ...]]  # version -> where it is served

    def upstreams(self, version: int) -> tuple[Upstream, ...]:
        return self.serving.get(version, ())


class NoRoute(NotFoundError):
    """The model exists and the tenant may use it, but nothing names a version for it."""


@dataclass(frozen=True)
class RoutingTable:
    """Every model, at registry revision ``revision``."""

    revision: int
    models: Mapping[str, ModelEntry]

    def resolve(
        self, tenant: str, model: str, request_key: str | None = None
    ) -> tuple[ModelEntry, Choice]:
        """The version ``tenant`` gets for ``model``. NotFoundError (with the words an unknown
        model gets) for a model unknown or private to other tenants; :class:`NoRoute` when no
        route or default alias names a version."""
        entry = self.models.get(model)
        if entry is None or (entry.private_to is not None and tenant not in entry.private_to):
            raise model_not_found(model)
        route = entry.routes.get(tenant)
        if route is None:
            if entry.default is None:
                raise NoRoute(
                    f"tenant {tenant} has no route to {model}, and the model has no "
                    f"@{entry.default_alias} alias"
                )
            return entry, entry.default
        if (
            route.canary is not None
            and request_key is not None
            and canary_bucket(tenant, request_key) < route.threshold
        ):
            return entry, route.canary
        if route.choice is None:
            raise NoRoute(
                f"route of {tenant} to {model} names alias @{route.alias}, which does not exist"
            )
        return entry, route.choice


EMPTY = RoutingTable(revision=-1, models={})


def build_entry(
    model: ModelRecord,
    aliases: Iterable[AliasRecord],
    routes: Iterable[RouteRecord],
    serving: Mapping[int, tuple[Upstream, ...]],
) -> ModelEntry:
    """One model's entry from its records (``serving``: from :func:`upstreams_of`)."""
    by_alias = {alias.alias: alias.version for alias in aliases}
    shared: dict[tuple[int, str], Choice] = {}

    def choice(version: int, source: Literal["route", "alias", "canary"]) -> Choice:
        return shared.setdefault((version, source), Choice(version, source))

    default_version = by_alias.get(model.default_alias)
    table: dict[str, _Route] = {}
    for route in routes:
        if route.version is not None:
            main: Choice | None = choice(route.version, "route")
        else:
            named = by_alias.get(route.alias or "")
            main = None if named is None else choice(named, "route")
        canary = None
        if route.canary_version is not None:
            canary = choice(route.canary_version, "canary")
        threshold = round(route.canary_percent * CANARY_BUCKETS / 100)
        table[route.tenant] = _Route(main, canary, threshold, route.alias)
    return ModelEntry(
        name=model.name,
        routing_revision=model.routing_revision,
        private_to=frozenset(model.private_to) if model.private_to else None,
        default=None if default_version is None else choice(default_version, "alias"),
        default_alias=model.default_alias,
        routes=table,
        serving=serving,
    )


def upstreams_of(record: DeploymentRecord) -> tuple[Upstream, ...]:
    """Where one deployment record says its version is served, parsed by the target that wrote
    it (the local target's detail names the server running now). Empty for a record this router
    cannot call."""
    from mlops_cli.deploy.kinds import target_class
    from mlops_cli.deploy.local import LocalDetail
    from mlops_cli.deploy.sagemaker_runtime import SageMakerDetail
    from mlops_cli.deploy.triton import TritonDetail

    try:
        detail = target_class(record.kind).parse_detail(record)
        if isinstance(detail, LocalDetail):  # the server running now in its workspace
            server = detail.serving(record.model, record.version)
            return (TritonUpstream(server.url.rstrip("/"), detail.triton_name),)
    except Exception:  # an unknown kind, a detail it cannot read, a local server not running
        return ()
    if isinstance(detail, TritonDetail):
        return tuple(
            TritonUpstream(
                server.url.rstrip("/"), detail.triton_name, detail.memory_mb, server.capacity_mb
            )
            for server in detail.servers
            if server.url
        )
    if isinstance(detail, SageMakerDetail) and detail.endpoint and detail.inference_component:
        return (
            ComponentUpstream(
                detail.endpoint, detail.inference_component, detail.region, detail.runtime_url
            ),
        )
    if isinstance(detail, SageMakerDetail) and detail.endpoint and detail.target_model:
        return (
            SageMakerUpstream(
                detail.endpoint, detail.target_model, detail.region, detail.runtime_url
            ),
        )
    return ()


def serving_of(records: Iterable[DeploymentRecord]) -> dict[int, tuple[Upstream, ...]]:
    """version -> every upstream of every record of it (in record order, without repeats)."""
    serving: dict[int, list[Upstream]] = {}
    for record in records:
        found = serving.setdefault(record.version, [])
        found.extend(u for u in upstreams_of(record) if u not in found)
    return {version: tuple(found) for version, found in serving.items() if found}
