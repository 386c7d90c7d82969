"""Library calls for what the registry records: models, versions, aliases and tenant routes.

Thin on purpose: the registry contract (:mod:`mlops_cli.registry.base`) owns the rules. These
calls open the configured registry, so that a caller (the command line, a script) needs only its
:class:`~mlops_cli.config.Settings`, and they return the registry's own frozen records.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from mlops_cli.config import Settings
    from mlops_cli.registry import Registry
    from mlops_cli.registry.records import AliasRecord, ModelRecord, RouteRecord, VersionRecord
    from mlops_cli.registry.routing import Resolution


def open_configured_registry(settings: Settings) -> Registry:
    """The registry ``settings`` name (``sqlite:///path`` or ``dynamodb://table``)."""
    from mlops_cli.registry import open_registry

    return open_registry(settings.registry)


@dataclass(frozen=True)
class RegistrySetup:
    registry: str  # its URI
    created: bool  # False: it was set up already

    def to_dict(self) -> dict[str, Any]:
        return {"registry": self.registry, "created": self.created}


def init_registry(*, settings: Settings) -> RegistrySetup:
    """Create the registry's schema or DynamoDB table if needed (idempotent)."""
    backend = open_configured_registry(settings)
    created = backend.init()
    return RegistrySetup(backend.uri, created)


def list_models(*, settings: Settings) -> list[ModelRecord]:
    """Every registered model, by name."""
    return open_configured_registry(settings).list_models()


@dataclass(frozen=True)
class ModelOverview:
    """A model with its aliases and tenant routes."""

    model: ModelRecord
    aliases: list[AliasRecord]
    routes: list[RouteRecord]

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.model.to_dict(),
            "aliases": [a.to_dict() for a in self.aliases],
            "routes": [r.to_dict() for r in self.routes],
        }


def show_model(*, model: str, settings: Settings) -> ModelOverview:
    """A model, its aliases and the routes to it."""
    backend = open_configured_registry(settings)
    record = backend.get_model(model)
    return ModelOverview(record, backend.list_aliases(model), backend.list_routes(model=model))


def list_versions(*, model: str, settings: Settings) -> list[VersionRecord]:
    """Every version of a model, with its package and lineage."""
    return open_configured_registry(settings).list_versions(model)


def archive_version(*, model: str, version: int, settings: Settings) -> VersionRecord:
    """Archive a version (refused while an alias, route or deployment uses it)."""
    return open_configured_registry(settings).archive_version(model, version)


def update_model(
    *,
    model: str,
    settings: Settings,
    description: str | None = None,
    default_alias: str | None = None,
    private_to: tuple[str, ...] | None = None,
) -> ModelRecord:
    """Change a model's description, default alias or visibility (``private_to=()``: public;
    None leaves each as it is)."""
    return open_configured_registry(settings).update_model(
        model, description=description, default_alias=default_alias, private_to=private_to
    )


def set_alias(
    *,
    model: str,
    alias: str,
    version: int,
    settings: Settings,
    expect_version: int | Literal["absent"] | None = None,
) -> AliasRecord:
    """Point an alias at a version; with ``expect_version``, only if it points there now
    (``"absent"``: only if it does not exist)."""
    return open_configured_registry(settings).set_alias(
        model, alias, version, expect_version=expect_version
    )


def get_alias(*, model: str, alias: str, settings: Settings) -> AliasRecord:
    """The version an alias points at."""
    return open_configured_registry(settings).get_alias(model, alias)


def list_aliases(*, model: str, settings: Settings) -> list[AliasRecord]:
    """Every alias of a model."""
    return open_configured_registry(settings).list_aliases(model)


def delete_alias(
    *, model: str, alias: str, settings: Settings, expect_version: int | None = None
) -> None:
    """Remove an alias (refused while a route uses it)."""
    open_configured_registry(settings).delete_alias(model, alias, expect_version=expect_version)


def set_route(
    *,
    tenant: str,
    model: str,
    settings: Settings,
    version: int | None = None,
    alias: str | None = None,
    canary_version: int | None = None,
    canary_percent: float = 0.0,
    expect_revision: int | None = None,
) -> RouteRecord:
    """Route a tenant to a version or an alias of a model, optionally with a canary split."""
    return open_configured_registry(settings).set_route(
        tenant,
        model,
        version=version,
        alias=alias,
        canary_version=canary_version,
        canary_percent=canary_percent,
        expect_revision=expect_revision,
    )


def get_route(*, tenant: str, model: str, settings: Settings) -> RouteRecord:
    """A tenant's route to a model."""
    return open_configured_registry(settings).get_route(tenant, model)


def list_routes(
    *, settings: Settings, tenant: str | None = None, model: str | None = None
) -> list[RouteRecord]:
    """Routes, by tenant and model, optionally only one tenant's or only to one model."""
    return open_configured_registry(settings).list_routes(tenant=tenant, model=model)


def delete_route(
    *, tenant: str, model: str, settings: Settings, expect_revision: int | None = None
) -> None:
    """Remove a tenant's route (the tenant then gets the model's default alias)."""
    open_configured_registry(settings).delete_route(tenant, model, expect_revision=expect_revision)


def resolve_route(
    *, tenant: str, model: str, settings: Settings, request_key: str | None = None
) -> Resolution:
    """Which version ``tenant``'s request for ``model`` gets, and why (route, alias, canary)."""
    from mlops_cli.registry.routing import resolve

    return resolve(open_configured_registry(settings), tenant, model, request_key)
