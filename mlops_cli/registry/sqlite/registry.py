"""The SQLite registry's storage port (:class:`~mlops_cli.registry.base.Registry`) in SQL.

The registry's rules live in :mod:`mlops_cli.registry.base` and :mod:`mlops_cli.registry.changes`;
this module only reads and writes rows. Each write is one transaction of
:meth:`SQLiteDatabase.write <mlops_cli.registry.sqlite.database.SQLiteDatabase.write>`, and a
change's check runs on a :func:`~mlops_cli.registry.sqlite.rows.read_view` taken inside it, so the
check and the write see the same rows. Every transaction that changes something also adds one
to the registry revision (:func:`~mlops_cli.registry.sqlite.heartbeats.revise`), so the
revision and the change commit together; the heartbeats live in
:mod:`~mlops_cli.registry.sqlite.heartbeats`, leases and placements in
:mod:`~mlops_cli.registry.sqlite.coordination`.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from mlops_cli.errors import UsageError
from mlops_cli.registry.base import Registry
from mlops_cli.registry.changes import (
    AliasChange,
    AliasDeletion,
    Archive,
    DeploymentChange,
    RouteChange,
    RouteDeletion,
)
from mlops_cli.registry.records import (
    DEFAULT_ALIAS,
    AliasRecord,
    DeploymentRecord,
    ModelRecord,
    NewVersion,
    Registered,
    RouteRecord,
    RoutingState,
    VersionRecord,
)
from mlops_cli.registry.rules import ModelUpdate, VersionMetrics
from mlops_cli.registry.sqlite.coordination import SQLiteCoordination
from mlops_cli.registry.sqlite.database import SQLiteDatabase
from mlops_cli.registry.sqlite.heartbeats import SQLiteHeartbeats, revise
from mlops_cli.registry.sqlite.rows import (
    alias_record,
    model_record,
    now,
    read_view,
    route_record,
    version_record,
)


class SQLiteRegistry(SQLiteHeartbeats, SQLiteCoordination, Registry):
    """Thread-safe (one connection per thread)."""

    def __init__(self, path: Path, *, busy_timeout_ms: int = 30_000) -> None:
        self.path = path
        self.uri = f"sqlite:///{path}"
        self.busy_timeout_ms = busy_timeout_ms
        self._database = SQLiteDatabase(path, uri=self.uri, busy_timeout_ms=busy_timeout_ms)

    @classmethod
    def from_uri(cls, uri: str) -> SQLiteRegistry:
        parsed = urlparse(uri)
        if parsed.netloc or not parsed.path:
            raise UsageError(
                f"bad SQLite registry URI {uri!r}", hint="use sqlite:///absolute/path.db"
            )
        return cls(Path(unquote(parsed.path)))

    def exists(self) -> bool:
        return self.path.is_file()

    def init(self) -> bool:
        existed = self.path.exists()
        self._database.connection()
        return not existed

    # -- the storage port: reads ---------------------------------------------------------------

    def _read_model(self, model: str) -> ModelRecord | None:
        rows = self._database.read("SELECT * FROM models WHERE name = ?", model)
        return model_record(rows[0]) if rows else None

    def _read_models(self) -> list[ModelRecord]:
        return [model_record(row) for row in self._database.read("SELECT * FROM models")]

    def _read_version(self, model: str, version: int) -> VersionRecord | None:
        sql = "SELECT * FROM versions WHERE model = ? AND version = ?"
        rows = self._database.read(sql, model, version)
        return version_record(rows[0]) if rows else None

    def _read_versions(self, model: str) -> list[VersionRecord]:
        return [
            version_record(r)
            for r in self._database.read("SELECT * FROM versions WHERE model = ?", model)
        ]

    def _read_versions_by_digest(self, package_digest: str) -> list[VersionRecord]:
        rows = self._database.read(
            "SELECT * FROM versions WHERE package_digest = ?", package_digest
        )
        return [version_record(r) for r in rows]

    def _read_alias(self, model: str, alias: str) -> AliasRecord | None:
        rows = self._database.read(
            "SELECT * FROM aliases WHERE model = ? AND alias = ?", model, alias
        )
        return alias_record(rows[0]) if rows else None

    def _read_aliases(self, model: str) -> list[AliasRecord]:
        return [
            alias_record(r)
            for r in self._database.read("SELECT * FROM aliases WHERE model = ?", model)
        ]

    def _read_route(self, tenant: str, model: str) -> RouteRecord | None:
        rows = self._database.read(
            "SELECT * FROM routes WHERE tenant = ? AND model = ?", tenant, model
        )
        return route_record(rows[0]) if rows else None

    def _read_routes(self, *, tenant: str | None, model: str | None) -> list[RouteRecord]:
        filters = {"tenant": tenant, "model": model}
        clauses = [f"{column} = ?" for column, value in filters.items() if value is not None]
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        args = [value for value in filters.values() if value is not None]
        return [route_record(r) for r in self._database.read(f"SELECT * FROM routes{where}", *args)]

    def _read_routing_state(self, tenant: str, model: str) -> RoutingState | None:
        db = self._database.connection(create=False)
        db.execute("BEGIN")  # one consistent snapshot for the three reads
        try:
            row = db.execute("SELECT * FROM models WHERE name = ?", (model,)).fetchone()
            if row is None:
                return None
            record = model_record(row)
            row = db.execute(
                "SELECT * FROM routes WHERE tenant = ? AND model = ?", (tenant, model)
            ).fetchone()
            route = route_record(row) if row else None
            name = (
                route.alias if route and route.alias else (None if route else record.default_alias)
            )
            alias_row = (
                db.execute(
                    "SELECT * FROM aliases WHERE model = ? AND alias = ?", (model, name)
                ).fetchone()
                if name
                else None
            )
        finally:
            db.execute("COMMIT")
        return RoutingState(
            model=record, route=route, alias=alias_record(alias_row) if alias_row else None
        )

    def _read_routing_revision(self, model: str) -> int | None:
        rows = self._database.read("SELECT routing_revision FROM models WHERE name = ?", model)
        return int(rows[0][0]) if rows else None

    def _read_deployments(self, model: str | None) -> list[DeploymentRecord]:
        sql = "SELECT * FROM deployments" + (" WHERE model = ?" if model else "")
        return [
            DeploymentRecord.from_dict(dict(r))
            for r in self._database.read(sql, *([model] if model else []))
        ]

    # -- the storage port: writes, each one transaction ------------------------------------------

    def _register(
        self,
        model: str,
        new: NewVersion,
        *,
        new_version: bool,
        alias: str | None,
        model_description: str,
    ) -> Registered:
        with self._database.write() as db:
            if not new_version:
                row = db.execute(
                    "SELECT * FROM versions WHERE model = ? AND package_digest = ? ORDER BY version LIMIT 1",
                    (model, new.package_digest),
                ).fetchone()
                if row is not None:
                    return Registered(version=version_record(row), created=False)
            registered_at = now()
            db.execute(
                "INSERT INTO models (name, description, default_alias, created_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(name) DO NOTHING",
                (model, model_description, DEFAULT_ALIAS, registered_at),
            )
            number = db.execute(
                "UPDATE models SET next_version = next_version + 1 WHERE name = ? RETURNING next_version",
                (model,),
            ).fetchone()[0]
            db.execute(
                "INSERT INTO versions (model, version, package_digest, package_uri, code_digest, source,"
                " lineage, tags, description, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    model,
                    number,
                    new.package_digest,
                    new.package_uri,
                    new.code_digest,
                    json.dumps(dict(new.source), sort_keys=True),
                    json.dumps(dict(new.lineage), sort_keys=True, default=str),
                    json.dumps(dict(new.tags), sort_keys=True),
                    new.description,
                    registered_at,
                ),
            )
            if alias is not None:
                self._put_alias(db, model, alias, number)  # bumps the revisions
            else:
                revise(db)
            row = db.execute(
                "SELECT * FROM versions WHERE model = ? AND version = ?", (model, number)
            ).fetchone()
            return Registered(version=version_record(row), created=True)

    def _update_model(self, model: str, update: ModelUpdate) -> ModelRecord | None:
        with self._database.write() as db:
            if db.execute("SELECT 1 FROM models WHERE name = ?", (model,)).fetchone() is None:
                return None
            settings = {
                "description": update.description,
                "default_alias": update.default_alias,
                "private_to": None if update.private_to is None else json.dumps(update.private_to),
            }
            for column, value in settings.items():
                if value is not None:
                    db.execute(f"UPDATE models SET {column} = ? WHERE name = ?", (value, model))
            self._bump(db, model)
            return model_record(
                db.execute("SELECT * FROM models WHERE name = ?", (model,)).fetchone()
            )

    def _archive(self, change: Archive) -> VersionRecord:
        model, version = change.model, change.version
        with self._database.write() as db:
            view = read_view(
                db,
                model,
                versions=(version,),
                aliases=("version = ?", (version,)),
                routes=("version = ? OR canary_version = ?", (version, version)),
                deployments_of=version,
            )
            change.check(view)
            if not change.done(view):
                db.execute(
                    "UPDATE versions SET status = 'archived' WHERE model = ? AND version = ?",
                    (model, version),
                )
                revise(db)
            return version_record(
                db.execute(
                    "SELECT * FROM versions WHERE model = ? AND version = ?", (model, version)
                ).fetchone()
            )

    def _set_metrics(
        self, model: str, version: int, metrics: VersionMetrics
    ) -> VersionRecord | None:
        with self._database.write() as db:
            db.execute(
                "UPDATE versions SET memory_mb = COALESCE(?, memory_mb), latency_ms = COALESCE(?, latency_ms),"
                " gpu_memory_mb = COALESCE(?, gpu_memory_mb) WHERE model = ? AND version = ?",
                (metrics.memory_mb, metrics.latency_ms, metrics.gpu_memory_mb, model, version),
            )
            row = db.execute(
                "SELECT * FROM versions WHERE model = ? AND version = ?", (model, version)
            ).fetchone()
            return version_record(row) if row else None

    def _bump(self, db: sqlite3.Connection, model: str) -> None:
        """Add one to the model's routing revision and to the registry revision."""
        db.execute(
            "UPDATE models SET routing_revision = routing_revision + 1 WHERE name = ?", (model,)
        )
        revise(db)

    def _put_alias(
        self, db: sqlite3.Connection, model: str, alias: str, version: int
    ) -> AliasRecord:
        db.execute(
            "INSERT INTO aliases (model, alias, version, revision, updated_at) VALUES (?, ?, ?, 1, ?) "
            "ON CONFLICT(model, alias) DO UPDATE SET version = excluded.version, revision = revision + 1,"
            " updated_at = excluded.updated_at",
            (model, alias, version, now()),
        )
        self._bump(db, model)
        return alias_record(
            db.execute(
                "SELECT * FROM aliases WHERE model = ? AND alias = ?", (model, alias)
            ).fetchone()
        )

    def _set_alias(self, change: AliasChange) -> AliasRecord:
        with self._database.write() as db:
            view = read_view(
                db,
                change.model,
                versions=(change.version,),
                aliases=("alias = ?", (change.alias,)),
            )
            change.check(view)
            return self._put_alias(db, change.model, change.alias, change.version)

    def _delete_alias(self, change: AliasDeletion) -> None:
        with self._database.write() as db:
            view = read_view(
                db,
                change.model,
                aliases=("alias = ?", (change.alias,)),
                routes=("alias = ?", (change.alias,)),
            )
            change.check(view)
            db.execute(
                "DELETE FROM aliases WHERE model = ? AND alias = ?", (change.model, change.alias)
            )
            self._bump(db, change.model)

    def _set_route(self, change: RouteChange) -> RouteRecord:
        tenant, model = change.tenant, change.model
        with self._database.write() as db:
            view = read_view(
                db,
                model,
                versions=(change.version, change.canary_version),
                aliases=("alias = ?", (change.alias,)),
                routes=("tenant = ?", (tenant,)),
            )
            change.check(view)
            current = view.routes.get(tenant)
            db.execute(
                "INSERT INTO routes (tenant, model, version, alias, canary_version, canary_percent, revision, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(tenant, model) DO UPDATE SET version = excluded.version,"
                " alias = excluded.alias, canary_version = excluded.canary_version,"
                " canary_percent = excluded.canary_percent, revision = excluded.revision, updated_at = excluded.updated_at",
                (
                    tenant,
                    model,
                    change.version,
                    change.alias,
                    change.canary_version,
                    change.canary_percent,
                    (current.revision if current else 0) + 1,
                    now(),
                ),
            )
            self._bump(db, model)
            row = db.execute(
                "SELECT * FROM routes WHERE tenant = ? AND model = ?", (tenant, model)
            ).fetchone()
            return route_record(row)

    def _delete_route(self, change: RouteDeletion) -> None:
        with self._database.write() as db:
            view = read_view(db, change.model, routes=("tenant = ?", (change.tenant,)))
            change.check(view)
            db.execute(
                "DELETE FROM routes WHERE tenant = ? AND model = ?", (change.tenant, change.model)
            )
            self._bump(db, change.model)

    def _record_deployment(self, change: DeploymentChange, detail: Mapping[str, Any]) -> None:
        with self._database.write() as db:
            change.check(read_view(db, change.model, versions=(change.version,)))
            db.execute(
                "INSERT INTO deployments (model, version, target, detail, updated_at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT(model, version, target) DO UPDATE SET detail = excluded.detail,"
                " updated_at = excluded.updated_at",
                (
                    change.model,
                    change.version,
                    change.target,
                    DeploymentRecord(
                        change.model, change.version, change.target, detail
                    ).detail_json(),
                    now(),
                ),
            )
            self._bump(db, change.model)

    def _remove_deployment(self, model: str, version: int, target: str) -> None:
        with self._database.write() as db:
            removed = db.execute(
                "DELETE FROM deployments WHERE model = ? AND version = ? AND target = ?",
                (model, version, target),
            ).rowcount
            if removed:
                self._bump(db, model)
