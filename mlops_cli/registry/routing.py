"""Tenant routing: which version a tenant gets, and a cached Router for hot paths.

Precedence: the tenant's route (a version, or an alias resolved to its version), else the model's
default alias. A route with a canary sends ``canary_percent`` of requests to the canary version,
chosen by a stable hash of (tenant, request key), so one request key always lands on the same
side. A model private to some tenants resolves for no other tenant: to them it does not exist.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any, Literal

from mlops_cli.errors import NotFoundError
from mlops_cli.registry.base import Registry, RoutingState, check_name

CANARY_BUCKETS = 10_000


@dataclass(frozen=True)
class Resolution:
    tenant: str
    model: str
    version: int
    source: Literal["route", "alias", "canary"]
    alias: str | None = None
    routing_revision: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def canary_bucket(tenant: str, request_key: str) -> int:
    """A stable bucket in [0, 10000) for (tenant, request key)."""
    digest = hashlib.blake2b(f"{tenant}\0{request_key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % CANARY_BUCKETS


def resolve_state(state: RoutingState, tenant: str, request_key: str | None = None) -> Resolution:
    """Apply the precedence rules to one routing state (pure: no I/O)."""
    model = state.model
    if not model.visible_to(tenant):
        raise NotFoundError(f"model {model.name} does not exist")  # private: say nothing more
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
    """Resolve straight from the registry (no cache)."""
    check_name("tenant", tenant)
    check_name("model", model)
    return resolve_state(registry.routing_state(tenant, model), tenant, request_key)


class Router:
    """Resolution with an in-process cache.

    A cached routing state is used as is for ``ttl`` seconds; after that one cheap read of the
    model's routing revision decides whether it is still current (then it is kept for another
    ``ttl``) or must be read again. Thread-safe.
    """

    def __init__(self, registry: Registry, *, ttl: float = 2.0) -> None:
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
            check_name("tenant", tenant)
            check_name("model", model)
            state = self.registry.routing_state(tenant, model)
        with self._lock:
            self._cache[key] = (state, now + self.ttl)
        return state

    def invalidate(self, model: str | None = None) -> None:
        """Drop cached states (of one model, or all)."""
        with self._lock:
            for key in [k for k in self._cache if model is None or k[1] == model]:
                del self._cache[key]
