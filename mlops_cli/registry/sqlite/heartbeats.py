"""The SQLite registry's registry-wide revision and router heartbeats.

``registry_revision`` is a one-row table (``id = 1``) that every change's transaction increments
with :func:`revise`; until the first change there is no row, and the revision reads as 0. A
heartbeat is one row of ``router_heartbeats``, replaced by an upsert; heartbeats move no
revision.
"""

from __future__ import annotations

import json
import sqlite3

from mlops_cli.registry.records import RouterHeartbeat
from mlops_cli.registry.sqlite.database import SQLiteDatabase


def revise(db: sqlite3.Connection) -> None:
    """Add one to the registry revision, inside the caller's transaction."""
    db.execute(
        "INSERT INTO registry_revision (id, revision) VALUES (1, 1)"
        " ON CONFLICT(id) DO UPDATE SET revision = revision + 1"
    )


class SQLiteHeartbeats:
    """The registry-revision read and the heartbeat part of the storage port."""

    _database: SQLiteDatabase

    def _read_registry_revision(self) -> int:
        rows = self._database.read("SELECT revision FROM registry_revision WHERE id = 1")
        return int(rows[0][0]) if rows else 0

    def _read_heartbeats(self) -> list[RouterHeartbeat]:
        return [
            RouterHeartbeat(
                router_id=row["router_id"],
                applied_revision=row["applied_revision"],
                in_flight=json.loads(row["in_flight"]),
                at=row["at"],
                address=row["address"],
                started_at=row["started_at"],
            )
            for row in self._database.read("SELECT * FROM router_heartbeats")
        ]

    def _write_heartbeat(self, heartbeat: RouterHeartbeat) -> None:
        with self._database.write() as db:
            db.execute(
                "INSERT INTO router_heartbeats (router_id, applied_revision, in_flight, at, address,"
                " started_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(router_id) DO UPDATE SET"
                " applied_revision = excluded.applied_revision, in_flight = excluded.in_flight,"
                " at = excluded.at, address = excluded.address, started_at = excluded.started_at",
                (
                    heartbeat.router_id,
                    heartbeat.applied_revision,
                    json.dumps(dict(heartbeat.in_flight), separators=(",", ":")),
                    float(heartbeat.at),
                    heartbeat.address,
                    float(heartbeat.started_at),
                ),
            )

    def _delete_heartbeat(self, router_id: str) -> None:
        with self._database.write() as db:
            db.execute("DELETE FROM router_heartbeats WHERE router_id = ?", (router_id,))
