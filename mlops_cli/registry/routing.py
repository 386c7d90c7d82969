"""Tenant routing: which version a name means, and a cached Router for hot paths.

:func:`resolve_reference` is the one place that turns ``MODEL``, ``MODEL@VERSION`` or
``MODEL@ALIAS`` into a version; invoke, deploy, profile and perftest all call it.

- For a tenant, a bare name follows the precedence: the tenant's route (a version, or an alias
  resolved to its version), else the model's default alias. A route with a canary sends
  ``canary_percent`` of requests to the canary version, chosen by a stable hash of (tenant, request
  key), so one request key always lands on the same side.
- Visibility is checked first, whatever the reference names: a model private to some tenants
  resolves for no other tenant, also when a version number or an alias is named. To them it does
  not exist: the error is the one an unknown model gives, word for word.
- Without a tenant (an operator deploying or profiling) every model is visible, and a bare name
  means the default alias, else the latest version.

:data:`ROUTER_CACHE_TTL_S` is how long a :class:`Router` may answer from its cache; a deploy never
drains an old version for less than that (``deploy.engine``), so no cached answer outlives it.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any, Literal

from mlops_cli.errors import NotFoundError, UsageError
from mlops_cli.registry.base import ModelRecord, Registry, RoutingState, check_name
from mlops_cli.registry.rules import model_missing

CANARY_BUCKETS = 10_000
ROUTER_CACHE_TTL_S = 2.0  # seconds a Router answers from its cache; the shortest deploy drain

Source = Literal["route", "alias", "canary", "explicit", "latest"]


@dataclass(frozen=True)
class Resolution:
    """The version a name means. ``source``: the tenant's ``route``, the default ``alias``, the
    ``canary`` side of a route, a version or alias named ``explicit``ly in the reference, or the
    ``latest`` version (operator view of a model with no default alias). ``tenant`` is None for
    the operator view."""

    tenant: str | None
    model: str
    version: int
    source: Source
    alias: str | None = None
    routing_revision: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def canary_bucket(tenant: str, request_key: str) -> int:
    """A stable bucket in [0, 10000) for (tenant, request key)."""
    digest = hashlib.blake2b(f"{tenant}\0{request_key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % CANARY_BUCKETS


def model_not_found(model: str) -> NotFoundError:
    """The error for a model that does not exist, or is private to other tenants (the same
    words for both, so that a tenant cannot tell them apart)."""
    return model_missing(model)


def parse_model_ref(ref: str) -> tuple[str, str | None]:
    """``MODEL``, ``MODEL@VERSION`` or ``MODEL@ALIAS`` -> (model, selector or None)."""
    model, _, selector = ref.partition("@")
    check_name("model", model)
    if "@" in ref and not selector:
        raise UsageError(
            f"{ref!r} names no version or alias after @", hint="MODEL@3 or MODEL@production"
        )
    return model, selector or None


def resolve_reference(
    registry: Registry,
    ref: str,
    *,
    tenant: str | None,
    request_key: str | None = None,
) -> Resolution:
    """The version ``ref`` (``MODEL``, ``MODEL@VERSION``, ``MODEL@ALIAS``) means for ``tenant``
    (None: an operator, who sees every model). A model ``tenant`` may not see raises the same
    NotFoundError as an unknown model, whatever the reference names."""
    model, selector = parse_model_ref(ref)
    if tenant is not None:
        check_name("tenant", tenant)
        if selector is None:
            return resolve(registry, tenant, model, request_key)
        record = _visible_model(registry, model, tenant)
    else:
        record = registry.get_model(model)
    revision = record.routing_revision
    if selector is not None and selector.isdigit():
        return Resolution(tenant, model, int(selector), "explicit", routing_revision=revision)
    if selector is not None:
        alias = registry.get_alias(model, selector)
        return Resolution(
            tenant, model, alias.version, "explicit", alias=alias.alias, routing_revision=revision
        )
    try:  # operator view of a bare name: the default alias, else the latest version
        alias = registry.get_alias(model, record.default_alias)
    except NotFoundError:
        if not record.latest_version:
            raise NotFoundError(
                f"model {model} has no versions", hint=f"mlops register FOLDER --model {model}"
            ) from None
        return Resolution(tenant, model, record.latest_version, "latest", routing_revision=revision)
    return Resolution(
        tenant, model, alias.version, "alias", alias=alias.alias, routing_revision=revision
    )


def _visible_model(registry: Registry, model: str, tenant: str) -> ModelRecord:
    try:
        record = registry.get_model(model)
    except NotFoundError:
        raise model_not_found(model) from None
    if not record.visible_to(tenant):
        raise model_not_found(model)
    return record


def resolve_state(state: RoutingState, tenant: str, request_key: str | None = None) -> Resolution:
    """Apply the precedence rules to one routing state (pure: no I/O)."""
    model = state.model
    if not model.visible_to(tenant):
        raise model_not_found(model.name)  # private: say nothing more
    revision = model.routing_revision
    route = state.route
    if route is not None:
        if route.canary_version is not None and request_key is not None:
            threshold = round(route.canary_percent * CANARY_BUCKETS / 100)
            if canary_bucket(tenant, request_key) < threshold:
                return Resolution(
                    tenant, model.name, route.canary_version, "canary", routing_revision=revision
                )
        if route.version is not None:
            return Resolution(tenant, model.name, route.version, "route", routing_revision=revision)
        if state.alias is None:
            raise NotFoundError(
                f"route of {tenant} to {model.name} names alias @{route.alias}, which does not exist"
            )
        return Resolution(
            tenant,
            model.name,
            state.alias.version,
            "route",
            alias=state.alias.alias,
            routing_revision=revision,
        )
    if state.alias is None:
        raise NotFoundError(
            f"tenant {tenant} has no route to {model.name}, and the model has no @{model.default_alias} alias",
            hint=f"mlops route set {tenant} {model.name} VERSION, or mlops alias set {model.name} {model.default_alias} VERSION",
        )
    return Resolution(
        tenant,
        model.name,
        state.alias.version,
        "alias",
        alias=state.alias.alias,
        routing_revision=revision,
    )


def resolve(
    registry: Registry, tenant: str, model: str, request_key: str | None = None
) -> Resolution:
    """Resolve a bare model name for ``tenant`` straight from the registry (no cache)."""
    return resolve_state(_routing_state(registry, tenant, model), tenant, request_key)


def _routing_state(registry: Registry, tenant: str, model: str) -> RoutingState:
    check_name("tenant", tenant)
    check_name("model", model)
    try:
        return registry.routing_state(tenant, model)
    except NotFoundError:  # the contract's only NotFoundError here: an unknown model
        raise model_not_found(model) from None


class Router:
    """Resolution with an in-process cache.

    A cached routing state is used as is for ``ttl`` seconds; after that one cheap read of the
    model's routing revision decides whether it is still current (then it is kept for another
    ``ttl``) or must be read again. Thread-safe.
    """

    def __init__(self, registry: Registry, *, ttl: float = ROUTER_CACHE_TTL_S) -> None:
        self.registry = registry
        self.ttl = ttl
        self._cache: dict[tuple[str, str], tuple[RoutingState, float]] = {}
        self._lock = threading.Lock()

    def resolve(self, tenant: str, model: str, request_key: str | None = None) -> Resolution:
        key = (tenant, model)
        entry = self._cache.get(key)
        now = time.monotonic()
        if entry is not None and entry[1] > now:
            return resolve_state(entry[0], tenant, request_key)
        state = self._refresh(key, entry, now)
        return resolve_state(state, tenant, request_key)

    def _refresh(
        self, key: tuple[str, str], entry: tuple[RoutingState, float] | None, now: float
    ) -> RoutingState:
        tenant, model = key
        if (
            entry is not None
            and self.registry.routing_revision(model) == entry[0].model.routing_revision
        ):
            state = entry[0]
        else:
            state = _routing_state(self.registry, tenant, model)
        with self._lock:
            self._cache[key] = (state, now + self.ttl)
        return state

    def invalidate(self, model: str | None = None) -> None:
        """Drop cached states (of one model, or all)."""
        with self._lock:
            for key in [k for k in self._cache if model is None or k[1] == model]:
                del self._cache[key]
