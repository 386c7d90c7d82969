"""Deploy, cut over and undeploy: the same steps for every target (see ``deploy.base``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from mlops_cli.deploy.base import (
    Action,
    DeploymentRecord,
    DeployTarget,
    Desired,
    Device,
    PlacementDetail,
    Plan,
)
from mlops_cli.deploy.drain import Drain, wait_for_routers
from mlops_cli.deploy.lease import DEFAULT_WAIT_S, Guard, Unguarded, target_lease
from mlops_cli.errors import ConflictError, NotFoundError, NotSupportedError, UsageError
from mlops_cli.packages.manifest import PackageManifest
from mlops_cli.packages.reference import PackageRef
from mlops_cli.progress import SILENT, Reporter
from mlops_cli.registry.base import Registry, VersionRecord
from mlops_cli.registry.routing import ROUTER_CACHE_TTL_S, parse_model_ref, resolve_reference
from mlops_cli.render.common import package_spec
from mlops_cli.spec.modelspec import ModelSpec
from mlops_cli.stores.base import ArtifactStore

DEFAULT_MEMORY_MB = 256.0

P = TypeVar("P", bound=Plan)
D = TypeVar("D", bound=PlacementDetail)


class GpuRequiredError(UsageError):
    """A model that asks for a GPU, sent to a target without one."""


@dataclass
class DeployResult:
    plan: Plan
    applied: bool
    alias: str | None = None
    previous_version: int | None = None
    retired: list[int] = field(default_factory=list)
    placement: PlacementDetail | None = None  # where the version is served, once applied
    drain_seconds: float = ROUTER_CACHE_TTL_S  # the bound of the drain: see effective_drain
    drain: Drain | None = None  # what the drain waited for, when old versions were retired

    @property
    def detail(self) -> Mapping[str, object]:
        """The placement as recorded in the registry (JSON), empty until applied."""
        return self.placement.to_dict() if self.placement is not None else {}

    @property
    def where(self) -> str:
        return self.placement.where if self.placement is not None else ""

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.plan.to_dict(),
            "applied": self.applied,
            "alias": self.alias,
            "previous_version": self.previous_version,
            "retired": self.retired,
            "detail": dict(self.detail),
            "drain_seconds": self.drain_seconds,
            "drain": self.drain.to_dict() if self.drain is not None else None,
        }


def resolve_version(registry: Registry, ref: str, *, tenant: str | None = None) -> VersionRecord:
    """The deployable (active) version a reference names, resolved by
    :func:`mlops_cli.registry.routing.resolve_reference` (no tenant: the operator's view, where a
    bare name means the default alias, else the latest version)."""
    resolution = resolve_reference(registry, ref, tenant=tenant)
    version = registry.get_version(resolution.model, resolution.version)
    if version.status != "active":
        raise UsageError(
            f"{version.model} version {version.version} is archived; it cannot be deployed",
            hint=f"mlops models versions {version.model} lists the active ones",
        )
    return version


def effective_drain(requested: float) -> float:
    """The longest a deploy waits between the switch and unloading old versions for the routers
    to finish with them (:mod:`mlops_cli.deploy.drain`): what was asked, but never less than a
    Router's cache TTL, the shortest drain there is."""
    return max(requested, ROUTER_CACHE_TTL_S)


def version_package(
    version: VersionRecord, open_store: Callable[[str | None], ArtifactStore]
) -> tuple[ArtifactStore, PackageManifest, ModelSpec]:
    """The store holding a version's package, its manifest and its spec (``open_store`` gets
    the store URI the package reference names, or None for the configured store)."""
    root, digest = PackageRef.parse(version.package_uri)
    store = open_store(root)
    manifest = store.get_manifest(digest)
    return store, manifest, package_spec(store, manifest)


def find_deployment(
    registry: Registry,
    model: str,
    version: int,
    *,
    target: str | None = None,
    kinds: tuple[str, ...] | None = None,
) -> DeploymentRecord:
    """The registry's record of ``model`` v``version`` deployed on ``target`` (an id such as
    ``triton:fleet`` or a kind such as ``triton``; any when None) and of one of ``kinds``."""
    for record in registry.list_deployments(model):
        if (
            record.version == version
            and (target is None or target in (record.target, record.kind))
            and (kinds is None or record.kind in kinds)
        ):
            return record
    where = f" on {target}" if target else (f" on {' or '.join(kinds)}" if kinds else "")
    raise NotFoundError(
        f"{model} v{version} is not deployed{where}", hint=f"mlops deploy {model}@{version}"
    )


