"""The SQLite registry's database: its schema, one connection per thread, and transactions.

The schema is created with ``IF NOT EXISTS`` on every first connection, which is also how a
database made by an older version gains the tables added since (``registry_revision``: one row,
absent until the first change, read as 0; ``router_heartbeats``; ``leases``; ``placements``).

Writes run in ``BEGIN IMMEDIATE`` so that concurrent processes serialise on the file's write lock
(waiting up to ``busy_timeout``) and a change's checks see the rows its writes replace. A read of a
database that does not exist yet gets an empty in-memory one instead, so reading never creates
the file; only a write does. Every failure to open or lock the file is a
:class:`~mlops_cli.registry.rules.RegistryUnavailableError`.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mlops_cli.registry.rules import RegistryUnavailableError

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
    gpu_memory_mb REAL,
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
CREATE TABLE IF NOT EXISTS registry_revision (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    revision INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS router_heartbeats (
    router_id TEXT PRIMARY KEY,
    applied_revision INTEGER NOT NULL,
    in_flight TEXT NOT NULL DEFAULT '{}',
    at REAL NOT NULL,
    address TEXT NOT NULL DEFAULT '',
    started_at REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at REAL NOT NULL,
    acquired_at REAL NOT NULL,
    revision INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS placements (
    fleet TEXT PRIMARY KEY,
    revision INTEGER NOT NULL,
    document TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
"""


# Columns added after a table was first released: (table, column, type). A database made by an
# earlier version gets them on open (CREATE TABLE IF NOT EXISTS leaves an existing table as it is).
ADDED_COLUMNS = (("versions", "gpu_memory_mb", "REAL"),)


def _add_missing_columns(connection: sqlite3.Connection) -> None:
    for table, column, kind in ADDED_COLUMNS:
        present = {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}
        if column in present:
            continue
        try:
            connection.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
        except sqlite3.OperationalError as exc:  # another process added it first
            if "duplicate column" not in str(exc):
                raise


class SQLiteDatabase:
    """One database file; thread-safe (one connection per thread)."""

    def __init__(self, path: Path, *, uri: str, busy_timeout_ms: int) -> None:
        self.path = path
        self.uri = uri
        self.busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        self._initialised = False

    def connection(self, *, create: bool = True) -> sqlite3.Connection:
        """This thread's connection; with ``create=False`` and no file yet, an empty database."""
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
            _add_missing_columns(connection)
            self._initialised = True
        return connection

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction: committed on return, rolled back on any error."""
        connection = self.connection()
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

    def read(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        """The rows of one query, without creating the database."""
        return self.connection(create=False).execute(sql, args).fetchall()
