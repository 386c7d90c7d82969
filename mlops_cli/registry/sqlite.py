"""``sqlite:///path`` registry: the embedded default.

One database file in WAL mode. Every write runs in a ``BEGIN IMMEDIATE`` transaction, so
concurrent processes serialise on the database's write lock (waiting up to ``busy_timeout``) and
each transaction sees the state it changes: the version counter is incremented and the version
inserted in one transaction, and a change's checks (:mod:`mlops_cli.registry.rules`) run on rows
read under the same lock as its writes.

Reads never create the database: a registry that does not exist yet reads as empty (so that
``mlops status`` leaves no ``.mlops/registry.db`` behind); only a write creates it.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
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
    ModelView,
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
from mlops_cli.registry.rules import (
    ModelUpdate,
    RegistryUnavailableError,
    VersionMetrics,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS models (
    name TEXT PRIMARY KEY,
    description TEXT NOT NULL DEFAULT '',
    default_alias TEXT NOT NULL,
    private_to TEXT NOT NULL DEFAULT '[]',
    tags TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    next_version INTEGER NOT NULL DEFAULT 0,
    routing_revision INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS versions (
    model TEXT NOT NULL REFERENCES models(name),
    version INTEGER NOT NULL,
    package_digest TEXT NOT NULL,
    package_uri TEXT NOT NULL,
    code_digest TEXT NOT NULL DEFAULT '',
    source TEXT NOT NULL DEFAULT '{}',
    lineage TEXT NOT NULL DEFAULT '{}',
    tags TEXT NOT NULL DEFAULT '{}',
    description TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT 'active',
    created_at TEXT NOT NULL,
    memory_mb REAL,
    latency_ms REAL,
    PRIMARY KEY (model, version)
);
CREATE INDEX IF NOT EXISTS versions_by_digest ON versions(package_digest);
CREATE TABLE IF NOT EXISTS aliases (
    model TEXT NOT NULL,
    alias TEXT NOT NULL,
    version INTEGER NOT NULL,
    revision INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (model, alias)
);
CREATE TABLE IF NOT EXISTS routes (
    tenant TEXT NOT NULL,
    model TEXT NOT NULL,
    version INTEGER,
    alias TEXT,
    canary_version INTEGER,
    canary_percent REAL NOT NULL DEFAULT 0,
    revision INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (tenant, model)
);
CREATE INDEX IF NOT EXISTS routes_by_model ON routes(model);
CREATE TABLE IF NOT EXISTS deployments (
    model TEXT NOT NULL,
    version INTEGER NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}',
    updated_at TEXT NOT NULL,
    PRIMARY KEY (model, version, target)
);
"""


