"""Changes to one model, each checked against the model as a backend stored it.

A change is valid as built (its ``__post_init__`` checks names and arguments) and knows which
rules of :mod:`mlops_cli.registry.rules` decide whether it may apply; :meth:`Change.check` raises
the first one that refuses it, in a fixed order (the model exists, the tenant may see it, the
versions named exist and are active, the alias named exists, the expected version or revision
holds, nothing still uses what goes away). A backend calls ``check`` inside its atomic context
(SQLite) or after a refused conditional write (DynamoDB), so both refuse the same changes with
the same words.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from mlops_cli.errors import ConflictError, UsageError
from mlops_cli.registry.records import AliasRecord, ModelRecord, RouteRecord, VersionRecord
from mlops_cli.registry.rules import (
    Expectation,
    alias_in_use,
    alias_missing,
    alias_moved,
    changed_meanwhile,
    check_name,
    check_route_args,
    check_route_visibility,
    model_missing,
    route_missing,
    route_moved,
    version_archived,
    version_in_use,
    version_missing,
)


@dataclass(frozen=True)
class ModelView:
    """One model as a backend read it inside a change's atomic context. It holds at least the
    items the change names (a backend may hold more): the versions and aliases by number and name,
    the routes by tenant, and the deployments as (version, target)."""

    model: ModelRecord | None
    versions: Mapping[int, VersionRecord] = field(default_factory=dict)
    aliases: Mapping[str, AliasRecord] = field(default_factory=dict)
    routes: Mapping[str, RouteRecord] = field(default_factory=dict)
    deployments: Sequence[tuple[int, str]] = ()

    def existing_model(self, name: str) -> ModelRecord:
        if self.model is None:
            raise model_missing(name)
        return self.model

    def existing_version(self, model: str, version: int) -> VersionRecord:
        self.existing_model(model)
        if (record := self.versions.get(version)) is None:
            raise version_missing(model, version)
        return record

    def active_version(self, model: str, version: int) -> VersionRecord:
        record = self.existing_version(model, version)
        if record.status != "active":
            raise version_archived(model, version)
        return record


class Change:
    """A write to one model, valid as built; :meth:`check` raises the error that refuses it."""

    model: str

    @property
    def what(self) -> str:
        raise NotImplementedError

    def check(self, view: ModelView) -> None:
        raise NotImplementedError

    def lost_race(self) -> ConflictError:
        """The answer when a conditional write was refused but the view shows nothing wrong."""
        return changed_meanwhile(self.what)


@dataclass(frozen=True)
class AliasChange(Change):
    model: str
    alias: str
    version: int
    expect: Expectation = None

    def __post_init__(self) -> None:
        check_name("model", self.model)
        check_name("alias", self.alias)

    @property
    def what(self) -> str:
        return f"setting alias @{self.alias} of {self.model}"

    def check(self, view: ModelView) -> None:
        view.active_version(self.model, self.version)
        current = view.aliases.get(self.alias)
        found = None if current is None else current.version
        if self.expect is not None and (found if found is not None else "absent") != self.expect:
            raise alias_moved(self.model, self.alias, found, self.expect, action="changed")


@dataclass(frozen=True)
class AliasDeletion(Change):
    model: str
    alias: str
    expect: int | None = None

    def __post_init__(self) -> None:
        check_name("model", self.model)
        check_name("alias", self.alias)

    @property
    def what(self) -> str:
        return f"deleting alias @{self.alias} of {self.model}"

    def check(self, view: ModelView) -> None:
        view.existing_model(self.model)
        if (current := view.aliases.get(self.alias)) is None:
            raise alias_missing(self.model, self.alias)
        if self.expect is not None and current.version != self.expect:
            raise alias_moved(
                self.model, self.alias, current.version, self.expect, action="deleted"
            )
        if tenants := sorted(t for t, r in view.routes.items() if r.alias == self.alias):
            raise alias_in_use(self.model, self.alias, tenants)


@dataclass(frozen=True)
class RouteChange(Change):
    tenant: str
    model: str
    version: int | None = None
    alias: str | None = None
    canary_version: int | None = None
    canary_percent: float = 0.0
    expect_revision: int | None = None  # 0: the route must not exist yet

    def __post_init__(self) -> None:
        check_name("tenant", self.tenant)
        check_name("model", self.model)
        check_route_args(self.version, self.alias, self.canary_version, self.canary_percent)

    @property
    def what(self) -> str:
        return f"setting the route of {self.tenant} to {self.model}"

    def check(self, view: ModelView) -> None:
        check_route_visibility(view.existing_model(self.model), self.tenant)
        if self.version is not None:
            view.active_version(self.model, self.version)
        elif self.alias is not None and self.alias not in view.aliases:
            raise alias_missing(self.model, self.alias)
        if self.canary_version is not None:
            view.active_version(self.model, self.canary_version)
        current = view.routes.get(self.tenant)
        found = None if current is None else current.revision
        if self.expect_revision is not None and (found or 0) != self.expect_revision:
            raise route_moved(
                self.tenant, self.model, found, self.expect_revision, action="changed"
            )


@dataclass(frozen=True)
class RouteDeletion(Change):
    tenant: str
    model: str
    expect_revision: int | None = None

    def __post_init__(self) -> None:
        check_name("tenant", self.tenant)
        check_name("model", self.model)

    @property
    def what(self) -> str:
        return f"deleting the route of {self.tenant} to {self.model}"

    def check(self, view: ModelView) -> None:
        view.existing_model(self.model)
        if (current := view.routes.get(self.tenant)) is None:
            raise route_missing(self.tenant, self.model)
        if self.expect_revision is not None and current.revision != self.expect_revision:
            raise route_moved(
                self.tenant, self.model, current.revision, self.expect_revision, action="deleted"
            )


@dataclass(frozen=True)
class Archive(Change):
    """Archive a version: refused while an alias, a route (or its canary) or a deployment uses it;
    a version already archived stays as it is (nothing is written)."""

    model: str
    version: int

    def __post_init__(self) -> None:
        check_name("model", self.model)

    @property
    def what(self) -> str:
        return f"archiving version {self.version} of {self.model}"

    def done(self, view: ModelView) -> bool:
        """True when the version is archived already (after :meth:`check`)."""
        return view.existing_version(self.model, self.version).status == "archived"

    def check(self, view: ModelView) -> None:
        if self.done(view):
            return
        aliases = sorted(a.alias for a in view.aliases.values() if a.version == self.version)
        users = [f"alias @{alias}" for alias in aliases]
        users += [
            f"the route of {tenant}"
            for tenant, route in sorted(view.routes.items())
            if self.version in (route.version, route.canary_version)
        ]
        users += [f"a deployment on {t}" for v, t in sorted(view.deployments) if v == self.version]
        if users:
            raise version_in_use(self.model, self.version, users)


@dataclass(frozen=True)
class DeploymentChange(Change):
    """Record that ``target`` serves a version (archived or not: undeploying must stay possible)."""

    model: str
    version: int
    target: str

    def __post_init__(self) -> None:
        check_name("model", self.model)
        if not self.target:
            raise UsageError("a deployment needs a target name")

    @property
    def what(self) -> str:
        return f"recording the deployment of {self.model} {self.version} on {self.target}"

    def check(self, view: ModelView) -> None:
        view.existing_version(self.model, self.version)


__all__ = [
    "AliasChange",
    "AliasDeletion",
    "Archive",
    "Change",
    "DeploymentChange",
    "ModelView",
    "RouteChange",
    "RouteDeletion",
]
