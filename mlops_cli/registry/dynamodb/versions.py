"""Models and versions in the DynamoDB registry (see the package for the item layout)."""

from __future__ import annotations

import json
import random
import time
from dataclasses import replace
from typing import Any

from mlops_cli.errors import ConflictError
from mlops_cli.registry.changes import (
    Archive,
    ModelView,
)
from mlops_cli.registry.dynamodb.client import TableClient
from mlops_cli.registry.dynamodb.items import (
    MODELS,
    PACKAGE_INDEX,
    REGISTER_ATTEMPTS,
    TENANT_INDEX,
    Expr,
    Refused,
    alias_record,
    build_record,
    dynamo_attrs,
    model_record,
    pk,
    route_record,
    timestamp,
    version_record,
    vsk,
)
from mlops_cli.registry.records import (
    DEFAULT_ALIAS,
    ModelRecord,
    NewVersion,
    Registered,
    VersionRecord,
)
from mlops_cli.registry.rules import (
    ModelUpdate,
    VersionMetrics,
    changed_meanwhile,
    version_missing,
)


class ModelsAndVersions(TableClient):
    """The models-and-versions part of :class:`DynamoDBRegistry`."""

    # -- models and versions -----------------------------------------------------------------

    def _register(
        self,
        model: str,
        new: NewVersion,
        *,
        new_version: bool,
        alias: str | None,
        model_description: str,
    ) -> Registered:
        marker = f"PKG#{new.package_digest}"
        what = f"registering a version of {model}"
        for attempt in range(REGISTER_ATTEMPTS):
            # 1. One consistent read: the model (its counter) and the package's marker.
            seen = self._snapshot(model, ["META", marker], what)
            if not new_version and marker in seen:
                marked = self._marked_version(model, int(seen[marker]["version"]))
                return Registered(marked, created=False)
            meta = seen.get("META")
            number = int(meta["next_version"]) + 1 if meta else 1
            # 2. One transaction: the counter moves from number-1 to number (compare-and-swap),
            # the version is put where no version is, the marker and the alias follow.
            now = timestamp()
            writes = [
                self._count_version(
                    model, meta, number, now, model_description, bump=alias is not None
                ),
                self._put_version(model, new, number, now, marker),
                self._mark_package(model, marker, number, new_version=new_version),
            ]
            if alias is not None:
                a = Expr()
                point = f"SET {a.assign({'version': number, 'updated_at': now})} ADD {a.n('revision')} {a.v(1)}"
                writes.append(self._write("Update", model, f"ALIAS#{alias}", a, update=point))
            writes.append(self._revise())
            try:
                self._transact(writes, what)
            except Refused as refused:
                if refused.failed(0):  # another registration took this number: read again
                    time.sleep(random.uniform(0, 0.005 * (attempt + 1)))
                    continue
                if refused.failed(2) and (existing := self._registered(model, marker)) is not None:
                    return Registered(
                        existing, created=False
                    )  # a concurrent register, same package
                raise changed_meanwhile(f"writing version {number} of {model}") from None
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
        e = Expr()
        if meta is None:
            item = {
                "PK": pk(model),
                "SK": "META",
                "created_at": now,
                "description": description,
                "tags": {},
                "default_alias": DEFAULT_ALIAS,
                "private_to": [],
                "GSI2PK": MODELS,
                "GSI2SK": pk(model),
                "next_version": number,
                "routing_revision": 1 if bump else 0,
            }
            body = {
                "TableName": self.table,
                "Item": dynamo_attrs(item),
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
        return build_record(
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
        item = {**record.to_dict(), "PK": pk(model), "SK": vsk(number)}
        item["lineage"] = json.dumps(dict(record.lineage), sort_keys=True, default=str)
        item |= {"GSI1PK": marker, "GSI1SK": f"{pk(model)}#{number:010d}"}
        del item["model"]
        body = {
            "TableName": self.table,
            "Item": dynamo_attrs(item),
            "ConditionExpression": "attribute_not_exists(PK)",
        }
        return {"Put": body}

    def _mark_package(
        self, model: str, marker: str, number: int, *, new_version: bool
    ) -> dict[str, Any]:
        m = Expr()  # the marker keeps naming the first version registered from the package
        keep = f"SET {m.n('version')} = if_not_exists({m.n('version')}, {m.v(number)})"
        condition = "" if new_version else "attribute_not_exists(PK)"
        return self._write("Update", model, marker, m, update=keep, condition=condition)

    def _registered(self, model: str, marker: str) -> VersionRecord | None:
        found = self._get(model, marker, f"looking up a package of {model}")
        return None if found is None else self._marked_version(model, int(found["version"]))

    def _marked_version(self, model: str, number: int) -> VersionRecord:
        """The version a package marker names (written in the same transaction as the marker)."""
        if (found := self._read_version(model, number)) is None:
            raise version_missing(model, number)
        return found

    def _read_model(self, model: str) -> ModelRecord | None:
        found = self._get(model, "META", f"reading model {model}")
        return None if found is None else model_record(found)

    def _read_models(self) -> list[ModelRecord]:
        e = Expr()
        key = f"{e.n('GSI2PK')} = {e.v(MODELS)}"
        return [
            model_record(item)
            for item in self._items("listing models", e, key=key, index=TENANT_INDEX)
        ]

    def _update_model(self, model: str, update: ModelUpdate) -> ModelRecord | None:
        settings = {
            "description": update.description,
            "default_alias": update.default_alias,
            "private_to": None if update.private_to is None else list(update.private_to),
        }
        changes = {key: value for key, value in settings.items() if value is not None}
        e = Expr()
        revise = f"ADD {e.n('routing_revision')} {e.v(1)}"
        update_expression = f"SET {e.assign(changes)} {revise}" if changes else revise
        what = f"updating model {model}"
        exists = "attribute_exists(PK)"
        meta = self._write("Update", model, "META", e, update=update_expression, condition=exists)
        try:
            self._transact([meta, self._revise()], what)
        except Refused:
            return None
        # A transaction returns no values: the model as read right after (a consistent read).
        return self._read_model(model)

    def _read_version(self, model: str, version: int) -> VersionRecord | None:
        found = self._get(model, vsk(version), f"reading version {version} of {model}")
        return None if found is None else version_record(found)

    def _read_versions(self, model: str) -> list[VersionRecord]:
        found = self._partition(model, "VERSION#", f"listing versions of {model}")
        return [version_record(item) for item in found]

    def _read_versions_by_digest(self, package_digest: str) -> list[VersionRecord]:
        e = Expr()
        key = f"{e.n('GSI1PK')} = {e.v(f'PKG#{package_digest}')}"
        found = self._items("finding versions by package", e, key=key, index=PACKAGE_INDEX)
        return [version_record(item) for item in found]

    def _archive(self, change: Archive) -> VersionRecord:
        model, version, what = change.model, change.version, change.what
        # The revisions first, then the users: a user added after this read changes one of the
        # revisions, and the conditional write below fails instead of archiving under it.
        head = self._snapshot(model, ["META", vsk(version)], what)
        current = head.get(vsk(version))
        view = ModelView(
            model=model_record(head["META"]) if "META" in head else None,
            versions={version: version_record(current)} if current else {},
            aliases={a.alias: a for a in map(alias_record, self._partition(model, "ALIAS#", what))},
            routes={r.tenant: r for r in map(route_record, self._partition(model, "ROUTE#", what))},
            deployments=[
                (version, str(d["target"]))
                for d in self._partition(model, f"DEPLOY#{version:010d}#", what)
            ],
        )
        change.check(view)
        if current is None or change.done(view):
            return view.existing_version(model, version)
        e, m = Expr(), Expr()
        deploys = e.n("deploy_revision")
        condition = f"{e.n('status')} = {e.v('active')} AND (attribute_not_exists({deploys})"
        condition += f" OR {deploys} = {e.v(current.get('deploy_revision', 0))})"
        unchanged = f"{m.n('routing_revision')} = {m.v(head['META']['routing_revision'])}"
        archive = f"SET {e.assign({'status': 'archived'})}"
        writes = [
            self._write("Update", model, vsk(version), e, update=archive, condition=condition),
            self._write("ConditionCheck", model, "META", m, condition=unchanged),
            self._revise(),
        ]
        try:
            self._transact(writes, what)
        except Refused:
            raise self._refusal(change) from None
        return replace(version_record(current), status="archived")

    def _set_metrics(
        self, model: str, version: int, metrics: VersionMetrics
    ) -> VersionRecord | None:
        if not (measured := metrics.measured()):  # None leaves a metric as it is
            return self._read_version(model, version)
        e = Expr()
        what = f"storing metrics of version {version} of {model}"
        try:
            return version_record(
                self._update_item(model, vsk(version), e, f"SET {e.assign(measured)}", what)
            )
        except Refused:
            return None
