"""The DynamoDB registry's items: keys, conversions to and from records, the table's layout,
request expressions, and the refusal of a conditional write. Nothing here calls AWS."""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Mapping
from dataclasses import fields
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from mlops_cli.registry.base import (
    AliasRecord,
    DeploymentRecord,
    ModelRecord,
    RouteRecord,
    VersionRecord,
)

TABLE_NAME = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")
PACKAGE_INDEX, TENANT_INDEX = "by-package", "by-tenant"
MODELS = "MODELS"  # the GSI2 partition of every META item
REVISION_KEY = {"PK": "REGISTRY", "SK": "REVISION"}  # the registry revision's counter item
ROUTERS = "ROUTERS"  # the partition of the router heartbeats
LEASES = "LEASES"  # the partition of the leases
PLACEMENTS = "PLACEMENTS"  # the partition of the fleets' placement documents
PART_BYTES = 300_000  # of compressed JSON per item, well under the 400 KB item limit
THROTTLE_CODES = frozenset(
    {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"}
)
# Tries of a transaction that another transaction got in the way of. Every change's transaction
# also updates the registry revision's one item, so concurrent changes of different models can
# meet there; they are retried with jittered backoff (at most about 3 s in all).
TRANSACT_TRIES = 8
_SER, _DE = TypeSerializer(), TypeDeserializer()
R = TypeVar("R")


def pk(model: str) -> str:
    return f"MODEL#{model}"


def vsk(version: int) -> str:
    return f"VERSION#{version:010d}"


def timestamp() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def dynamo_value(value: Any) -> Any:
    """A plain value as a DynamoDB attribute value (floats travel as Decimal)."""
    return _SER.serialize(Decimal(repr(value)) if isinstance(value, float) else value)


def dynamo_attrs(data: Mapping[str, Any]) -> dict[str, Any]:
    return {key: dynamo_value(value) for key, value in data.items() if value is not None}


def plain(item: Mapping[str, Any]) -> dict[str, Any]:
    """A DynamoDB item as plain values; top-level numbers as int when whole, else float."""
    out = {key: _DE.deserialize(value) for key, value in item.items()}
    for key, value in out.items():
        if isinstance(value, Decimal):
            out[key] = int(value) if value == value.to_integral_value() else float(value)
    return out


def compress_parts(text: str) -> list[bytes]:
    """``text`` zlib-compressed and cut into parts of :data:`PART_BYTES` (at least one), for a
    value that may not fit one item."""
    data = zlib.compress(text.encode())
    return [data[i : i + PART_BYTES] for i in range(0, len(data), PART_BYTES)] or [b""]


def join_parts(parts: list[bytes]) -> str:
    """The text :func:`compress_parts` cut up."""
    return zlib.decompress(b"".join(parts)).decode()


def binary(value: Any) -> bytes:
    """A Binary attribute as read (boto3 wraps it in ``Binary``) as bytes."""
    return bytes(getattr(value, "value", value))


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def build_record(cls: type[R], item: Mapping[str, Any], **known: Any) -> R:
    """``cls`` from the item's attributes of the same names, and ``known``."""
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in item.items() if k in names and k not in known}, **known)


def model_record(d: Mapping[str, Any]) -> ModelRecord:
    name = d["PK"].removeprefix("MODEL#")
    private = tuple(d.get("private_to", ()))
    return build_record(
        ModelRecord, d, name=name, private_to=private, latest_version=d["next_version"]
    )


def version_record(d: Mapping[str, Any]) -> VersionRecord:
    return build_record(
        VersionRecord,
        d,
        model=d["PK"].removeprefix("MODEL#"),
        lineage=json.loads(d.get("lineage", "{}")),
        memory_mb=_float(d.get("memory_mb")),
        latency_ms=_float(d.get("latency_ms")),
        gpu_memory_mb=_float(d.get("gpu_memory_mb")),
    )


def alias_record(d: Mapping[str, Any]) -> AliasRecord:
    return build_record(
        AliasRecord, d, model=d["PK"].removeprefix("MODEL#"), alias=d["SK"].removeprefix("ALIAS#")
    )


def route_record(d: Mapping[str, Any]) -> RouteRecord:
    model, tenant = d["PK"].removeprefix("MODEL#"), d["SK"].removeprefix("ROUTE#")
    percent = float(d.get("canary_percent", 0))
    return build_record(RouteRecord, d, tenant=tenant, model=model, canary_percent=percent)


def deployment_record(d: Mapping[str, Any]) -> DeploymentRecord:
    keys = ("version", "target", "updated_at", "detail")
    return DeploymentRecord.from_dict(
        {"model": d["PK"].removeprefix("MODEL#")} | {k: d.get(k) for k in keys}
    )


def key_schema(hash_key: str, range_key: str) -> list[dict[str, str]]:
    return [
        {"AttributeName": hash_key, "KeyType": "HASH"},
        {"AttributeName": range_key, "KeyType": "RANGE"},
    ]


def table_spec(table: str) -> dict[str, Any]:
    indexes = {PACKAGE_INDEX: ("GSI1PK", "GSI1SK"), TENANT_INDEX: ("GSI2PK", "GSI2SK")}
    names = ["PK", "SK", *(name for pair in indexes.values() for name in pair)]
    return {
        "TableName": table,
        "AttributeDefinitions": [{"AttributeName": n, "AttributeType": "S"} for n in names],
        "KeySchema": key_schema("PK", "SK"),
        "GlobalSecondaryIndexes": [
            {
                "IndexName": index,
                "KeySchema": key_schema(*pair),
                "Projection": {"ProjectionType": "ALL"},
            }
            for index, pair in indexes.items()
        ],
        "BillingMode": "PAY_PER_REQUEST",
        "SSESpecification": {"Enabled": True},
    }


class Expr:
    """Placeholders for one request's expressions: attribute ``x`` is always ``#x``."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}

    def n(self, attr: str) -> str:
        self.names[f"#{attr}"] = attr
        return f"#{attr}"

    def v(self, value: Any) -> str:
        key = f":v{len(self.values)}"
        self.values[key] = dynamo_value(value)
        return key

    def assign(self, data: Mapping[str, Any]) -> str:
        return ", ".join(f"{self.n(key)} = {self.v(value)}" for key, value in data.items())

    def params(self, **expressions: str | None) -> dict[str, Any]:
        out: dict[str, Any] = {key: text for key, text in expressions.items() if text}
        if self.names:
            out["ExpressionAttributeNames"] = dict(self.names)
        if self.values:
            out["ExpressionAttributeValues"] = dict(self.values)
        return out


REGISTER_ATTEMPTS = 64  # compare-and-swap rounds for one version number under contention


class Refused(Exception):
    """A condition failed or a transaction was cancelled: one reason per item written (``Code``,
    and ``Item``, the item as it is, where ReturnValuesOnConditionCheckFailure asked for it)."""

    def __init__(self, reasons: list[dict[str, Any]]) -> None:
        super().__init__("refused")
        self.reasons = reasons

    def failed(self, index: int) -> bool:
        reason = self.reasons[index] if index < len(self.reasons) else {}
        return reason.get("Code") == "ConditionalCheckFailed"

    def item(self, index: int) -> dict[str, Any] | None:
        raw = self.reasons[index].get("Item") if index < len(self.reasons) else None
        return plain(raw) if raw else None
