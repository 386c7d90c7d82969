"""``dynamodb://table``: the registry in one DynamoDB table.

Item layout (keys are strings; numbers in keys are padded to 10 digits so that they sort)::

    PK            SK                         attributes
    MODEL#<name>  META                       description, default_alias, private_to, tags,
                                             created_at, next_version (the last number handed
                                             out), routing_revision; GSI2 MODELS / MODEL#<name>
    MODEL#<name>  VERSION#<version>          the version's fields, lineage as JSON, status,
                                             deploy_revision; GSI1 PKG#<digest> / MODEL#<name>#<version>
    MODEL#<name>  PKG#<digest>               version: the first one registered from that package
    MODEL#<name>  ALIAS#<alias>              version, revision, updated_at
    MODEL#<name>  ROUTE#<tenant>             version or alias, canary_version, canary_percent,
                                             revision, updated_at; GSI2 TENANT#<tenant> / MODEL#<name>
    MODEL#<name>  DEPLOY#<version>#<target>  version, target, detail as JSON, updated_at

Indexes (projection ALL): ``by-package`` (GSI1) answers ``find_versions_by_digest``; ``by-tenant``
(GSI2) answers ``list_routes(tenant=...)`` and, through the ``MODELS`` partition that the META
items share, ``list_models`` without a table scan.

Every write that resolution depends on bumps META's ``routing_revision`` in the same transaction.
Checks that must read first (archive, delete alias) make their write conditional on the
revisions they read, so a change that slips in between fails the write instead of being missed.
"""

from __future__ import annotations

import json
import math
import random
import re
import time
from collections.abc import Mapping
from dataclasses import fields, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal, TypeVar

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from mlops_cli import aws
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
)

TABLE_NAME = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")
PACKAGE_INDEX, TENANT_INDEX = "by-package", "by-tenant"
MODELS = "MODELS"  # the GSI2 partition of every META item
THROTTLE_CODES = frozenset(
    {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"}
)
_TRIES = 3  # of a transaction that another transaction got in the way of
_SER, _DE = TypeSerializer(), TypeDeserializer()
R = TypeVar("R")


def _pk(model: str) -> str:
    return f"MODEL#{model}"


def _vsk(version: int) -> str:
    return f"VERSION#{version:010d}"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _dynamo(value: Any) -> Any:
    """A plain value as a DynamoDB attribute value (floats travel as Decimal)."""
    return _SER.serialize(Decimal(repr(value)) if isinstance(value, float) else value)


def _attrs(data: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _dynamo(value) for key, value in data.items() if value is not None}


def _plain(item: Mapping[str, Any]) -> dict[str, Any]:
    """A DynamoDB item as plain values; top-level numbers as int when whole, else float."""
    out = {key: _DE.deserialize(value) for key, value in item.items()}
    for key, value in out.items():
        if isinstance(value, Decimal):
            out[key] = int(value) if value == value.to_integral_value() else float(value)
    return out


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _record(cls: type[R], item: Mapping[str, Any], **known: Any) -> R:
    """``cls`` from the item's attributes of the same names, and ``known``."""
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in item.items() if k in names and k not in known}, **known)


def _model(d: Mapping[str, Any]) -> ModelRecord:
    name = d["PK"].removeprefix("MODEL#")
    private = tuple(d.get("private_to", ()))
    return _record(ModelRecord, d, name=name, private_to=private, latest_version=d["next_version"])


def _version(d: Mapping[str, Any]) -> VersionRecord:
    return _record(
        VersionRecord,
        d,
        model=d["PK"].removeprefix("MODEL#"),
        lineage=json.loads(d.get("lineage", "{}")),
        memory_mb=_float(d.get("memory_mb")),
        latency_ms=_float(d.get("latency_ms")),
    )


def _alias(d: Mapping[str, Any]) -> AliasRecord:
    return _record(
        AliasRecord, d, model=d["PK"].removeprefix("MODEL#"), alias=d["SK"].removeprefix("ALIAS#")
    )


def _route(d: Mapping[str, Any]) -> RouteRecord:
    model, tenant = d["PK"].removeprefix("MODEL#"), d["SK"].removeprefix("ROUTE#")
    percent = float(d.get("canary_percent", 0))
    return _record(RouteRecord, d, tenant=tenant, model=model, canary_percent=percent)


