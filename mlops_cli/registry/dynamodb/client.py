"""The request plumbing of the DynamoDB registry: requests and their errors, transactions,
reads, queries, the entries of transactions, the reading of a refused change's model, and the
table's creation."""

from __future__ import annotations

import random
import time
from typing import Any

from mlops_cli import aws
from mlops_cli.errors import ConflictError, MlopsError, NotFoundError, UsageError
from mlops_cli.registry.changes import (
    Change,
    ModelView,
)
from mlops_cli.registry.dynamodb.items import (
    PACKAGE_INDEX,
    REVISION_KEY,
    TABLE_NAME,
    TENANT_INDEX,
    THROTTLE_CODES,
    TRANSACT_TRIES,
    Expr,
    Refused,
    alias_record,
    dynamo_attrs,
    key_schema,
    model_record,
    pk,
    plain,
    route_record,
    table_spec,
    version_record,
    vsk,
)
from mlops_cli.registry.rules import (
    RegistryUnavailableError,
)


class TableClient:
    """Requests to DynamoDB table ``table``, the base of :class:`DynamoDBRegistry`."""

    def __init__(self, table: str) -> None:
        if not TABLE_NAME.fullmatch(table):
            hint = "3-255 characters of A-Z a-z 0-9 _ . -"
            raise UsageError(f"invalid DynamoDB table name {table!r}", hint=hint)
        self.table = table
        self.uri = f"dynamodb://{table}"

    # -- plumbing ----------------------------------------------------------------------------

    def _call(self, op: str, what: str, *, expect: frozenset[str] = frozenset(), **kw: Any) -> Any:
        """One request. Failed conditions raise :class:`Refused`, codes in ``expect`` the
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
                raise Refused([reason]) from None
            if code == "TransactionCanceledException":
                raise Refused(list(response.get("CancellationReasons") or [])) from None
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
        for attempt in range(1, TRANSACT_TRIES + 1):
            try:
                return self._call(op, what, **kw)
            except Refused as refused:
                codes = {str(r.get("Code")) for r in refused.reasons} - {"None"}
                if "ConditionalCheckFailed" in codes:
                    raise
                if codes & {"ThrottlingError", "ProvisionedThroughputExceeded"}:
                    raise self._throttled(what, attempt) from None
                if "TransactionConflict" not in codes or attempt == TRANSACT_TRIES:
                    message = f"{what}: DynamoDB cancelled the transaction ({', '.join(codes)})"
                    raise ConflictError(
                        message, hint="another change was under way; retry"
                    ) from None
                time.sleep(random.uniform(0, min(1.0, 0.02 * 2**attempt)))
        raise AssertionError("unreachable")

    def _transact(self, writes: list[dict[str, Any]], what: str) -> None:
        self._retrying("transact_write_items", what, TransactItems=writes)

    def _snapshot(self, model: str, sks: list[str], what: str) -> dict[str, dict[str, Any]]:
        """Items of one model read as one consistent snapshot (TransactGetItems), by SK."""
        gets = [{"Get": {"TableName": self.table, "Key": self._key(model, sk)}} for sk in sks]
        out = self._retrying("transact_get_items", what, TransactItems=gets)
        found = [plain(r["Item"]) for r in out.get("Responses", []) if r.get("Item")]
        return {item["SK"]: item for item in found}

    def _key(self, model: str, sk: str) -> dict[str, Any]:
        return dynamo_attrs({"PK": pk(model), "SK": sk})

    def _get(self, model: str, sk: str, what: str, *names: str) -> dict[str, Any] | None:
        return self._get_key(self._key(model, sk), what, *names)

    def _get_key(self, key: dict[str, Any], what: str, *names: str) -> dict[str, Any] | None:
        """The item at ``key`` (only the attributes ``names``, when given), read consistently."""
        e = Expr()
        projection = ", ".join(e.n(a) for a in ("PK", "SK", *names)) if names else None
        params = e.params(ProjectionExpression=projection)
        out = self._call(
            "get_item", what, TableName=self.table, Key=key, ConsistentRead=True, **params
        )
        return plain(out["Item"]) if out.get("Item") else None

    def _update_item(
        self, model: str, sk: str, e: Expr, update: str, what: str, *, new: bool = False
    ) -> dict[str, Any]:
        """UpdateItem of an existing item (else :class:`Refused`), or of a ``new`` one too;
        the item after."""
        key = self._key(model, sk)
        condition = "" if new else "attribute_exists(PK)"
        params = e.params(UpdateExpression=update, ConditionExpression=condition)
        out = self._call(
            "update_item", what, TableName=self.table, Key=key, ReturnValues="ALL_NEW", **params
        )
        return plain(out["Attributes"])

    def _items(
        self, what: str, e: Expr, *, key: str = "", where: str = "", index: str = ""
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
            found += (plain(item) for item in page.get("Items", []))
            if not page.get("LastEvaluatedKey"):
                return found
            params["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _partition(self, model: str, prefix: str, what: str) -> list[dict[str, Any]]:
        e = Expr()
        key = f"{e.n('PK')} = {e.v(pk(model))} AND begins_with({e.n('SK')}, {e.v(prefix)})"
        return self._items(what, e, key=key)

    def _write(
        self, kind: str, model: str, sk: str, e: Expr, *, update: str = "", condition: str = ""
    ) -> dict[str, Any]:
        """A TransactWriteItems entry (Update, ConditionCheck, Delete) for one item."""
        body = {"TableName": self.table, "Key": self._key(model, sk)}
        body.update(e.params(UpdateExpression=update, ConditionExpression=condition))
        if condition:
            body["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        return {kind: body}

    def _bump(
        self, model: str, *, seen: int | None = None, visible_to: str | None = None
    ) -> dict[str, Any]:
        """Add one to the model's routing revision (the model must exist; with ``seen``, only
        if the revision is still that; with ``visible_to``, only if that tenant may see it)."""
        e = Expr()
        condition = "attribute_exists(PK)"
        if seen is not None:
            condition += f" AND {e.n('routing_revision')} = {e.v(seen)}"
        if visible_to is not None:
            private = e.n("private_to")
            condition += (
                f" AND (attribute_not_exists({private}) OR size({private}) = {e.v(0)}"
                f" OR contains({private}, {e.v(visible_to)}))"
            )
        update = f"ADD {e.n('routing_revision')} {e.v(1)}"
        return self._write("Update", model, "META", e, update=update, condition=condition)

    def _revise(self) -> dict[str, Any]:
        """Add one to the registry revision: the entry every change's transaction carries."""
        e = Expr()
        body = {"TableName": self.table, "Key": dynamo_attrs(REVISION_KEY)}
        body.update(e.params(UpdateExpression=f"ADD {e.n('revision')} {e.v(1)}"))
        return {"Update": body}

    def _read_registry_revision(self) -> int:
        what = "reading the registry revision"
        found = self._get_key(dynamo_attrs(REVISION_KEY), what, "revision")
        return 0 if found is None else int(found["revision"])

    def _active(self, model: str, version: int) -> dict[str, Any]:
        e = Expr()
        condition = f"attribute_exists(PK) AND {e.n('status')} = {e.v('active')}"
        return self._write("ConditionCheck", model, vsk(version), e, condition=condition)

    def _view(self, model: str, what: str) -> ModelView:
        """The whole model, read to find out why a conditional write was refused (one query)."""
        e = Expr()
        found = self._items(what, e, key=f"{e.n('PK')} = {e.v(pk(model))}")
        by_kind: dict[str, list[dict[str, Any]]] = {}
        for item in found:
            by_kind.setdefault(item["SK"].partition("#")[0], []).append(item)
        meta = by_kind.get("META")
        versions = map(version_record, by_kind.get("VERSION", []))
        aliases = map(alias_record, by_kind.get("ALIAS", []))
        routes = map(route_record, by_kind.get("ROUTE", []))
        return ModelView(
            model=model_record(meta[0]) if meta else None,
            versions={v.version: v for v in versions},
            aliases={a.alias: a for a in aliases},
            routes={r.tenant: r for r in routes},
            deployments=[(int(d["version"]), str(d["target"])) for d in by_kind.get("DEPLOY", [])],
        )

    def _refusal(self, change: Change) -> Exception:
        """The error for ``change`` after DynamoDB refused its conditional write: what the rules
        say about the model as it is now, else a lost race."""
        try:
            change.check(self._view(change.model, change.what))
        except MlopsError as error:
            return error
        return change.lost_race()

    # -- setup -------------------------------------------------------------------------------

    def init(self) -> bool:
        from botocore.exceptions import ClientError

        in_use = frozenset({"ResourceInUseException"})
        try:
            self._call(
                "create_table", "creating the table", expect=in_use, **table_spec(self.table)
            )
            created = True
        except ClientError:
            created = False
        table = self._wait_active()
        indexes = {i["IndexName"] for i in table.get("GlobalSecondaryIndexes", [])}
        if (
            table["KeySchema"] != key_schema("PK", "SK")
            or not {PACKAGE_INDEX, TENANT_INDEX} <= indexes
        ):
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
