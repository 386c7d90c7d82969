"""Library calls for the router service: serve it, make API keys, see the live routers."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_cli.errors import UsageError

if TYPE_CHECKING:
    from mlops_cli.config import Settings
    from mlops_cli.registry.records import RouterHeartbeat

MAX_WORKERS = 64


def serve_router(
    *,
    settings: Settings,
    host: str = "127.0.0.1",
    port: int = 8700,
    workers: int = 1,
    refresh_s: float = 0.25,
    tenant_header: str = "X-Tenant-Id",
    trust_tenant_header: bool = False,
    keys_file: Path | None = None,
    max_body_bytes: int = 6 * 1024 * 1024,
    upstream_timeout_s: float = 60.0,
    idle_timeout_s: float = 60.0,
    tenant_label: str = "top:1000",
) -> int:
    """Run the router until it is stopped (SIGTERM, SIGINT); its exit code. Everything is
    checked before a worker starts: options, the keys file, the registry."""
    from mlops_cli.registry import open_registry
    from mlops_cli.router.auth import read_keys
    from mlops_cli.router.metrics import TenantLabelMode
    from mlops_cli.router.serve import RouterOptions, serve

    if not 1 <= workers <= MAX_WORKERS:
        raise UsageError(f"--workers must be between 1 and {MAX_WORKERS}")
    if not 0 <= port <= 65535:
        raise UsageError("--port must be between 0 and 65535")
    for name, value, low, high in (
        ("--refresh", refresh_s, 0.01, 60.0),
        ("--upstream-timeout", upstream_timeout_s, 0.1, 3600.0),
        ("--idle-timeout", idle_timeout_s, 1.0, 3600.0),
    ):
        if not (math.isfinite(value) and low <= value <= high):
            raise UsageError(f"{name} must be between {low:g} and {high:g} seconds")
    if not 1 <= max_body_bytes <= 1024 * 1024 * 1024:
        raise UsageError("--max-body must be between 1 byte and 1 GiB")
    if not tenant_header or not tenant_header.replace("-", "").isalnum():
        raise UsageError(f"--tenant-header {tenant_header!r} is not a header name")
    TenantLabelMode.parse(tenant_label)
    if keys_file is None and not trust_tenant_header:
        raise UsageError(
            "the router needs a way to know the tenant: --keys FILE (API keys), or "
            "--trust-tenant-header behind a gateway that authenticates callers",
            hint="mlops router key create TENANT --keys FILE",
        )
    if keys_file is not None:
        read_keys(keys_file)
    registry = open_registry(settings.registry)
    registry.registry_revision()  # reachable (a DynamoDB table that is not there: NotFoundError)
    if not registry.exists():
        raise UsageError(
            f"registry {settings.registry} does not exist",
            hint="check --registry, or create it with `mlops registry init`",
        )
    options = RouterOptions(
        registry=settings.registry,
        host=host,
        port=port,
        workers=workers,
        refresh_s=refresh_s,
        tenant_header=tenant_header,
        trust_tenant_header=trust_tenant_header,
        keys_file=str(keys_file) if keys_file else None,
        max_body_bytes=max_body_bytes,
        upstream_timeout_s=upstream_timeout_s,
        idle_timeout_s=idle_timeout_s,
        tenant_label=tenant_label,
    )
    return serve(options)


@dataclass(frozen=True)
class NewKey:
    tenant: str
    key: str
    keys_file: str

    def to_dict(self) -> dict[str, Any]:
        return {"tenant": self.tenant, "key": self.key, "keys_file": self.keys_file}


def create_key(*, tenant: str, keys_file: Path) -> NewKey:
    """A new API key for ``tenant``; only its hash is written to ``keys_file``."""
    from mlops_cli.router.auth import create_key as create

    return NewKey(tenant, create(keys_file, tenant), str(keys_file))


@dataclass(frozen=True)
class LiveRouters:
    routers: list[RouterHeartbeat]
    registry_revision: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "registry_revision": self.registry_revision,
            "routers": [router.to_dict() for router in self.routers],
        }


def live_routers(*, settings: Settings) -> LiveRouters:
    """The routers that heartbeat into the registry now, and the revision they should reach."""
    from mlops_cli.deploy.drain import STALE_AFTER_S
    from mlops_cli.registry import open_registry

    registry = open_registry(settings.registry)
    return LiveRouters(
        registry.list_heartbeats(max_age_s=STALE_AFTER_S), registry.registry_revision()
    )