def _deployment(d: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("version", "target", "updated_at")
    detail = json.loads(d.get("detail", "{}"))
    return {"model": d["PK"].removeprefix("MODEL#"), **{k: d[k] for k in keys}, "detail": detail}


def _keys(hash_key: str, range_key: str) -> list[dict[str, str]]:
    return [
        {"AttributeName": hash_key, "KeyType": "HASH"},
        {"AttributeName": range_key, "KeyType": "RANGE"},
    ]


def _table_spec(table: str) -> dict[str, Any]:
    indexes = {PACKAGE_INDEX: ("GSI1PK", "GSI1SK"), TENANT_INDEX: ("GSI2PK", "GSI2SK")}
    names = ["PK", "SK", *(name for pair in indexes.values() for name in pair)]
    return {
        "TableName": table,
        "AttributeDefinitions": [{"AttributeName": n, "AttributeType": "S"} for n in names],
        "KeySchema": _keys("PK", "SK"),
        "GlobalSecondaryIndexes": [
            {"IndexName": index, "KeySchema": _keys(*pair), "Projection": {"ProjectionType": "ALL"}}
            for index, pair in indexes.items()
        ],
        "BillingMode": "PAY_PER_REQUEST",
        "SSESpecification": {"Enabled": True},
    }


class _Expr:
    """Placeholders for one request's expressions: attribute ``x`` is always ``#x``."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}

    def n(self, attr: str) -> str:
        self.names[f"#{attr}"] = attr
        return f"#{attr}"

    def v(self, value: Any) -> str:
        key = f":v{len(self.values)}"
        self.values[key] = _dynamo(value)
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


class _Refused(Exception):
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
        return _plain(raw) if raw else None


class DynamoDBRegistry(Registry):
    """The registry in DynamoDB table ``table`` (create it with :meth:`init`). Thread-safe:
    clients come from :func:`mlops_cli.aws.client`, one per thread."""

    def __init__(self, table: str) -> None:
        if not TABLE_NAME.fullmatch(table):
            hint = "3-255 characters of A-Z a-z 0-9 _ . -"
            raise UsageError(f"invalid DynamoDB table name {table!r}", hint=hint)
        self.table = table
        self.uri = f"dynamodb://{table}"

    @classmethod
    def from_uri(cls, uri: str) -> DynamoDBRegistry:
        scheme, sep, table = uri.partition("://")
        if scheme != "dynamodb" or not sep:
            raise UsageError(f"not a DynamoDB registry URI: {uri!r}", hint="dynamodb://TABLE")
        return cls(table)

    # -- plumbing ----------------------------------------------------------------------------

    def _call(self, op: str, what: str, *, expect: frozenset[str] = frozenset(), **kw: Any) -> Any:
        """One request. Failed conditions raise :class:`_Refused`, codes in ``expect`` the
        ClientError itself, and everything else the matching mlops error."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(aws.client("dynamodb"), op)(**kw)
        except ClientError as exc:
            response = exc.response
            code = str(response.get("Error", {}).get("Code", ""))
            if code in expect:
                raise
            if code == "ConditionalCheckFailedException":
                reason = {"Code": "ConditionalCheckFailed", "Item": response.get("Item")}
                raise _Refused([reason]) from None
            if code == "TransactionCanceledException":
                raise _Refused(list(response.get("CancellationReasons") or [])) from None
            if code in THROTTLE_CODES:
                attempts = response.get("ResponseMetadata", {}).get("RetryAttempts", 0) + 1
                raise self._throttled(what, attempts) from None
            if code == "ResourceNotFoundException":
                message = f"registry table {self.table} does not exist ({what})"
                hint = f"mlops registry init --registry {self.uri}"
                raise NotFoundError(message, hint=hint) from None
            raise aws.translate(exc, what=f"{what} ({self.uri})") from None
        except BotoCoreError as exc:
            error = aws.translate(exc, what=f"{what} ({self.uri})")
            if isinstance(error, aws.EndpointUnreachableError):
                raise RegistryUnavailableError(error.message, hint=error.hint) from None
            raise error from None

    def _throttled(self, what: str, attempts: int) -> RegistryUnavailableError:
        return RegistryUnavailableError(
            f"DynamoDB kept throttling {what} on table {self.table} after {attempts} attempts",
            hint="retry later; if it recurs, raise the table's or the account's request limits",
        )

    def _retrying(self, op: str, what: str, **kw: Any) -> Any:
        """A transaction, tried again briefly when another transaction held one of its items."""
        for attempt in range(1, _TRIES + 1):
            try:
                return self._call(op, what, **kw)
            except _Refused as refused:
                codes = {str(r.get("Code")) for r in refused.reasons} - {"None"}
                if "ConditionalCheckFailed" in codes:
                    raise
                if codes & {"ThrottlingError", "ProvisionedThroughputExceeded"}:
                    raise self._throttled(what, attempt) from None
                if "TransactionConflict" not in codes or attempt == _TRIES:
                    message = f"{what}: DynamoDB cancelled the transaction ({', '.join(codes)})"
                    raise ConflictError(
                        message, hint="another change was under way; retry"
                    ) from None
                time.sleep(0.05 * 2**attempt)
        raise AssertionError("unreachable")

    def _transact(self, writes: list[dict[str, Any]], what: str) -> None:
        self._retrying("transact_write_items", what, TransactItems=writes)

    def _snapshot(self, model: str, sks: list[str], what: str) -> dict[str, dict[str, Any]]:
        """Items of one model read as one consistent snapshot (TransactGetItems), by SK."""
        gets = [{"Get": {"TableName": self.table, "Key": self._key(model, sk)}} for sk in sks]
        out = self._retrying("transact_get_items", what, TransactItems=gets)
        found = [_plain(r["Item"]) for r in out.get("Responses", []) if r.get("Item")]
        return {item["SK"]: item for item in found}

    def _key(self, model: str, sk: str) -> dict[str, Any]:
        return _attrs({"PK": _pk(model), "SK": sk})

    def _get(self, model: str, sk: str, what: str, *names: str) -> dict[str, Any] | None:
        e = _Expr()
        projection = ", ".join(e.n(a) for a in ("PK", "SK", *names)) if names else None
        key = self._key(model, sk)
        params = e.params(ProjectionExpression=projection)
        out = self._call(
            "get_item", what, TableName=self.table, Key=key, ConsistentRead=True, **params
        )
        return _plain(out["Item"]) if out.get("Item") else None

    def _update_item(
        self, model: str, sk: str, e: _Expr, update: str, what: str, *, new: bool = False
    ) -> dict[str, Any]:
        """UpdateItem of an existing item (else :class:`_Refused`), or of a ``new`` one too;
        the item after."""
        key = self._key(model, sk)
        condition = "" if new else "attribute_exists(PK)"
        params = e.params(UpdateExpression=update, ConditionExpression=condition)
        out = self._call(
            "update_item", what, TableName=self.table, Key=key, ReturnValues="ALL_NEW", **params
        )
        return _plain(out["Attributes"])

    def _items(
        self, what: str, e: _Expr, *, key: str = "", where: str = "", index: str = ""
    ) -> list[dict[str, Any]]:
        """Query (with a ``key`` condition) or Scan, of the table or an index, every page."""
        params: dict[str, Any] = {"TableName": self.table}
        params.update(e.params(KeyConditionExpression=key, FilterExpression=where))
        if index:
            params["IndexName"] = index
        elif key:
            params["ConsistentRead"] = True
        found: list[dict[str, Any]] = []
        while True:
            page = self._call("query" if key else "scan", what, **params)
            found += (_plain(item) for item in page.get("Items", []))
            if not page.get("LastEvaluatedKey"):
                return found
            params["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _partition(self, model: str, prefix: str, what: str) -> list[dict[str, Any]]:
        e = _Expr()
        key = f"{e.n('PK')} = {e.v(_pk(model))} AND begins_with({e.n('SK')}, {e.v(prefix)})"
        return self._items(what, e, key=key)

    def _write(
        self, kind: str, model: str, sk: str, e: _Expr, *, update: str = "", condition: str = ""
    ) -> dict[str, Any]:
        """A TransactWriteItems entry (Update, ConditionCheck, Delete) for one item."""
        body = {"TableName": self.table, "Key": self._key(model, sk)}
        body.update(e.params(UpdateExpression=update, ConditionExpression=condition))
        if condition:
            body["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        return {kind: body}

    def _bump(self, model: str, *, seen: int | None = None) -> dict[str, Any]:
        """Add one to the model's routing revision (the model must exist; with ``seen``, only
        if the revision is still that)."""
        e = _Expr()
        condition = "attribute_exists(PK)"
        if seen is not None:
            condition += f" AND {e.n('routing_revision')} = {e.v(seen)}"
        update = f"ADD {e.n('routing_revision')} {e.v(1)}"
        return self._write("Update", model, "META", e, update=update, condition=condition)

    def _active(self, model: str, version: int) -> dict[str, Any]:
        e = _Expr()
        condition = f"attribute_exists(PK) AND {e.n('status')} = {e.v('active')}"
        return self._write("ConditionCheck", model, _vsk(version), e, condition=condition)

    def _unusable(self, refused: _Refused, index: int, model: str, version: int) -> Exception:
        """The error for a failed :meth:`_active` check at ``index``."""
        if refused.item(index) is None:
            return NotFoundError(f"version {version} of {model} does not exist")
        return NotFoundError(
            f"version {version} of {model} is archived", hint="use an active version"
        )

    def _missing(self, model: str) -> NotFoundError:
        return NotFoundError(f"model {model} does not exist", hint="mlops models list")

    # -- setup -------------------------------------------------------------------------------

    def init(self) -> bool:
        from botocore.exceptions import ClientError

        in_use = frozenset({"ResourceInUseException"})
        try:
            self._call(
                "create_table", "creating the table", expect=in_use, **_table_spec(self.table)
            )
            created = True
        except ClientError:
            created = False
        table = self._wait_active()
        indexes = {i["IndexName"] for i in table.get("GlobalSecondaryIndexes", [])}
        if table["KeySchema"] != _keys("PK", "SK") or not {PACKAGE_INDEX, TENANT_INDEX} <= indexes:
            message = f"table {self.table} exists but is not an mlops registry table"
            raise ConflictError(message, hint="point the registry at another table name")
        # Right after creation DynamoDB may answer that backups are not available yet.
        busy = frozenset({"ContinuousBackupsUnavailableException"})
        pitr = {"PointInTimeRecoveryEnabled": True}
        for _ in range(60):
            try:
                self._call(
                    "update_continuous_backups",
                    "enabling point-in-time recovery",
                    expect=busy,
                    TableName=self.table,
                    PointInTimeRecoverySpecification=pitr,
                )
                return created
            except ClientError:
                time.sleep(2)
        raise RegistryUnavailableError(f"could not enable point-in-time recovery of {self.table}")

    def _wait_active(self, timeout: float = 600.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            out = self._call("describe_table", "reading the table", TableName=self.table)
            table: dict[str, Any] = out["Table"]
            indexes = table.get("GlobalSecondaryIndexes", [])
            states = [table["TableStatus"], *(i["IndexStatus"] for i in indexes)]
            if all(state == "ACTIVE" for state in states):
                return table
            if time.monotonic() > deadline:
                raise RegistryUnavailableError(f"table {self.table} is still {'/'.join(states)}")
            time.sleep(2)

    # -- models and versions -----------------------------------------------------------------

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
        marker = f"PKG#{new.package_digest}"
        what = f"registering a version of {model}"
        for attempt in range(REGISTER_ATTEMPTS):
            # 1. One consistent read: the model (its counter) and the package's marker.
            seen = self._snapshot(model, ["META", marker], what)
            if not new_version and marker in seen:
                return Registered(
                    self.get_version(model, int(seen[marker]["version"])), created=False
                )
            meta = seen.get("META")
            number = int(meta["next_version"]) + 1 if meta else 1
            # 2. One transaction: the counter moves from number-1 to number (compare-and-swap),
            # the version is put where no version is, the marker and the alias follow.
            now = _now()
            writes = [
                self._count_version(
                    model, meta, number, now, model_description, bump=alias is not None
                ),
                self._put_version(model, new, number, now, marker),
                self._mark_package(model, marker, number, new_version=new_version),
            ]
            if alias is not None:
                a = _Expr()
                point = f"SET {a.assign({'version': number, 'updated_at': now})} ADD {a.n('revision')} {a.v(1)}"
                writes.append(self._write("Update", model, f"ALIAS#{alias}", a, update=point))
            try:
                self._transact(writes, what)
            except _Refused as refused:
                if refused.failed(0):  # another registration took this number: read again
                    time.sleep(random.uniform(0, 0.005 * (attempt + 1)))
                    continue
                if refused.failed(2) and (existing := self._registered(model, marker)) is not None:
                    return Registered(
                        existing, created=False
                    )  # a concurrent register, same package
                raise ConflictError(
                    f"version {number} of {model} was not written", hint="retry"
                ) from None
            return Registered(self._version_of(new, model, number, now), created=True)
        raise ConflictError(
            f"could not number a version of {model}: {REGISTER_ATTEMPTS} concurrent attempts lost",
            hint="retry",
        )

    def _count_version(
        self,
        model: str,
        meta: dict[str, Any] | None,
        number: int,
        now: str,
        description: str,
        *,
        bump: bool,
    ) -> dict[str, Any]:
        """The counter's compare-and-swap from ``number - 1`` to ``number`` (creating the model
        when it has no counter yet), bumping the routing revision when an alias moves too."""
        e = _Expr()
        if meta is None:
            item = {
                "PK": _pk(model),
                "SK": "META",
                "created_at": now,
                "description": description,
                "tags": {},
                "default_alias": DEFAULT_ALIAS,
                "private_to": [],
                "GSI2PK": MODELS,
                "GSI2SK": _pk(model),
                "next_version": number,
                "routing_revision": 1 if bump else 0,
            }
            body = {
                "TableName": self.table,
                "Item": _attrs(item),
                "ConditionExpression": "attribute_not_exists(PK)",
            }
            return {"Put": body}
        update = f"SET {e.n('next_version')} = {e.v(number)}"
        if bump:
            update += f" ADD {e.n('routing_revision')} {e.v(1)}"
        condition = f"{e.n('next_version')} = {e.v(number - 1)}"
        return self._write("Update", model, "META", e, update=update, condition=condition)

    def _version_of(self, new: NewVersion, model: str, number: int, now: str) -> VersionRecord:
        lineage = json.loads(json.dumps(dict(new.lineage), sort_keys=True, default=str))
        return _record(
            VersionRecord,
            vars(new),
            model=model,
            version=number,
            created_at=now,
            source=dict(new.source),
            lineage=lineage,
            tags=dict(new.tags),
        )

    def _put_version(
        self, model: str, new: NewVersion, number: int, now: str, marker: str
    ) -> dict[str, Any]:
        record = self._version_of(new, model, number, now)
        item = {**record.to_dict(), "PK": _pk(model), "SK": _vsk(number)}
        item["lineage"] = json.dumps(dict(record.lineage), sort_keys=True, default=str)
        item |= {"GSI1PK": marker, "GSI1SK": f"{_pk(model)}#{number:010d}"}
        del item["model"]
        body = {
            "TableName": self.table,
            "Item": _attrs(item),
            "ConditionExpression": "attribute_not_exists(PK)",
        }
        return {"Put": body}

    def _mark_package(
        self, model: str, marker: str, number: int, *, new_version: bool
    ) -> dict[str, Any]:
        m = _Expr()  # the marker keeps naming the first version registered from the package
        keep = f"SET {m.n('version')} = if_not_exists({m.n('version')}, {m.v(number)})"
        condition = "" if new_version else "attribute_not_exists(PK)"
        return self._write("Update", model, marker, m, update=keep, condition=condition)

    def _registered(self, model: str, marker: str) -> VersionRecord | None:
        found = self._get(model, marker, f"looking up a package of {model}")
        return None if found is None else self.get_version(model, found["version"])

    def get_model(self, model: str) -> ModelRecord:
        check_name("model", model)
        found = self._get(model, "META", f"reading model {model}")
        if found is None:
            raise self._missing(model)
        return _model(found)

    def list_models(self) -> list[ModelRecord]:
        e = _Expr()
        key = f"{e.n('GSI2PK')} = {e.v(MODELS)}"
        found = self._items("listing models", e, key=key, index=TENANT_INDEX)
        return sorted(map(_model, found), key=lambda m: m.name)

    def update_model(
        self,
        model: str,
        *,
        description: str | None = None,
        default_alias: str | None = None,
        private_to: tuple[str, ...] | None = None,
    ) -> ModelRecord:
        check_name("model", model)
        if default_alias is not None:
            check_name("alias", default_alias)
        for tenant in private_to or ():
            check_name("tenant", tenant)
        tenants = None if private_to is None else sorted(set(private_to))
        settings = {
            "description": description,
            "default_alias": default_alias,
            "private_to": tenants,
        }
        changes = {key: value for key, value in settings.items() if value is not None}
        e = _Expr()
        update = f"ADD {e.n('routing_revision')} {e.v(1)}"
        if changes:
            update = f"SET {e.assign(changes)} {update}"
        try:
            return _model(self._update_item(model, "META", e, update, f"updating model {model}"))
        except _Refused:
            raise self._missing(model) from None

    def get_version(self, model: str, version: int) -> VersionRecord:
        check_name("model", model)
        found = self._get(model, _vsk(version), f"reading version {version} of {model}")
        if found is None:
            self.get_model(model)
            hint = f"mlops models versions {model}"
            raise NotFoundError(f"version {version} of {model} does not exist", hint=hint)
        return _version(found)

    def list_versions(self, model: str) -> list[VersionRecord]:
        check_name("model", model)
        found = self._partition(model, "VERSION#", f"listing versions of {model}")
        if not found:
            self.get_model(model)
        return sorted(map(_version, found), key=lambda v: v.version)

    def find_versions_by_digest(self, package_digest: str) -> list[VersionRecord]:
        e = _Expr()
        key = f"{e.n('GSI1PK')} = {e.v(f'PKG#{package_digest}')}"
        found = self._items("finding versions by package", e, key=key, index=PACKAGE_INDEX)
        return sorted(map(_version, found), key=lambda v: (v.model, v.version))

    def archive_version(self, model: str, version: int) -> VersionRecord:
        check_name("model", model)
        what = f"archiving version {version} of {model}"
        # The revisions first, then the users: a user added after this read changes one of the
        # revisions, and the conditional write below fails instead of archiving under it.
        head = self._snapshot(model, ["META", _vsk(version)], what)
        if "META" not in head:
            raise self._missing(model)
        if (current := head.get(_vsk(version))) is None:
            raise NotFoundError(f"version {version} of {model} does not exist")
        if current["status"] == "archived":
            return _version(current)
        aliases = map(_alias, self._partition(model, "ALIAS#", what))
        routes = map(_route, self._partition(model, "ROUTE#", what))
        users = [f"alias @{a.alias}" for a in aliases if a.version == version]
        users += [
            f"the route of {r.tenant}" for r in routes if version in (r.version, r.canary_version)
        ]
        users += [
            f"a deployment on {d['target']}"
            for d in self._partition(model, f"DEPLOY#{version:010d}#", what)
        ]
        if users:
            hint = "point those aliases and routes at another version, and undeploy it, first"
            raise ConflictError(
                f"version {version} of {model} is in use by {', '.join(users)}", hint=hint
            )
        e, m = _Expr(), _Expr()
        deploys = e.n("deploy_revision")
        condition = f"{e.n('status')} = {e.v('active')} AND (attribute_not_exists({deploys})"
        condition += f" OR {deploys} = {e.v(current.get('deploy_revision', 0))})"
        unchanged = f"{m.n('routing_revision')} = {m.v(head['META']['routing_revision'])}"
        archive = f"SET {e.assign({'status': 'archived'})}"
        writes = [
            self._write("Update", model, _vsk(version), e, update=archive, condition=condition),
            self._write("ConditionCheck", model, "META", m, condition=unchanged),
        ]
        try:
            self._transact(writes, what)
        except _Refused:
            raise ConflictError(f"{what}: the model changed meanwhile", hint="retry") from None
        return replace(_version(current), status="archived")

    def set_version_metrics(
        self, model: str, version: int, *, memory_mb: float | None, latency_ms: float | None
    ) -> VersionRecord:
        check_name("model", model)
        metrics = {"memory_mb": memory_mb, "latency_ms": latency_ms}
        measured = {key: value for key, value in metrics.items() if value is not None}
        for key, value in measured.items():
            if not (math.isfinite(value) and value >= 0):
                raise UsageError(f"{key} must be a finite number >= 0, not {value}")
        if not measured:  # None leaves a metric as it is
            return self.get_version(model, version)
        e = _Expr()
        what = f"storing metrics of version {version} of {model}"
        try:
            return _version(
                self._update_item(model, _vsk(version), e, f"SET {e.assign(measured)}", what)
            )
        except _Refused:
            self.get_model(model)
            raise NotFoundError(f"version {version} of {model} does not exist") from None

    # -- aliases -----------------------------------------------------------------------------

    def set_alias(
        self,
        model: str,
        alias: str,
        version: int,
        *,
        expect_version: int | Literal["absent"] | None = None,
    ) -> AliasRecord:
        check_name("model", model)
        check_name("alias", alias)
        e = _Expr()
        condition = ""
        if expect_version == "absent":
            condition = "attribute_not_exists(PK)"
        elif expect_version is not None:
            condition = f"{e.n('version')} = {e.v(expect_version)}"
        point = f"SET {e.assign({'version': version, 'updated_at': _now()})} ADD {e.n('revision')} {e.v(1)}"
        writes = [
            self._bump(model),
            self._active(model, version),
            self._write("Update", model, f"ALIAS#{alias}", e, update=point, condition=condition),
        ]
        try:
            self._transact(writes, f"setting alias @{alias} of {model}")
        except _Refused as refused:
            if refused.failed(0):
                raise self._missing(model) from None
            if refused.failed(1):
                raise self._unusable(refused, 1, model, version) from None
            now = refused.item(2)
            found = f"points at version {now['version']}" if now else "does not exist"
            wanted = "to be absent" if expect_version == "absent" else f"version {expect_version}"
            message = f"alias @{alias} of {model} {found}; expected {wanted}"
            raise ConflictError(message, hint="read it again and retry") from None
        return self.get_alias(model, alias)

    def get_alias(self, model: str, alias: str) -> AliasRecord:
        check_name("model", model)
        check_name("alias", alias)
        found = self._get(model, f"ALIAS#{alias}", f"reading alias @{alias} of {model}")
        if found is None:
            self.get_model(model)
            hint = f"mlops alias set {model} {alias} VERSION"
            raise NotFoundError(f"alias @{alias} of {model} does not exist", hint=hint)
        return _alias(found)

    def list_aliases(self, model: str) -> list[AliasRecord]:
        check_name("model", model)
        found = self._partition(model, "ALIAS#", f"listing aliases of {model}")
        if not found:
            self.get_model(model)
        return sorted(map(_alias, found), key=lambda a: a.alias)

    def delete_alias(self, model: str, alias: str, *, expect_version: int | None = None) -> None:
        check_name("model", model)
        check_name("alias", alias)
        what = f"deleting alias @{alias} of {model}"
        # The revision first, then the routes (see archive_version).
        meta = self._get(model, "META", what, "routing_revision")
        if meta is None:
            raise self._missing(model)
        routes = map(_route, self._partition(model, "ROUTE#", what))
        if users := [r.tenant for r in routes if r.alias == alias]:
            message = f"alias @{alias} of {model} is used by the routes of {', '.join(users)}"
            raise ConflictError(message, hint="point those routes elsewhere first")
        e = _Expr()
        condition = "attribute_exists(PK)"
        if expect_version is not None:
            condition += f" AND {e.n('version')} = {e.v(expect_version)}"
        delete = self._write("Delete", model, f"ALIAS#{alias}", e, condition=condition)
        try:
            self._transact([self._bump(model, seen=meta["routing_revision"]), delete], what)
        except _Refused as refused:
            if not refused.failed(1):
                raise ConflictError(f"{what}: the model changed meanwhile", hint="retry") from None
            if (now := refused.item(1)) is None:
                raise NotFoundError(f"alias @{alias} of {model} does not exist") from None
            message = f"alias @{alias} of {model} points at version {now['version']}; expected {expect_version}"
            raise ConflictError(message, hint="read it again and retry") from None

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
        check_name("model", model)
        check_route_args(version, alias, canary_version, canary_percent)
        e = _Expr()
        target = {"version": version, "alias": alias, "canary_version": canary_version}
        extra = {"canary_percent": canary_percent, "updated_at": _now()}
        extra |= {"GSI2PK": f"TENANT#{tenant}", "GSI2SK": _pk(model)}
        setting = {k: v for k, v in target.items() if v is not None} | extra
        update = f"SET {e.assign(setting)} ADD {e.n('revision')} {e.v(1)}"
        if cleared := [e.n(k) for k, v in target.items() if v is None]:
            update += f" REMOVE {', '.join(cleared)}"
        condition = ""
        if expect_revision == 0:
            condition = "attribute_not_exists(PK)"
        elif expect_revision is not None:
            condition = f"{e.n('revision')} = {e.v(expect_revision)}"
        sk = f"ROUTE#{tenant}"
        writes = [
            self._bump(model),
            self._write("Update", model, sk, e, update=update, condition=condition),
        ]
        versions = sorted({v for v in (version, canary_version) if v is not None})
        writes += [self._active(model, v) for v in versions]
        if alias is not None:
            exists = "attribute_exists(PK)"
            writes.append(
                self._write("ConditionCheck", model, f"ALIAS#{alias}", _Expr(), condition=exists)
            )
        try:
            self._transact(writes, f"setting the route of {tenant} to {model}")
        except _Refused as refused:
            if refused.failed(0):
                raise self._missing(model) from None
            for index, number in enumerate(versions, start=2):
                if refused.failed(index):
                    raise self._unusable(refused, index, model, number) from None
            if alias is not None and refused.failed(len(writes) - 1):
                raise NotFoundError(f"alias @{alias} of {model} does not exist") from None
            now = refused.item(1)
            found = f"is at revision {now['revision']}" if now else "does not exist"
            message = (
                f"the route of {tenant} to {model} {found}; expected revision {expect_revision}"
            )
            raise ConflictError(message, hint="read it again and retry") from None
        return self.get_route(tenant, model)

    def get_route(self, tenant: str, model: str) -> RouteRecord:
        check_name("tenant", tenant)
        check_name("model", model)
        found = self._get(model, f"ROUTE#{tenant}", f"reading the route of {tenant} to {model}")
        if found is None:
            hint = f"mlops route set {tenant} {model} VERSION"
            raise NotFoundError(f"tenant {tenant} has no route to {model}", hint=hint)
        return _route(found)

    def list_routes(
        self, *, tenant: str | None = None, model: str | None = None
    ) -> list[RouteRecord]:
        if tenant is not None:
            check_name("tenant", tenant)
        e = _Expr()
        if model is not None:
            check_name("model", model)
            found = self._partition(model, f"ROUTE#{tenant or ''}", f"listing routes of {model}")
        elif tenant is not None:
            key = f"{e.n('GSI2PK')} = {e.v(f'TENANT#{tenant}')}"
            found = self._items(f"listing routes of {tenant}", e, key=key, index=TENANT_INDEX)
        else:
            where = f"begins_with({e.n('GSI2PK')}, {e.v('TENANT#')})"
            found = self._items("listing routes", e, where=where, index=TENANT_INDEX)
        routes = [r for r in map(_route, found) if tenant is None or r.tenant == tenant]
        return sorted(routes, key=lambda r: (r.tenant, r.model))

    def delete_route(self, tenant: str, model: str, *, expect_revision: int | None = None) -> None:
        check_name("tenant", tenant)
        check_name("model", model)
        e = _Expr()
        condition = "attribute_exists(PK)"
        if expect_revision is not None:
            condition += f" AND {e.n('revision')} = {e.v(expect_revision)}"
        delete = self._write("Delete", model, f"ROUTE#{tenant}", e, condition=condition)
        try:
            self._transact(
                [self._bump(model), delete], f"deleting the route of {tenant} to {model}"
            )
        except _Refused as refused:
            if (now := refused.item(1)) is None:
                raise NotFoundError(f"tenant {tenant} has no route to {model}") from None
            found = f"is at revision {now['revision']}; expected {expect_revision}"
            message = f"the route of {tenant} to {model} {found}"
            raise ConflictError(message, hint="read it again and retry") from None

    # -- resolution --------------------------------------------------------------------------

    def routing_state(self, tenant: str, model: str) -> RoutingState:
        check_name("tenant", tenant)
        check_name("model", model)
        # One snapshot of META, the route and (speculatively) the usual default alias, so that
        # a cached state never pairs a new routing revision with an older route or alias; a
        # second read only for another alias, which can only be newer than the snapshot.
        what = f"reading the routing of {tenant} to {model}"
        items = self._snapshot(model, ["META", f"ROUTE#{tenant}", f"ALIAS#{DEFAULT_ALIAS}"], what)
        if "META" not in items:
            raise self._missing(model)
        record = _model(items["META"])
        route = _route(items[f"ROUTE#{tenant}"]) if f"ROUTE#{tenant}" in items else None
        found = None  # a route to a version needs no alias
        if route is None or route.alias is not None:
            name = route.alias if route is not None and route.alias else record.default_alias
            sk = f"ALIAS#{name}"
            found = items.get(sk) if name == DEFAULT_ALIAS else self._get(model, sk, what)
        return RoutingState(model=record, route=route, alias=_alias(found) if found else None)

    def routing_revision(self, model: str) -> int:
        check_name("model", model)
        found = self._get(
            model, "META", f"reading the routing revision of {model}", "routing_revision"
        )
        if found is None:
            raise self._missing(model)
        return int(found["routing_revision"])

    # -- deployments -------------------------------------------------------------------------

    def record_deployment(
        self, model: str, version: int, target: str, *, detail: Mapping[str, Any]
    ) -> None:
        check_name("model", model)
        if not target:
            raise UsageError("a deployment needs a target name")
        item = {"PK": _pk(model), "SK": f"DEPLOY#{version:010d}#{target}", "version": version}
        item |= {"target": target, "updated_at": _now()}
        item["detail"] = json.dumps(dict(detail), sort_keys=True, default=str)
        # The version's deploy_revision tells archive_version about a deployment it did not see.
        e = _Expr()
        bump = f"ADD {e.n('deploy_revision')} {e.v(1)}"
        writes = [
            {"Put": {"TableName": self.table, "Item": _attrs(item)}},
            self._write(
                "Update", model, _vsk(version), e, update=bump, condition="attribute_exists(PK)"
            ),
        ]
        try:
            self._transact(writes, f"recording the deployment of {model} {version} on {target}")
        except _Refused:
            self.get_model(model)
            raise NotFoundError(f"version {version} of {model} does not exist") from None

    def remove_deployment(self, model: str, version: int, target: str) -> None:
        check_name("model", model)
        key = self._key(model, f"DEPLOY#{version:010d}#{target}")
        what = f"removing the deployment of {model} {version} on {target}"
        self._call("delete_item", what, TableName=self.table, Key=key)

    def list_deployments(self, model: str | None = None) -> list[dict[str, Any]]:
        if model is not None:
            check_name("model", model)
            found = self._partition(model, "DEPLOY#", f"listing deployments of {model}")
        else:
            e = _Expr()
            where = f"begins_with({e.n('SK')}, {e.v('DEPLOY#')})"
            found = self._items("listing deployments", e, where=where)
        return sorted(
            map(_deployment, found), key=lambda d: (d["model"], d["version"], d["target"])
        )


__all__ = ["DynamoDBRegistry"]
