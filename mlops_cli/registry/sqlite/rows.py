"""The SQLite registry's rows read as records: one conversion per table, and the
:class:`~mlops_cli.registry.changes.ModelView` a change's check reads inside its transaction.

JSON columns (``private_to``, ``tags``, ``source``, ``lineage``) are decoded here and nowhere
else. Nothing here writes.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from typing import Any

from mlops_cli.registry.changes import ModelView
from mlops_cli.registry.records import AliasRecord, ModelRecord, RouteRecord, VersionRecord

Matching = tuple[str, tuple[Any, ...]] | None  # an SQL condition and its arguments


def now() -> str:
    """The timestamp stored in ``created_at`` and ``updated_at`` columns."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def model_record(row: sqlite3.Row) -> ModelRecord:
    return ModelRecord(
        name=row["name"],
        description=row["description"],
        default_alias=row["default_alias"],
        private_to=tuple(json.loads(row["private_to"])),
        tags=json.loads(row["tags"]),
        created_at=row["created_at"],
        latest_version=row["next_version"],
        routing_revision=row["routing_revision"],
    )


def version_record(row: sqlite3.Row) -> VersionRecord:
    return VersionRecord(
        model=row["model"],
        version=row["version"],
        package_digest=row["package_digest"],
        package_uri=row["package_uri"],
        code_digest=row["code_digest"],
        source=json.loads(row["source"]),
        lineage=json.loads(row["lineage"]),
        tags=json.loads(row["tags"]),
        description=row["description"],
        status=row["status"],
        created_at=row["created_at"],
        memory_mb=row["memory_mb"],
        latency_ms=row["latency_ms"],
        gpu_memory_mb=row["gpu_memory_mb"],
    )


def alias_record(row: sqlite3.Row) -> AliasRecord:
    return AliasRecord(
        row["model"], row["alias"], row["version"], row["revision"], row["updated_at"]
    )


def route_record(row: sqlite3.Row) -> RouteRecord:
    return RouteRecord(
        tenant=row["tenant"],
        model=row["model"],
        version=row["version"],
        alias=row["alias"],
        canary_version=row["canary_version"],
        canary_percent=row["canary_percent"],
        revision=row["revision"],
        updated_at=row["updated_at"],
    )


def read_view(
    db: sqlite3.Connection,
    model: str,
    *,
    versions: tuple[int | None, ...] = (),
    aliases: Matching = None,
    routes: Matching = None,
    deployments_of: int | None = None,
) -> ModelView:
    """The model as a change's check needs it: the ``versions`` named, its aliases and routes
    that match ``(SQL condition, arguments)``, and the deployments of ``deployments_of``."""
    row = db.execute("SELECT * FROM models WHERE name = ?", (model,)).fetchone()
    if row is None:
        return ModelView(model=None)
    found_versions = {}
    for number in {v for v in versions if v is not None}:
        found = db.execute(
            "SELECT * FROM versions WHERE model = ? AND version = ?", (model, number)
        ).fetchone()
        if found is not None:
            found_versions[number] = version_record(found)
    found_aliases, found_routes = {}, {}
    if aliases is not None:
        sql = f"SELECT * FROM aliases WHERE model = ? AND ({aliases[0]})"
        rows = db.execute(sql, (model, *aliases[1]))
        found_aliases = {r["alias"]: alias_record(r) for r in rows}
    if routes is not None:
        sql = f"SELECT * FROM routes WHERE model = ? AND ({routes[0]})"
        found_routes = {r["tenant"]: route_record(r) for r in db.execute(sql, (model, *routes[1]))}
    found_deployments: list[tuple[int, str]] = []
    if deployments_of is not None:
        sql = "SELECT version, target FROM deployments WHERE model = ? AND version = ?"
        found_deployments = [
            (r["version"], r["target"]) for r in db.execute(sql, (model, deployments_of))
        ]
    return ModelView(
        model_record(row), found_versions, found_aliases, found_routes, found_deployments
    )
