"""``dynamodb://table``: :class:`DynamoDBRegistry` (see the package for the item layout)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlops_cli.errors import UsageError
from mlops_cli.registry.base import Registry
from mlops_cli.registry.changes import (
    AliasChange,
    AliasDeletion,
    DeploymentChange,
    ModelView,
    RouteChange,
    RouteDeletion,
)
from mlops_cli.registry.dynamodb.coordination import CoordinationItems
from mlops_cli.registry.dynamodb.heartbeats import Heartbeats
from mlops_cli.registry.dynamodb.items import (
    TENANT_INDEX,
    Expr,
    Refused,
    alias_record,
    deployment_record,
    dynamo_attrs,
    model_record,
    pk,
    route_record,
    timestamp,
    vsk,
)
from mlops_cli.registry.dynamodb.versions import ModelsAndVersions
from mlops_cli.registry.records import (
    DEFAULT_ALIAS,
    AliasRecord,
    DeploymentRecord,
    RouteRecord,
    RoutingState,
)


class DynamoDBRegistry(ModelsAndVersions, Heartbeats, CoordinationItems, Registry):
    """The registry in DynamoDB table ``table`` (create it with :meth:`init`). Thread-safe:
    clients come from :func:`mlops_cli.aws.client`, one per thread."""

    @classmethod
    def from_uri(cls, uri: str) -> DynamoDBRegistry:
        scheme, sep, table = uri.partition("://")
        if scheme != "dynamodb" or not sep:
            raise UsageError(f"not a DynamoDB registry URI: {uri!r}", hint="dynamodb://TABLE")
        return cls(table)

    # -- aliases -----------------------------------------------------------------------------

    def _set_alias(self, change: AliasChange) -> AliasRecord:
        model, alias, version, expect = change.model, change.alias, change.version, change.expect
        e = Expr()
        condition = ""
        if expect == "absent":
            condition = "attribute_not_exists(PK)"
        elif expect is not None:
            condition = f"{e.n('version')} = {e.v(expect)}"
        point = f"SET {e.assign({'version': version, 'updated_at': timestamp()})} ADD {e.n('revision')} {e.v(1)}"
        writes = [
            self._bump(model),
            self._active(model, version),
            self._write("Update", model, f"ALIAS#{alias}", e, update=point, condition=condition),
            self._revise(),
        ]
        try:
            self._transact(writes, change.what)
        except Refused:
            raise self._refusal(change) from None
        return self.get_alias(model, alias)

    def _read_alias(self, model: str, alias: str) -> AliasRecord | None:
        found = self._get(model, f"ALIAS#{alias}", f"reading alias @{alias} of {model}")
        return None if found is None else alias_record(found)

    def _read_aliases(self, model: str) -> list[AliasRecord]:
        found = self._partition(model, "ALIAS#", f"listing aliases of {model}")
        return [alias_record(item) for item in found]

    def _delete_alias(self, change: AliasDeletion) -> None:
        model, alias, what = change.model, change.alias, change.what
        # The revision first, then the routes (see _archive).
        head = self._snapshot(model, ["META", f"ALIAS#{alias}"], what)
        current = head.get(f"ALIAS#{alias}")
        routes = map(route_record, self._partition(model, "ROUTE#", what))
        change.check(
            ModelView(
                model=model_record(head["META"]) if "META" in head else None,
                aliases={alias: alias_record(current)} if current else {},
                routes={r.tenant: r for r in routes},
            )
        )
        e = Expr()
        condition = "attribute_exists(PK)"
        if change.expect is not None:
            condition += f" AND {e.n('version')} = {e.v(change.expect)}"
        delete = self._write("Delete", model, f"ALIAS#{alias}", e, condition=condition)
        try:
            bump = self._bump(model, seen=head["META"]["routing_revision"])
            self._transact([bump, delete, self._revise()], what)
        except Refused:
            raise self._refusal(change) from None

    # -- routes ------------------------------------------------------------------------------

    def _set_route(self, change: RouteChange) -> RouteRecord:
        tenant, model, alias = change.tenant, change.model, change.alias
        expect_revision = change.expect_revision
        e = Expr()
        target = {
            "version": change.version,
            "alias": alias,
            "canary_version": change.canary_version,
        }
        extra = {"canary_percent": change.canary_percent, "updated_at": timestamp()}
        extra |= {"GSI2PK": f"TENANT#{tenant}", "GSI2SK": pk(model)}
        setting = {k: v for k, v in target.items() if v is not None} | extra
        update = f"SET {e.assign(setting)} ADD {e.n('revision')} {e.v(1)}"
        if cleared := [e.n(k) for k, v in target.items() if v is None]:
            update += f" REMOVE {', '.join(cleared)}"
        condition = ""
        if expect_revision == 0:
            condition = "attribute_not_exists(PK)"
        elif expect_revision is not None:
            condition = f"{e.n('revision')} = {e.v(expect_revision)}"
        writes = [
            self._bump(model, visible_to=tenant),
            self._write("Update", model, f"ROUTE#{tenant}", e, update=update, condition=condition),
            self._revise(),
        ]
        versions = sorted({v for v in (change.version, change.canary_version) if v is not None})
        writes += [self._active(model, v) for v in versions]
        if alias is not None:
            exists = "attribute_exists(PK)"
            writes.append(
                self._write("ConditionCheck", model, f"ALIAS#{alias}", Expr(), condition=exists)
            )
        try:
            self._transact(writes, change.what)
        except Refused:
            raise self._refusal(change) from None
        return self.get_route(tenant, model)

    def _read_route(self, tenant: str, model: str) -> RouteRecord | None:
        found = self._get(model, f"ROUTE#{tenant}", f"reading the route of {tenant} to {model}")
        return None if found is None else route_record(found)

    def _read_routes(self, *, tenant: str | None, model: str | None) -> list[RouteRecord]:
        e = Expr()
        if model is not None:
            found = self._partition(model, f"ROUTE#{tenant or ''}", f"listing routes of {model}")
        elif tenant is not None:
            key = f"{e.n('GSI2PK')} = {e.v(f'TENANT#{tenant}')}"
            found = self._items(f"listing routes of {tenant}", e, key=key, index=TENANT_INDEX)
        else:
            where = f"begins_with({e.n('GSI2PK')}, {e.v('TENANT#')})"
            found = self._items("listing routes", e, where=where, index=TENANT_INDEX)
        # ROUTE#acme is also the prefix of ROUTE#acme-2: keep the tenant asked for only.
        return [r for r in map(route_record, found) if tenant is None or r.tenant == tenant]

    def _delete_route(self, change: RouteDeletion) -> None:
        e = Expr()
        condition = "attribute_exists(PK)"
        if change.expect_revision is not None:
            condition += f" AND {e.n('revision')} = {e.v(change.expect_revision)}"
        sk = f"ROUTE#{change.tenant}"
        delete = self._write("Delete", change.model, sk, e, condition=condition)
        try:
            self._transact([self._bump(change.model), delete, self._revise()], change.what)
        except Refused:
            raise self._refusal(change) from None

    # -- resolution --------------------------------------------------------------------------

    def _read_routing_state(self, tenant: str, model: str) -> RoutingState | None:
        # One snapshot of META, the route and (speculatively) the usual default alias, so that
        # a cached state never pairs a new routing revision with an older route or alias; a
        # second read only for another alias, which can only be newer than the snapshot.
        what = f"reading the routing of {tenant} to {model}"
        items = self._snapshot(model, ["META", f"ROUTE#{tenant}", f"ALIAS#{DEFAULT_ALIAS}"], what)
        if "META" not in items:
            return None
        record = model_record(items["META"])
        route = route_record(items[f"ROUTE#{tenant}"]) if f"ROUTE#{tenant}" in items else None
        found = None  # a route to a version needs no alias
        if route is None or route.alias is not None:
            name = route.alias if route is not None and route.alias else record.default_alias
            sk = f"ALIAS#{name}"
            found = items.get(sk) if name == DEFAULT_ALIAS else self._get(model, sk, what)
        return RoutingState(model=record, route=route, alias=alias_record(found) if found else None)

    def _read_routing_revision(self, model: str) -> int | None:
        what = f"reading the routing revision of {model}"
        found = self._get(model, "META", what, "routing_revision")
        return None if found is None else int(found["routing_revision"])

    # -- deployments -------------------------------------------------------------------------

    def _record_deployment(self, change: DeploymentChange, detail: Mapping[str, Any]) -> None:
        model, version, target = change.model, change.version, change.target
        item = {"PK": pk(model), "SK": f"DEPLOY#{version:010d}#{target}", "version": version}
        item |= {"target": target, "updated_at": timestamp()}
        item["detail"] = DeploymentRecord(model, version, target, detail).detail_json()
        # The version's deploy_revision tells _archive about a deployment it did not see.
        e = Expr()
        bump = f"ADD {e.n('deploy_revision')} {e.v(1)}"
        writes = [
            {"Put": {"TableName": self.table, "Item": dynamo_attrs(item)}},
            self._write(
                "Update", model, vsk(version), e, update=bump, condition="attribute_exists(PK)"
            ),
            self._bump(model),
            self._revise(),
        ]
        try:
            self._transact(writes, change.what)
        except Refused:
            raise self._refusal(change) from None

    def _remove_deployment(self, model: str, version: int, target: str) -> None:
        what = f"removing the deployment of {model} {version} on {target}"
        e = Expr()
        sk = f"DEPLOY#{version:010d}#{target}"
        delete = self._write("Delete", model, sk, e, condition="attribute_exists(PK)")
        try:
            self._transact([delete, self._bump(model), self._revise()], what)
        except Refused:
            return  # no such record: nothing to remove, no revision moves

    def _read_deployments(self, model: str | None) -> list[DeploymentRecord]:
        if model is not None:
            found = self._partition(model, "DEPLOY#", f"listing deployments of {model}")
        else:
            e = Expr()
            where = f"begins_with({e.n('SK')}, {e.v('DEPLOY#')})"
            found = self._items("listing deployments", e, where=where)
        return [deployment_record(item) for item in found]


__all__ = ["DynamoDBRegistry"]