def desired_state(
    version: VersionRecord,
    open_store: Callable[[str | None], ArtifactStore],
    *,
    target: DeployTarget[Any, Any],
    device: Device | None = None,
    allow_cpu: bool = False,
) -> Desired:
    """Read the version's package and decide the device, refusing a GPU model on a CPU-only
    target unless ``allow_cpu``."""
    store, manifest, spec = version_package(version, open_store)
    if spec.streaming and not target.capabilities.streaming:
        raise NotSupportedError(
            f"{version.model} streams (decoupled) and target {target.id} cannot stream"
        )
    chosen: Device = device or ("gpu" if spec.wants_gpu else "cpu")
    if chosen == "gpu" and not target.capabilities.gpu:
        if not allow_cpu:
            raise GpuRequiredError(
                f"{version.model} v{version.version} asks for a GPU and target {target.id} has none",
                hint="deploy to a GPU fleet, or pass --allow-cpu to serve it on CPU instances",
            )
        chosen = "cpu"
    return desired_from(version, store, manifest, spec, device=chosen)


def desired_from(
    version: VersionRecord,
    store: ArtifactStore,
    manifest: PackageManifest,
    spec: ModelSpec,
    *,
    device: Device,
) -> Desired:
    """The version to serve on ``device``, with its memory: measured, else declared, else the
    default."""
    memory = version.memory_mb or spec.resources.memory_mb or DEFAULT_MEMORY_MB
    return Desired(
        model=version.model,
        version=version.version,
        spec=spec,
        manifest=manifest,
        store=store,
        package_uri=version.package_uri,
        device=device,
        memory_mb=float(memory),
    )


def _target_records(
    registry: Registry, target: DeployTarget[Any, Any], model: str
) -> list[DeploymentRecord]:
    return [r for r in registry.list_deployments(model) if r.target == target.id]


def _versions_in_use(registry: Registry, model: str, *, moving: str | None = None) -> set[int]:
    """Versions that some alias (other than ``moving``), route or canary points at: those keep
    serving."""
    aliases = {a.alias: a.version for a in registry.list_aliases(model)}
    used = {version for name, version in aliases.items() if name != moving}
    for route in registry.list_routes(model=model):
        if route.version is not None:
            used.add(route.version)
        elif route.alias is not None and route.alias != moving and route.alias in aliases:
            used.add(aliases[route.alias])
        if route.canary_version is not None:
            used.add(route.canary_version)
    return used


@dataclass
class DeployPlan(Generic[P]):
    """The target's own plan (``target_plan``: its actions, then the engine's switch and
    unloads) and what the engine decided beside it."""

    target_plan: P
    records: list[DeploymentRecord]  # the target's records of the model, when planned
    applies: bool  # the target itself has work to do (else only the alias moves)
    previous: int | None  # the version the alias pointed at
    retire: list[int]  # versions unloaded after the drain


def plan_deploy(
    registry: Registry,
    target: DeployTarget[P, Any],
    desired: Desired,
    *,
    alias: str | None,
    drain_seconds: float = ROUTER_CACHE_TTL_S,
) -> DeployPlan[P]:
    """The target's plan, plus the alias switch and the versions that would be retired (after
    the effective drain of ``drain_seconds``, which the plan says)."""
    records = _target_records(registry, target, desired.model)
    plan = target.plan(desired, records)
    applies = plan.changes
    previous: int | None = None
    if alias is not None:
        try:
            previous = registry.get_alias(desired.model, alias).version
        except NotFoundError:
            previous = None
        if previous != desired.version:
            plan.actions.append(
                Action(
                    "switch",
                    desired.model,
                    desired.version,
                    detail=f"@{alias} {previous if previous is not None else '(new)'} -> {desired.version}",
                )
            )
    # Without a switch (--no-switch) the new version is deployed beside the others: a cut-over
    # retires old versions, a side-by-side deploy never does.
    used = _versions_in_use(registry, desired.model, moving=alias)
    retire = sorted(
        r.version
        for r in records
        if alias is not None and r.version != desired.version and r.version not in used
    )
    for number in retire:
        where = target.parse_detail(_record_of(records, number)).where
        plan.actions.append(
            Action(
                "unload",
                desired.model,
                number,
                where,
                "no alias or route uses it; once the routers have finished with it "
                f"(at most {effective_drain(drain_seconds):g}s)",
            )
        )
    return DeployPlan(plan, records, applies, previous, retire)


def _record_of(records: Sequence[DeploymentRecord], version: int) -> DeploymentRecord:
    return next(record for record in records if record.version == version)


