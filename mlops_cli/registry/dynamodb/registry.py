"""``dynamodb://table``: :class:`DynamoDBRegistry` (see the package for the item layout)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from mlops_cli.errors import ConflictError, NotFoundError, UsageError
from mlops_cli.registry.base import (
    DEFAULT_ALIAS,
    AliasRecord,
    Registry,
    RouteRecord,
    RoutingState,
    check_name,
    check_route_args,
    check_route_visibility,
)
from mlops_cli.registry.dynamodb.items import (
    TENANT_INDEX,
    Expr,
    Refused,
    alias_record,
    deployment_dict,
    dynamo_attrs,
    model_record,
    pk,
    route_record,
    timestamp,
    vsk,
)
from mlops_cli.registry.dynamodb.versions import ModelsAndVersions


class DynamoDBRegistry(ModelsAndVersions, Registry):
    """The registry in DynamoDB table ``table`` (create it with :meth:`init`). Thread-safe:
    clients come from :func:`mlops_cli.aws.client`, one per thread."""

    @classmethod
    def from_uri(cls, uri: str) -> DynamoDBRegistry:
        scheme, sep, table = uri.partition("://")
        if scheme != "dynamodb" or not sep:
            raise UsageError(f"not a DynamoDB registry URI: {uri!r}", hint="dynamodb://TABLE")
        return cls(table)

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
        e = Expr()
        condition = ""
        if expect_version == "absent":
            condition = "attribute_not_exists(PK)"
        elif expect_version is not None:
            condition = f"{e.n('version')} = {e.v(expect_version)}"
        point = f"SET {e.assign({'version': version, 'updated_at': timestamp()})} ADD {e.n('revision')} {e.v(1)}"
        writes = [
            self._bump(model),
            self._active(model, version),
            self._write("Update", model, f"ALIAS#{alias}", e, update=point, condition=condition),
        ]
        try:
            self._transact(writes, f"setting alias @{alias} of {model}")
        except Refused as refused:
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
        return alias_record(found)

    def list_aliases(self, model: str) -> list[AliasRecord]:
        check_name("model", model)
        found = self._partition(model, "ALIAS#", f"listing aliases of {model}")
        if not found:
            self.get_model(model)
        return sorted(map(alias_record, found), key=lambda a: a.alias)

    def delete_alias(self, model: str, alias: str, *, expect_version: int | None = None) -> None:
        check_name("model", model)
        check_name("alias", alias)
        what = f"deleting alias @{alias} of {model}"
        # The revision first, then the routes (see archive_version).
        meta = self._get(model, "META", what, "routing_revision")
        if meta is None:
            raise self._missing(model)
        routes = map(route_record, self._partition(model, "ROUTE#", what))
        if users := [r.tenant for r in routes if r.alias == alias]:
            message = f"alias @{alias} of {model} is used by the routes of {', '.join(users)}"
            raise ConflictError(message, hint="point those routes elsewhere first")
        e = Expr()
        condition = "attribute_exists(PK)"
        if expect_version is not None:
            condition += f" AND {e.n('version')} = {e.v(expect_version)}"
        delete = self._write("Delete", model, f"ALIAS#{alias}", e, condition=condition)
        try:
            self._transact([self._bump(model, seen=meta["routing_revision"]), delete], what)
        except Refused as refused:
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
        e = Expr()
        target = {"version": version, "alias": alias, "canary_version": canary_version}
        extra = {"canary_percent": canary_percent, "updated_at": timestamp()}
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
        sk = f"ROUTE#{tenant}"
        writes = [
            self._bump(model, visible_to=tenant),
            self._write("Update", model, sk, e, update=update, condition=condition),
        ]
        versions = sorted({v for v in (version, canary_version) if v is not None})
        writes += [self._active(model, v) for v in versions]
        if alias is not None:
            exists = "attribute_exists(PK)"
            writes.append(
                self._write("ConditionCheck", model, f"ALIAS#{alias}", Expr(), condition=exists)
            )
        try:
            self._transact(writes, f"setting the route of {tenant} to {model}")
        except Refused as refused:
            if refused.failed(0):
                meta = refused.item(0)
                if meta is None:
                    raise self._missing(model) from None
                check_route_visibility(model_record(meta), tenant)
                raise ConflictError(
                    f"model {model} changed while routing {tenant}; try again"
                ) from None
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
        return route_record(found)

    def list_routes(
        self, *, tenant: str | None = None, model: str | None = None
    ) -> list[RouteRecord]:
        if tenant is not None:
            check_name("tenant", tenant)
        e = Expr()
        if model is not None:
            check_name("model", model)
            found = self._partition(model, f"ROUTE#{tenant or ''}", f"listing routes of {model}")
        elif tenant is not None:
            key = f"{e.n('GSI2PK')} = {e.v(f'TENANT#{tenant}')}"
            found = self._items(f"listing routes of {tenant}", e, key=key, index=TENANT_INDEX)
        else:
            where = f"begins_with({e.n('GSI2PK')}, {e.v('TENANT#')})"
            found = self._items("listing routes", e, where=where, index=TENANT_INDEX)
        routes = [r for r in map(route_record, found) if tenant is None or r.tenant == tenant]
        return sorted(routes, key=lambda r: (r.tenant, r.model))

    def delete_route(self, tenant: str, model: str, *, expect_revision: int | None = None) -> None:
        check_name("tenant", tenant)
        check_name("model", model)
        e = Expr()
        condition = "attribute_exists(PK)"
        if expect_revision is not None:
            condition += f" AND {e.n('revision')} = {e.v(expect_revision)}"
        delete = self._write("Delete", model, f"ROUTE#{tenant}", e, condition=condition)
        try:
            self._transact(
                [self._bump(model), delete], f"deleting the route of {tenant} to {model}"
            )
        except Refused as refused:
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
        record = model_record(items["META"])
        route = route_record(items[f"ROUTE#{tenant}"]) if f"ROUTE#{tenant}" in items else None
        found = None  # a route to a version needs no alias
        if route is None or route.alias is not None:
            name = route.alias if route is not None and route.alias else record.default_alias
            sk = f"ALIAS#{name}"
            found = items.get(sk) if name == DEFAULT_ALIAS else self._get(model, sk, what)
        return RoutingState(model=record, route=route, alias=alias_record(found) if found else None)

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
        item = {"PK": pk(model), "SK": f"DEPLOY#{version:010d}#{target}", "version": version}
        item |= {"target": target, "updated_at": timestamp()}
        item["detail"] = json.dumps(dict(detail), sort_keys=True, default=str)
        # The version's deploy_revision tells archive_version about a deployment it did not see.
        e = Expr()
        bump = f"ADD {e.n('deploy_revision')} {e.v(1)}"
        writes = [
            {"Put": {"TableName": self.table, "Item": dynamo_attrs(item)}},
            self._write(
                "Update", model, vsk(version), e, update=bump, condition="attribute_exists(PK)"
            ),
        ]
        try:
            self._transact(writes, f"recording the deployment of {model} {version} on {target}")
        except Refused:
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
            e = Expr()
            where = f"begins_with({e.n('SK')}, {e.v('DEPLOY#')})"
            found = self._items("listing deployments", e, where=where)
        return sorted(
            map(deployment_dict, found), key=lambda d: (d["model"], d["version"], d["target"])
        )


__all__ = ["DynamoDBRegistry"]
