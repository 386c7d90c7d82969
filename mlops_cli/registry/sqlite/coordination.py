"""The SQLite registry's leases and placements (the storage port of
:class:`~mlops_cli.registry.coordination.Coordination`).

A lease is one row of ``leases``, replaced by a compare-and-swap on its ``revision`` (one
statement, under the database's write lock); a released lease keeps its row, without a holder,
so that its revision never goes back. A placement is one row of ``placements``: the document as
JSON text, replaced in a transaction that checks the revision it expects and adds one to the
registry revision.
"""

from __future__ import annotations

import json
import sqlite3

from mlops_cli.registry.records import Lease, PlacementRecord
from mlops_cli.registry.sqlite.database import SQLiteDatabase
from mlops_cli.registry.sqlite.heartbeats import revise
from mlops_cli.registry.sqlite.rows import now


def _lease(row: sqlite3.Row) -> Lease:
    return Lease(
        name=row["name"],
        holder=row["holder"],
        expires_at=float(row["expires_at"]),
        acquired_at=float(row["acquired_at"]),
        revision=int(row["revision"]),
    )


def _placement(row: sqlite3.Row) -> PlacementRecord:
    return PlacementRecord(
        fleet=row["fleet"],
        revision=int(row["revision"]),
        document=json.loads(row["document"]),
        updated_at=row["updated_at"],
    )


class SQLiteCoordination:
    """Leases and placements in SQL."""

    _database: SQLiteDatabase

    def _read_lease(self, name: str) -> Lease | None:
        rows = self._database.read("SELECT * FROM leases WHERE name = ?", name)
        return _lease(rows[0]) if rows else None

    def _swap_lease(self, lease: Lease, *, expect_revision: int) -> bool:
        values = (lease.holder, lease.expires_at, lease.acquired_at, lease.revision, lease.name)
        with self._database.write() as db:
            if expect_revision == 0:
                written = db.execute(
                    "INSERT INTO leases (holder, expires_at, acquired_at, revision, name)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT(name) DO NOTHING",
                    values,
                ).rowcount
            else:
                written = db.execute(
                    "UPDATE leases SET holder = ?, expires_at = ?, acquired_at = ?, revision = ?"
                    " WHERE name = ? AND revision = ?",
                    (*values, expect_revision),
                ).rowcount
        return written == 1

    def _read_placement(self, fleet: str) -> PlacementRecord | None:
        rows = self._database.read("SELECT * FROM placements WHERE fleet = ?", fleet)
        return _placement(rows[0]) if rows else None

    def _swap_placement(
        self, fleet: str, document_json: str, expect_revision: int | None
    ) -> PlacementRecord | None:
        with self._database.write() as db:
            row = db.execute("SELECT revision FROM placements WHERE fleet = ?", (fleet,)).fetchone()
            found = int(row[0]) if row else 0
            if expect_revision is not None and found != expect_revision:
                return None
            db.execute(
                "INSERT INTO placements (fleet, revision, document, updated_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(fleet) DO UPDATE SET revision = excluded.revision,"
                " document = excluded.document, updated_at = excluded.updated_at",
                (fleet, found + 1, document_json, now()),
            )
            revise(db)
            stored = db.execute("SELECT * FROM placements WHERE fleet = ?", (fleet,)).fetchone()
            return _placement(stored)