Matching = tuple[str, tuple[Any, ...]] | None  # an SQL condition and its arguments


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class SQLiteRegistry(Registry):
    """Thread-safe (one connection per thread)."""

    def __init__(self, path: Path, *, busy_timeout_ms: int = 30_000) -> None:
        self.path = path
        self.uri = f"sqlite:///{path}"
        self.busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        self._initialised = False

    @classmethod
    def from_uri(cls, uri: str) -> SQLiteRegistry:
        parsed = urlparse(uri)
        if parsed.netloc or not parsed.path:
            raise UsageError(
                f"bad SQLite registry URI {uri!r}", hint="use sqlite:///absolute/path.db"
            )
        return cls(Path(unquote(parsed.path)))

    # -- plumbing ----------------------------------------------------------------------------

    def _connection(self, *, create: bool = True) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None and not create and not self.path.exists():
            # A registry that does not exist yet reads as empty: only a write creates it.
            empty = sqlite3.connect(":memory:")
            empty.executescript(SCHEMA)
            empty.row_factory = sqlite3.Row
            return empty
        if connection is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                connection = sqlite3.connect(
                    self.path, timeout=self.busy_timeout_ms / 1000, isolation_level=None
                )
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute(f"PRAGMA busy_timeout={self.busy_timeout_ms}")
                connection.execute("PRAGMA foreign_keys=ON")
                connection.row_factory = sqlite3.Row
            except (sqlite3.Error, OSError) as exc:
                raise RegistryUnavailableError(f"cannot open registry {self.uri}: {exc}") from None
            self._local.connection = connection
        if not self._initialised:
            connection.executescript(SCHEMA)
            self._initialised = True
        return connection

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        connection = self._connection()
        try:
            connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise RegistryUnavailableError(
                f"registry {self.uri} stayed locked: {exc}",
                hint="another mlops process holds it; retry",
            ) from None
        try:
            yield connection
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    def _read(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        return self._connection(create=False).execute(sql, args).fetchall()

    def init(self) -> bool:
        existed = self.path.exists()
        self._connection()
        return not existed

    # -- conversions ---------------------------------------------------------------------------

    @staticmethod
    def _model(row: sqlite3.Row) -> ModelRecord:
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

    @staticmethod
    def _version(row: sqlite3.Row) -> VersionRecord:
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
        )

    @staticmethod
    def _alias(row: sqlite3.Row) -> AliasRecord:
        return AliasRecord(
            row["model"], row["alias"], row["version"], row["revision"], row["updated_at"]
        )

    @staticmethod
    def _route(row: sqlite3.Row) -> RouteRecord:
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

    # -- the storage port: reads ---------------------------------------------------------------

    def _read_model(self, model: str) -> ModelRecord | None:
        rows = self._read("SELECT * FROM models WHERE name = ?", model)
        return self._model(rows[0]) if rows else None

    def _read_models(self) -> list[ModelRecord]:
        return [self._model(row) for row in self._read("SELECT * FROM models")]

    def _read_version(self, model: str, version: int) -> VersionRecord | None:
        sql = "SELECT * FROM versions WHERE model = ? AND version = ?"
        rows = self._read(sql, model, version)
        return self._version(rows[0]) if rows else None

    def _read_versions(self, model: str) -> list[VersionRecord]:
        return [
            self._version(r) for r in self._read("SELECT * FROM versions WHERE model = ?", model)
        ]

    def _read_versions_by_digest(self, package_digest: str) -> list[VersionRecord]:
        rows = self._read("SELECT * FROM versions WHERE package_digest = ?", package_digest)
        return [self._version(r) for r in rows]

    def _read_alias(self, model: str, alias: str) -> AliasRecord | None:
        rows = self._read("SELECT * FROM aliases WHERE model = ? AND alias = ?", model, alias)
        return self._alias(rows[0]) if rows else None

    def _read_aliases(self, model: str) -> list[AliasRecord]:
        return [self._alias(r) for r in self._read("SELECT * FROM aliases WHERE model = ?", model)]

    def _read_route(self, tenant: str, model: str) -> RouteRecord | None:
        rows = self._read("SELECT * FROM routes WHERE tenant = ? AND model = ?", tenant, model)
        return self._route(rows[0]) if rows else None

    def _read_routes(self, *, tenant: str | None, model: str | None) -> list[RouteRecord]:
        filters = {"tenant": tenant, "model": model}
        clauses = [f"{column} = ?" for column, value in filters.items() if value is not None]
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        args = [value for value in filters.values() if value is not None]
        return [self._route(r) for r in self._read(f"SELECT * FROM routes{where}", *args)]

    def _read_routing_state(self, tenant: str, model: str) -> RoutingState | None:
        db = self._connection(create=False)
        db.execute("BEGIN")  # one consistent snapshot for the three reads
        try:
            row = db.execute("SELECT * FROM models WHERE name = ?", (model,)).fetchone()
            if row is None:
                return None
            record = self._model(row)
            row = db.execute(
                "SELECT * FROM routes WHERE tenant = ? AND model = ?", (tenant, model)
            ).fetchone()
            route = self._route(row) if row else None
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
            model=record, route=route, alias=self._alias(alias_row) if alias_row else None
        )

    def _read_routing_revision(self, model: str) -> int | None:
        rows = self._read("SELECT routing_revision FROM models WHERE name = ?", model)
        return int(rows[0][0]) if rows else None

    def _read_deployments(self, model: str | None) -> list[DeploymentRecord]:
        sql = "SELECT * FROM deployments" + (" WHERE model = ?" if model else "")
        return [
            DeploymentRecord.from_dict(dict(r))
            for r in self._read(sql, *([model] if model else []))
        ]

    # -- the storage port: writes, each one transaction ------------------------------------------

    def _view(
        self,
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
                found_versions[number] = self._version(found)
        found_aliases, found_routes = {}, {}
        if aliases is not None:
            sql = f"SELECT * FROM aliases WHERE model = ? AND ({aliases[0]})"
            rows = db.execute(sql, (model, *aliases[1]))
            found_aliases = {r["alias"]: self._alias(r) for r in rows}
        if routes is not None:
            sql = f"SELECT * FROM routes WHERE model = ? AND ({routes[0]})"
            found_routes = {
                r["tenant"]: self._route(r) for r in db.execute(sql, (model, *routes[1]))
            }
        found_deployments: list[tuple[int, str]] = []
        if deployments_of is not None:
            sql = "SELECT version, target FROM deployments WHERE model = ? AND version = ?"
            found_deployments = [
                (r["version"], r["target"]) for r in db.execute(sql, (model, deployments_of))
            ]
        return ModelView(
            self._model(row), found_versions, found_aliases, found_routes, found_deployments
        )

    def _register(
        self,
        model: str,
        new: NewVersion,
        *,
        new_version: bool,
        alias: str | None,
        model_description: str,
    ) -> Registered:
        with self._write() as db:
            if not new_version:
                row = db.execute(
                    "SELECT * FROM versions WHERE model = ? AND package_digest = ? ORDER BY version LIMIT 1",
                    (model, new.package_digest),
                ).fetchone()
                if row is not None:
                    return Registered(version=self._version(row), created=False)
            now = _now()
            db.execute(
                "INSERT INTO models (name, description, default_alias, created_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(name) DO NOTHING",
                (model, model_description, DEFAULT_ALIAS, now),
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
                    now,
                ),
            )
            if alias is not None:
                self._put_alias(db, model, alias, number)
            row = db.execute(
                "SELECT * FROM versions WHERE model = ? AND version = ?", (model, number)
            ).fetchone()
            return Registered(version=self._version(row), created=True)

    def _update_model(self, model: str, update: ModelUpdate) -> ModelRecord | None:
        with self._write() as db:
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
            return self._model(
                db.execute("SELECT * FROM models WHERE name = ?", (model,)).fetchone()
            )

    def _archive(self, change: Archive) -> VersionRecord:
        model, version = change.model, change.version
        with self._write() as db:
            view = self._view(
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
            return self._version(
                db.execute(
                    "SELECT * FROM versions WHERE model = ? AND version = ?", (model, version)
                ).fetchone()
            )

    def _set_metrics(
        self, model: str, version: int, metrics: VersionMetrics
    ) -> VersionRecord | None:
        with self._write() as db:
            db.execute(
                "UPDATE versions SET memory_mb = COALESCE(?, memory_mb), latency_ms = COALESCE(?, latency_ms)"
                " WHERE model = ? AND version = ?",
                (metrics.memory_mb, metrics.latency_ms, model, version),
            )
            row = db.execute(
                "SELECT * FROM versions WHERE model = ? AND version = ?", (model, version)
            ).fetchone()
            return self._version(row) if row else None

    def _bump(self, db: sqlite3.Connection, model: str) -> None:
        db.execute(
            "UPDATE models SET routing_revision = routing_revision + 1 WHERE name = ?", (model,)
        )

    def _put_alias(
        self, db: sqlite3.Connection, model: str, alias: str, version: int
    ) -> AliasRecord:
        db.execute(
            "INSERT INTO aliases (model, alias, version, revision, updated_at) VALUES (?, ?, ?, 1, ?) "
            "ON CONFLICT(model, alias) DO UPDATE SET version = excluded.version, revision = revision + 1,"
            " updated_at = excluded.updated_at",
            (model, alias, version, _now()),
        )
        self._bump(db, model)
        return self._alias(
            db.execute(
                "SELECT * FROM aliases WHERE model = ? AND alias = ?", (model, alias)
            ).fetchone()
        )

    def _set_alias(self, change: AliasChange) -> AliasRecord:
        with self._write() as db:
            view = self._view(
                db,
                change.model,
                versions=(change.version,),
                aliases=("alias = ?", (change.alias,)),
            )
            change.check(view)
            return self._put_alias(db, change.model, change.alias, change.version)

    def _delete_alias(self, change: AliasDeletion) -> None:
        with self._write() as db:
            view = self._view(
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
        with self._write() as db:
            view = self._view(
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
                    _now(),
                ),
            )
            self._bump(db, model)
            row = db.execute(
                "SELECT * FROM routes WHERE tenant = ? AND model = ?", (tenant, model)
            ).fetchone()
            return self._route(row)

    def _delete_route(self, change: RouteDeletion) -> None:
        with self._write() as db:
            view = self._view(db, change.model, routes=("tenant = ?", (change.tenant,)))
            change.check(view)
            db.execute(
                "DELETE FROM routes WHERE tenant = ? AND model = ?", (change.tenant, change.model)
            )
            self._bump(db, change.model)

    def _record_deployment(self, change: DeploymentChange, detail: Mapping[str, Any]) -> None:
        with self._write() as db:
            change.check(self._view(db, change.model, versions=(change.version,)))
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
                    _now(),
                ),
            )

    def _remove_deployment(self, model: str, version: int, target: str) -> None:
        with self._write() as db:
            db.execute(
                "DELETE FROM deployments WHERE model = ? AND version = ? AND target = ?",
                (model, version, target),
            )
