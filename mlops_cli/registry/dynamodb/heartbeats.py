"""Router heartbeats in the DynamoDB registry (see the package for the item layout).

A heartbeat's in-flight map can hold 10,000 entries, more than one item (400 KB) can take in the
worst case, so it is stored as zlib-compressed JSON cut into parts of
:data:`~mlops_cli.registry.dynamodb.items.PART_BYTES`: the head item ``ROUTERS`` /
``ROUTER#<id>`` carries the other fields, the first part, ``parts`` (how many in all) and
``token`` (which write the parts belong to); each further part is an item
``ROUTER#<id>#PART#<token>#<n>``. Almost every heartbeat fits the head alone and is one PutItem;
a longer one is one transaction of the head and its parts. Either way the parts a replaced head
named are deleted afterwards: no head names that token again, so they are unreachable already.

All heartbeats are one partition read with one consistent Query (``#`` sorts below every
character of a router id, so a router's parts follow its head). A Query is not a snapshot: a
head whose parts it did not find was replaced while it read, and the Query is repeated.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

from mlops_cli.errors import ConflictError
from mlops_cli.registry.dynamodb.client import TableClient
from mlops_cli.registry.dynamodb.items import (
    ROUTERS,
    Expr,
    binary,
    compress_parts,
    dynamo_attrs,
    join_parts,
    plain,
)
from mlops_cli.registry.records import RouterHeartbeat

READ_TRIES = 3  # Queries of the heartbeats before a torn read is reported


def head_sk(router_id: str) -> str:
    return f"ROUTER#{router_id}"


def part_sk(router_id: str, token: str, index: int) -> str:
    return f"ROUTER#{router_id}#PART#{token}#{index:02d}"


def encode_in_flight(in_flight: Mapping[str, int]) -> list[bytes]:
    """The in-flight map as compressed JSON, cut into parts (at least one)."""
    return compress_parts(json.dumps(dict(in_flight), separators=(",", ":")))


def decode_in_flight(parts: list[bytes]) -> dict[str, int]:
    decoded: dict[str, int] = json.loads(join_parts(parts))
    return decoded


def assemble(items: list[dict[str, Any]]) -> list[RouterHeartbeat] | None:
    """The heartbeats in one read of the partition; None when a head's parts are missing."""
    heads: list[dict[str, Any]] = []
    parts: dict[tuple[str, str, int], bytes] = {}
    for item in items:
        router_id, _, rest = item["SK"].removeprefix("ROUTER#").partition("#")
        if not rest:
            heads.append(item)
            continue
        _, token, index = rest.split("#")
        parts[(router_id, token, int(index))] = binary(item["in_flight"])
    found = []
    for head in heads:
        router_id, token = head["router_id"], head["token"]
        chunks = [binary(head["in_flight"])]
        for index in range(1, int(head["parts"])):
            if (chunk := parts.get((router_id, token, index))) is None:
                return None
            chunks.append(chunk)
        found.append(
            RouterHeartbeat(
                router_id=router_id,
                applied_revision=int(head["applied_revision"]),
                in_flight=decode_in_flight(chunks),
                at=float(head["at"]),
                address=str(head.get("address", "")),
                started_at=float(head.get("started_at", 0)),
            )
        )
    return found


class Heartbeats(TableClient):
    """The heartbeat part of :class:`~mlops_cli.registry.dynamodb.DynamoDBRegistry`."""

    def _write_heartbeat(self, heartbeat: RouterHeartbeat) -> None:
        router_id = heartbeat.router_id
        what = f"recording the heartbeat of router {router_id}"
        chunks = encode_in_flight(heartbeat.in_flight)
        token = uuid.uuid4().hex
        head = {
            "PK": ROUTERS,
            "SK": head_sk(router_id),
            "router_id": router_id,
            "applied_revision": heartbeat.applied_revision,
            "at": float(heartbeat.at),
            "address": heartbeat.address,
            "started_at": float(heartbeat.started_at),
            "token": token,
            "parts": len(chunks),
            "in_flight": chunks[0],
        }
        if len(chunks) == 1:
            out = self._call(
                "put_item",
                what,
                TableName=self.table,
                Item=dynamo_attrs(head),
                ReturnValues="ALL_OLD",
            )
            old = plain(out["Attributes"]) if out.get("Attributes") else None
        else:
            old = self._get_key(self._router_key(head_sk(router_id)), what, "token", "parts")
            puts = [head] + [
                {"PK": ROUTERS, "SK": part_sk(router_id, token, n), "in_flight": chunk}
                for n, chunk in enumerate(chunks[1:], start=1)
            ]
            writes = [{"Put": {"TableName": self.table, "Item": dynamo_attrs(p)}} for p in puts]
            self._transact(writes, what)
        if old is not None:  # the replaced head's parts, reachable no more
            self._delete_parts(router_id, str(old["token"]), range(1, int(old["parts"])), what)

    def _read_heartbeats(self) -> list[RouterHeartbeat]:
        for _ in range(READ_TRIES):
            e = Expr()
            items = self._items("listing router heartbeats", e, key=f"{e.n('PK')} = {e.v(ROUTERS)}")
            if (found := assemble(items)) is not None:
                return found
        raise ConflictError("router heartbeats kept changing while read", hint="retry")

    def _delete_heartbeat(self, router_id: str) -> None:
        what = f"removing the heartbeat of router {router_id}"
        self._call(
            "delete_item", what, TableName=self.table, Key=self._router_key(head_sk(router_id))
        )
        e = Expr()  # then every part left, whatever write it belonged to
        key = f"{e.n('PK')} = {e.v(ROUTERS)} AND begins_with({e.n('SK')}, {e.v(head_sk(router_id) + '#')})"
        for item in self._items(what, e, key=key):
            self._call("delete_item", what, TableName=self.table, Key=self._router_key(item["SK"]))

    def _delete_parts(self, router_id: str, token: str, indexes: range, what: str) -> None:
        for index in indexes:
            key = self._router_key(part_sk(router_id, token, index))
            self._call("delete_item", what, TableName=self.table, Key=key)

    def _router_key(self, sk: str) -> dict[str, Any]:
        return dynamo_attrs({"PK": ROUTERS, "SK": sk})
