"""Leases and placements in the DynamoDB registry (see the package for the item layout).

A lease is one item ``LEASES`` / ``LEASE#<name>``, replaced by a PutItem conditional on the
revision read (``attribute_not_exists`` for a lease never taken): DynamoDB has no clock of its
own to compare ``expires_at`` with, so the decision is made on the lease as read, with the
caller's clock, and the condition makes sure nothing changed in between. A released lease keeps
its item, without a holder, so that its revision never goes back.

A placement document is up to 4 MiB of JSON, more than an item (400 KB) holds, so it is stored
like a long heartbeat: zlib-compressed, cut into parts. The parts go first, as items
``PLACEMENTS`` / ``FLEET#<fleet>#PART#<token>#<n>`` that nothing names yet; then one transaction
puts the head ``FLEET#<fleet>`` (revision, updated_at, the first part, ``parts``, ``token``),
conditional on the revision it replaces, together with the registry revision's increment. A
transaction carries at most 4 MB, which a worst-case document's parts would not fit; the head
alone does. A refused head leaves its parts unreachable and they are deleted; a replaced head's
parts are deleted after it (a crash in between leaves unreachable parts behind, a few MB at
most, never read). A reader takes the head with a consistent read, then its parts with
a consistent Query; parts that vanished in between belong to a head replaced meanwhile, and the
read is repeated.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from mlops_cli.errors import ConflictError
from mlops_cli.registry.dynamodb.client import TableClient
from mlops_cli.registry.dynamodb.items import (
    LEASES,
    PLACEMENTS,
    Expr,
    Refused,
    binary,
    compress_parts,
    dynamo_attrs,
    join_parts,
    timestamp,
)
from mlops_cli.registry.records import Lease, PlacementRecord

READ_TRIES = 3  # reads of a placement before a torn read is reported
WRITE_TRIES = 16  # rounds of an unconditional placement put that keeps losing races


def lease_key(name: str) -> dict[str, Any]:
    return dynamo_attrs({"PK": LEASES, "SK": f"LEASE#{name}"})


def head_sk(fleet: str) -> str:
    return f"FLEET#{fleet}"


def part_sk(fleet: str, token: str, index: int) -> str:
    return f"FLEET#{fleet}#PART#{token}#{index:02d}"


def _placement_key(sk: str) -> dict[str, Any]:
    return dynamo_attrs({"PK": PLACEMENTS, "SK": sk})


class CoordinationItems(TableClient):
    """The lease and placement part of :class:`~mlops_cli.registry.dynamodb.DynamoDBRegistry`."""

    # -- leases ------------------------------------------------------------------------------

    def _read_lease(self, name: str) -> Lease | None:
        found = self._get_key(lease_key(name), f"reading lease {name}")
        if found is None:
            return None
        return Lease(
            name=name,
            holder=str(found.get("holder", "")),
            expires_at=float(found["expires_at"]),
            acquired_at=float(found["acquired_at"]),
            revision=int(found["revision"]),
        )

    def _swap_lease(self, lease: Lease, *, expect_revision: int) -> bool:
        item = {
            "PK": LEASES,
            "SK": f"LEASE#{lease.name}",
            "holder": lease.holder,
            "expires_at": float(lease.expires_at),
            "acquired_at": float(lease.acquired_at),
            "revision": lease.revision,
        }
        e = Expr()
        if expect_revision == 0:
            condition = "attribute_not_exists(PK)"
        else:
            condition = f"{e.n('revision')} = {e.v(expect_revision)}"
        try:
            self._call(
                "put_item",
                f"writing lease {lease.name}",
                TableName=self.table,
                Item=dynamo_attrs(item),
                **e.params(ConditionExpression=condition),
            )
        except Refused:
            return False
        return True

    # -- placements --------------------------------------------------------------------------

    def _read_placement(self, fleet: str) -> PlacementRecord | None:
        what = f"reading the placement of fleet {fleet}"
        for _ in range(READ_TRIES):
            head = self._get_key(_placement_key(head_sk(fleet)), what)
            if head is None:
                return None
            chunks = [binary(head["document"])]
            count = int(head["parts"])
            if count > 1:
                e = Expr()
                prefix = part_sk(fleet, str(head["token"]), 0)[:-2]
                key = f"{e.n('PK')} = {e.v(PLACEMENTS)} AND begins_with({e.n('SK')}, {e.v(prefix)})"
                parts = sorted(self._items(what, e, key=key), key=lambda item: str(item["SK"]))
                if len(parts) != count - 1:
                    continue  # replaced while read: its parts are gone
                chunks += [binary(part["document"]) for part in parts]
            return PlacementRecord(
                fleet=fleet,
                revision=int(head["revision"]),
                document=json.loads(join_parts(chunks)),
                updated_at=str(head.get("updated_at", "")),
            )
        raise ConflictError(
            f"the placement of fleet {fleet} kept changing while read", hint="retry"
        )

    def _swap_placement(
        self, fleet: str, document_json: str, expect_revision: int | None
    ) -> PlacementRecord | None:
        what = f"storing the placement of fleet {fleet}"
        chunks = compress_parts(document_json)
        for _ in range(WRITE_TRIES):
            old = self._get_key(_placement_key(head_sk(fleet)), what, "revision", "token", "parts")
            found = int(old["revision"]) if old is not None else 0
            if expect_revision is not None and found != expect_revision:
                return None
            token = uuid.uuid4().hex
            for index, chunk in enumerate(chunks[1:], start=1):
                part = {"PK": PLACEMENTS, "SK": part_sk(fleet, token, index), "document": chunk}
                self._call("put_item", what, TableName=self.table, Item=dynamo_attrs(part))
            updated_at = timestamp()
            head = {
                "PK": PLACEMENTS,
                "SK": head_sk(fleet),
                "fleet": fleet,
                "revision": found + 1,
                "updated_at": updated_at,
                "token": token,
                "parts": len(chunks),
                "document": chunks[0],
            }
            e = Expr()
            condition = (
                "attribute_not_exists(PK)" if old is None else f"{e.n('revision')} = {e.v(found)}"
            )
            put = {"TableName": self.table, "Item": dynamo_attrs(head)}
            put.update(e.params(ConditionExpression=condition))
            try:
                self._transact([{"Put": put}, self._revise()], what)
            except Refused:
                self._delete_placement_parts(fleet, token, len(chunks), what)
                if expect_revision is not None:
                    return None
                continue  # an unconditional put that lost a race: read the new head, again
            if old is not None:
                self._delete_placement_parts(fleet, str(old["token"]), int(old["parts"]), what)
            return PlacementRecord(
                fleet=fleet,
                revision=found + 1,
                document=json.loads(document_json),
                updated_at=updated_at,
            )
        raise ConflictError(f"{what}: {WRITE_TRIES} concurrent writes won first", hint="retry")

    def _delete_placement_parts(self, fleet: str, token: str, count: int, what: str) -> None:
        for index in range(1, count):
            key = _placement_key(part_sk(fleet, token, index))
            self._call("delete_item", what, TableName=self.table, Key=key)