def deploy(
    registry: Registry,
    target: DeployTarget[Any, Any],
    desired: Desired,
    *,
    alias: str | None,
    dry_run: bool = False,
    drain_seconds: float = 2.0,
    lock_wait_s: float = DEFAULT_WAIT_S,
    reporter: Reporter = SILENT,
) -> DeployResult:
    """Plan, then (unless ``dry_run`` or nothing changes) apply, switch ``alias``, retire
    (after :func:`effective_drain` of ``drain_seconds``). A shared target's lease
    (:mod:`mlops_cli.deploy.lease`) is held throughout, waited for at most ``lock_wait_s``."""
    if dry_run:
        return _deploy(registry, target, desired, alias, True, drain_seconds, reporter, Unguarded())
    with (
        target.lock(),
        target_lease(registry, target, wait_s=lock_wait_s, reporter=reporter) as lease,
    ):
        return _deploy(registry, target, desired, alias, False, drain_seconds, reporter, lease)


def _deploy(
    registry: Registry,
    target: DeployTarget[P, D],
    desired: Desired,
    alias: str | None,
    dry_run: bool,
    drain_seconds: float,
    reporter: Reporter,
    lease: Guard,
) -> DeployResult:
    planned = plan_deploy(registry, target, desired, alias=alias, drain_seconds=drain_seconds)
    plan, previous, retire, records = (
        planned.target_plan,
        planned.previous,
        planned.retire,
        planned.records,
    )
    drain = effective_drain(drain_seconds)
    result = DeployResult(
        plan=plan, applied=False, alias=alias, previous_version=previous, drain_seconds=drain
    )
    if dry_run or not plan.changes:
        return result
    loads = planned.applies
    detail: D
    lease.check()
    if loads:
        detail = target.apply(plan, reporter=reporter)
    else:  # served and recorded already: only the alias moves
        detail = target.parse_detail(_record_of(records, desired.version))
    try:
        lease.check()
        registry.record_deployment(
            desired.model, desired.version, target.id, detail=detail.to_dict()
        )
        if alias is not None and previous != desired.version:
            registry.set_alias(
                desired.model,
                alias,
                desired.version,
                expect_version="absent" if previous is None else previous,
            )
    except BaseException:
        if loads:
            target.retire(desired.model, desired.version, detail, reporter=reporter)
            if not any(r.version == desired.version for r in records):
                registry.remove_deployment(desired.model, desired.version, target.id)
        raise
    switched_at = time.monotonic()
    result.applied = True
    result.placement = detail
    if retire:
        reporter.note(f"draining before unloading v{', v'.join(map(str, retire))}")
        result.drain = wait_for_routers(
            registry,
            desired.model,
            retire,
            switched_at=switched_at,
            bound_s=drain,
            reporter=reporter,
        )
        for number in retire:
            lease.check()
            old = target.parse_detail(_record_of(records, number))
            target.retire(desired.model, number, old, reporter=reporter)
            registry.remove_deployment(desired.model, number, target.id)
            result.retired.append(number)
    return result


def undeploy(
    registry: Registry,
    target: DeployTarget[Any, Any],
    model: str,
    version: int | None,
    *,
    dry_run: bool = False,
    lock_wait_s: float = DEFAULT_WAIT_S,
    reporter: Reporter = SILENT,
) -> Plan:
    """Stop serving ``model`` (one version, or every version) on ``target`` (holding a shared
    target's lease, as :func:`deploy` does)."""
    records = _target_records(registry, target, model)
    if version is not None:
        records = [r for r in records if r.version == version]
    if not records:
        registry.get_model(model)  # NotFoundError for an unknown model
        which = f"{model} v{version}" if version is not None else model
        raise NotFoundError(
            f"{which} is not deployed on {target.id}", hint="mlops status shows what is deployed"
        )
    plan = Plan(target=target.id, model=model, version=version)
    for record in records:
        where = target.parse_detail(record).where
        plan.actions.append(Action("unload", model, record.version, where))
    if dry_run:
        return plan
    with (
        target.lock(),
        target_lease(registry, target, wait_s=lock_wait_s, reporter=reporter) as lease,
    ):
        _retire_all(registry, target, model, records, reporter, lease)
    return plan


def _retire_all(
    registry: Registry,
    target: DeployTarget[Any, Any],
    model: str,
    records: list[DeploymentRecord],
    reporter: Reporter,
    lease: Guard,
) -> None:
    for record in records:
        lease.check()
        target.retire(model, record.version, target.parse_detail(record), reporter=reporter)
        registry.remove_deployment(model, record.version, target.id)


__all__ = [
    "ConflictError",
    "DeployPlan",
    "DeployResult",
    "GpuRequiredError",
    "deploy",
    "desired_state",
    "effective_drain",
    "find_deployment",
    "parse_model_ref",
    "plan_deploy",
    "resolve_version",
    "undeploy",
    "version_package",
]
