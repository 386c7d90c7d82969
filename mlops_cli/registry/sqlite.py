"""``sqlite:///path`` registry: the embedded default.

One database file in WAL mode. Every write runs in a ``BEGIN IMMEDIATE`` transaction, so
concurrent processes serialise on the database's write lock (waiting up to ``busy_timeout``) and
each transaction sees the state it changes: the version counter is incremented and the version
inserted in one transaction, and compare-and-swap checks and writes happen under the same lock.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlparse

from mlops_cli.errors import ConflictError, NotFoundError, UsageError
from mlops_cli.registry.base import (
    DEFAULT_ALIAS,
    AliasRecord,
    ModelRecord,
    NewVersion,
    Registered,
    Registry,
    RegistryUnavailableError,
    RouteRecord,
    RoutingState,
    VersionRecord,
    check_name,
    check_new_version,
    check_route_args,
    check_route_visibility,
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
        return self._connection().execute(sql, args).fetchall()

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

    # -- models and versions ---------------------------------------------------------------------

    def register_version(
        self,
        model: str,
        new: NewVersion,
        *,
        new_version: bool = False,
        alias: str | None = None,
        model_description: str = "",
    ) -> Registered:
        check_new_version(model, new, alias)
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

    def _model_row(self, db: sqlite3.Connection | None, model: str) -> sqlite3.Row:
        check_name("model", model)
        connection = db or self._connection()
        row = connection.execute("SELECT * FROM models WHERE name = ?", (model,)).fetchone()
        if row is None:
            raise NotFoundError(f"model {model} does not exist", hint="mlops models list")
        return row  # type: ignore[no-any-return]

    def get_model(self, model: str) -> ModelRecord:
        return self._model(self._model_row(None, model))

    def list_models(self) -> list[ModelRecord]:
        return [self._model(row) for row in self._read("SELECT * FROM models ORDER BY name")]

    def update_model(
        self,
        model: str,
        *,
        description: str | None = None,
        default_alias: str | None = None,
        private_to: tuple[str, ...] | None = None,
    ) -> ModelRecord:
        if default_alias is not None:
            check_name("alias", default_alias)
        for tenant in private_to or ():
            check_name("tenant", tenant)
        with self._write() as db:
            self._model_row(db, model)
            if description is not None:
                db.execute("UPDATE models SET description = ? WHERE name = ?", (description, model))
            if default_alias is not None:
                db.execute(
                    "UPDATE models SET default_alias = ? WHERE name = ?", (default_alias, model)
                )
            if private_to is not None:
                db.execute(
                    "UPDATE models SET private_to = ? WHERE name = ?",
                    (json.dumps(sorted(set(private_to))), model),
                )
            self._bump(db, model)
            return self._model(self._model_row(db, model))

    def _version_row(self, db: sqlite3.Connection | None, model: str, version: int) -> sqlite3.Row:
        connection = db or self._connection()
        self._model_row(connection, model)
        row = connection.execute(
            "SELECT * FROM versions WHERE model = ? AND version = ?", (model, version)
        ).fetchone()
        if row is None:
            raise NotFoundError(
                f"model {model} has no version {version}", hint=f"mlops models versions {model}"
            )
        return row  # type: ignore[no-any-return]

    def get_version(self, model: str, version: int) -> VersionRecord:
        return self._version(self._version_row(None, model, version))

    def list_versions(self, model: str) -> list[VersionRecord]:
        self._model_row(None, model)
        return [
            self._version(r)
            for r in self._read("SELECT * FROM versions WHERE model = ? ORDER BY version", model)
        ]

    def find_versions_by_digest(self, package_digest: str) -> list[VersionRecord]:
        rows = self._read(
            "SELECT * FROM versions WHERE package_digest = ? ORDER BY model, version",
            package_digest,
        )
        return [self._version(r) for r in rows]

    def archive_version(self, model: str, version: int) -> VersionRecord:
        with self._write() as db:
            self._version_row(db, model, version)
            users = [
                f"alias @{r['alias']}"
                for r in db.execute(
                    "SELECT alias FROM aliases WHERE model = ? AND version = ?", (model, version)
                )
            ]
            users += [
                f"route of {r['tenant']}"
                for r in db.execute(
                    "SELECT tenant FROM routes WHERE model = ? AND (version = ? OR canary_version = ?)",
                    (model, version, version),
                )
            ]
            users += [
                f"deployment on {r['target']}"
                for r in db.execute(
                    "SELECT target FROM deployments WHERE model = ? AND version = ?",
                    (model, version),
                )
            ]
            if users:
                raise ConflictError(
                    f"{model} version {version} is in use ({', '.join(users)}); not archived",
                    hint="move those aliases and routes, or undeploy, first",
                )
            db.execute(
                "UPDATE versions SET status = 'archived' WHERE model = ? AND version = ?",
                (model, version),
            )
            return self._version(self._version_row(db, model, version))

    def set_version_metrics(
        self, model: str, version: int, *, memory_mb: float | None, latency_ms: float | None
    ) -> VersionRecord:
        with self._write() as db:
            self._version_row(db, model, version)
            db.execute(
                "UPDATE versions SET memory_mb = COALESCE(?, memory_mb), latency_ms = COALESCE(?, latency_ms)"
                " WHERE model = ? AND version = ?",
                (memory_mb, latency_ms, model, version),
            )
            return self._version(self._version_row(db, model, version))

    # -- aliases -------------------------------------------------------------------------------

    def _bump(self, db: sqlite3.Connection, model: str) -> None:
        db.execute(
            "UPDATE models SET routing_revision = routing_revision + 1 WHERE name = ?", (model,)
        )

    def _active_version(self, db: sqlite3.Connection, model: str, version: int) -> None:
        row = self._version_row(db, model, version)
        if row["status"] != "active":
            raise NotFoundError(
                f"{model} version {version} is archived", hint="use an active version"
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

    def set_alias(
        self,
        model: str,
        alias: str,
        version: int,
        *,
        expect_version: int | Literal["absent"] | None = None,
    ) -> AliasRecord:
        check_name("alias", alias)
        with self._write() as db:
            self._active_version(db, model, version)
            current = db.execute(
                "SELECT version FROM aliases WHERE model = ? AND alias = ?", (model, alias)
            ).fetchone()
            now = current["version"] if current else "absent"
            if expect_version is not None and now != expect_version:
                raise ConflictError(
                    f"alias {model}@{alias} points at {now}, not {expect_version}; not changed",
                    hint="read it again (mlops alias get) and retry with the current version",
                )
            return self._put_alias(db, model, alias, version)

    def get_alias(self, model: str, alias: str) -> AliasRecord:
        check_name("alias", alias)
        self._model_row(None, model)
        rows = self._read("SELECT * FROM aliases WHERE model = ? AND alias = ?", model, alias)
        if not rows:
            raise NotFoundError(
                f"model {model} has no alias @{alias}",
                hint=f"mlops alias set {model} {alias} VERSION",
            )
        return self._alias(rows[0])

    def list_aliases(self, model: str) -> list[AliasRecord]:
        self._model_row(None, model)
        return [
            self._alias(r)
            for r in self._read("SELECT * FROM aliases WHERE model = ? ORDER BY alias", model)
        ]

    def delete_alias(self, model: str, alias: str, *, expect_version: int | None = None) -> None:
        check_name("alias", alias)
        with self._write() as db:
            self._model_row(db, model)
            row = db.execute(
                "SELECT * FROM aliases WHERE model = ? AND alias = ?", (model, alias)
            ).fetchone()
            if row is None:
                raise NotFoundError(f"model {model} has no alias @{alias}")
            if expect_version is not None and row["version"] != expect_version:
                raise ConflictError(
                    f"alias {model}@{alias} points at {row['version']}, not {expect_version}; not deleted"
                )
            tenants = [
                r["tenant"]
                for r in db.execute(
                    "SELECT tenant FROM routes WHERE model = ? AND alias = ?", (model, alias)
                )
            ]
            if tenants:
                raise ConflictError(
                    f"alias {model}@{alias} is used by the routes of {', '.join(tenants)}; not deleted"
                )
            db.execute("DELETE FROM aliases WHERE model = ? AND alias = ?", (model, alias))
            self._bump(db, model)

    # -- routes ------------------------------------------------------------------------------

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
        check_name("tenant", tenant)
        check_route_args(version, alias, canary_version, canary_percent)
        with self._write() as db:
            check_route_visibility(self._model(self._model_row(db, model)), tenant)
            if version is not None:
                self._active_version(db, model, version)
            else:
                self._model_row(db, model)
                if (
                    db.execute(
                        "SELECT 1 FROM aliases WHERE model = ? AND alias = ?", (model, alias)
                    ).fetchone()
                    is None
                ):
                    raise NotFoundError(
                        f"model {model} has no alias @{alias}",
                        hint=f"mlops alias set {model} {alias} VERSION",
                    )
            if canary_version is not None:
                self._active_version(db, model, canary_version)
            current = db.execute(
                "SELECT revision FROM routes WHERE tenant = ? AND model = ?", (tenant, model)
            ).fetchone()
            revision = current["revision"] if current else 0
            if expect_revision is not None and revision != expect_revision:
                raise ConflictError(
                    f"route of {tenant} to {model} is at revision {revision}, not {expect_revision}; not changed"
                )
            db.execute(
                "INSERT INTO routes (tenant, model, version, alias, canary_version, canary_percent, revision, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(tenant, model) DO UPDATE SET version = excluded.version,"
                " alias = excluded.alias, canary_version = excluded.canary_version,"
                " canary_percent = excluded.canary_percent, revision = excluded.revision, updated_at = excluded.updated_at",
                (
                    tenant,
                    model,
                    version,
                    alias,
                    canary_version,
                    float(canary_percent),
                    revision + 1,
                    _now(),
                ),
            )
            self._bump(db, model)
            row = db.execute(
                "SELECT * FROM routes WHERE tenant = ? AND model = ?", (tenant, model)
            ).fetchone()
            return self._route(row)

    def get_route(self, tenant: str, model: str) -> RouteRecord:
        check_name("tenant", tenant)
        check_name("model", model)
        rows = self._read("SELECT * FROM routes WHERE tenant = ? AND model = ?", tenant, model)
        if not rows:
            raise NotFoundError(
                f"tenant {tenant} has no route to {model}",
                hint=f"mlops route set {tenant} {model} VERSION",
            )
        return self._route(rows[0])

    def list_routes(
        self, *, tenant: str | None = None, model: str | None = None
    ) -> list[RouteRecord]:
        clauses, args = [], []
        if tenant is not None:
            clauses.append("tenant = ?")
            args.append(check_name("tenant", tenant))
        if model is not None:
            clauses.append("model = ?")
            args.append(check_name("model", model))
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        return [
            self._route(r)
            for r in self._read(f"SELECT * FROM routes{where} ORDER BY tenant, model", *args)
        ]

    def delete_route(self, tenant: str, model: str, *, expect_revision: int | None = None) -> None:
        check_name("tenant", tenant)
        with self._write() as db:
            self._model_row(db, model)
            row = db.execute(
                "SELECT revision FROM routes WHERE tenant = ? AND model = ?", (tenant, model)
            ).fetchone()
            if row is None:
                raise NotFoundError(f"tenant {tenant} has no route to {model}")
            if expect_revision is not None and row["revision"] != expect_revision:
                raise ConflictError(
                    f"route of {tenant} to {model} is at revision {row['revision']}, not {expect_revision}; not deleted"
                )
            db.execute("DELETE FROM routes WHERE tenant = ? AND model = ?", (tenant, model))
            self._bump(db, model)

    # -- resolution --------------------------------------------------------------------------

    def routing_state(self, tenant: str, model: str) -> RoutingState:
        db = self._connection()
        db.execute("BEGIN")  # one consistent snapshot for the three reads
        try:
            record = self._model(self._model_row(db, model))
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

    def routing_revision(self, model: str) -> int:
        rows = self._read("SELECT routing_revision FROM models WHERE name = ?", model)
        if not rows:
            raise NotFoundError(f"model {model} does not exist")
        return int(rows[0][0])

    # -- deployments -------------------------------------------------------------------------

    def record_deployment(
        self, model: str, version: int, target: str, *, detail: Mapping[str, Any]
    ) -> None:
        with self._write() as db:
            self._version_row(db, model, version)
            db.execute(
                "INSERT INTO deployments (model, version, target, detail, updated_at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT(model, version, target) DO UPDATE SET detail = excluded.detail,"
                " updated_at = excluded.updated_at",
                (
                    model,
                    version,
                    target,
                    json.dumps(dict(detail), sort_keys=True, default=str),
                    _now(),
                ),
            )

    def remove_deployment(self, model: str, version: int, target: str) -> None:
        with self._write() as db:
            db.execute(
                "DELETE FROM deployments WHERE model = ? AND version = ? AND target = ?",
                (model, version, target),
            )

    def list_deployments(self, model: str | None = None) -> list[dict[str, Any]]:
        sql = (
            "SELECT * FROM deployments"
            + (" WHERE model = ?" if model else "")
            + " ORDER BY model, version, target"
        )
        rows = self._read(sql, *([model] if model else []))
        return [
            {
                "model": r["model"],
                "version": r["version"],
                "target": r["target"],
                "detail": json.loads(r["detail"]),
                "updated_at": r["updated_at"],
            }
            for r in rows
        ]
