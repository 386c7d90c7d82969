"""Library calls for serving: deploy, undeploy, invoke, status and profile.

Each call resolves what a reference means in the registry, opens the deploy target and drives the
engine (:mod:`mlops_cli.deploy.engine`) in one place, so that neither the command line nor any
other caller walks between those steps. Deployment records (the registry's typed
``DeploymentRecord``) are read here and nowhere in ``cli/``; a request goes through the target the
record names, rebuilt from it (``deploy.kinds.rebuild_target``), never by reaching into its detail.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from mlops_cli.api.outcome import OK, Outcome
from mlops_cli.errors import EXIT_FAILED, UsageError
from mlops_cli.progress import SILENT, Reporter

if TYPE_CHECKING:
    from mlops_cli.config import Settings
    from mlops_cli.deploy.base import DeploymentStatus, DeployTarget, Plan
    from mlops_cli.deploy.engine import DeployResult
    from mlops_cli.deploy.profile import ProfileResult
    from mlops_cli.registry.records import RouterHeartbeat

DEFAULT_DRAIN_S = 30.0  # the longest a deploy waits for the routers to finish with an old version
DEFAULT_LOCK_WAIT_S = 600.0  # the longest a deploy waits for another's lock on a shared target


def _open_target(
    settings: Settings,
    kind: str | None,
    fleet: Path | None,
    endpoint: Path | None,
    reporter: Reporter,
) -> DeployTarget[Any, Any]:
    from mlops_cli.deploy import open_target

    return open_target(settings, kind, fleet=fleet, endpoint=endpoint, reporter=reporter)


def _store_opener(settings: Settings) -> Callable[[str | None], Any]:
    from mlops_cli.stores import open_store

    return lambda root: open_store(root or settings.store)


def iam_policy(*, endpoint: Path, target: str | None = None) -> dict[str, Any]:
    """The least-privilege IAM policy document a deploy to ``endpoint`` needs: the
    sagemaker-mme target's, or with ``target="sagemaker-ic"`` the inference components'."""
    if target == "sagemaker-ic":
        from mlops_cli.deploy.sagemaker_ic import iam_policy_for_components

        return iam_policy_for_components(endpoint)
    from mlops_cli.deploy.sagemaker import iam_policy_for

    return iam_policy_for(endpoint)


@dataclass(frozen=True)
class Deployment:
    """What a deploy did (or, with ``dry_run``, would do)."""

    result: DeployResult
    model: str
    version: int
    target: str  # the target's id, e.g. local or triton:fleet
    dry_run: bool
    requested_drain_s: float

    @property
    def plan(self) -> Plan:
        return self.result.plan

    def to_dict(self) -> dict[str, Any]:
        return {**self.result.to_dict(), "dry_run": self.dry_run}


def deploy(
    *,
    ref: str,
    settings: Settings,
    target: str | None = None,
    fleet: Path | None = None,
    endpoint: Path | None = None,
    alias: str | None = None,
    switch: bool = True,
    device: Literal["cpu", "gpu"] | None = None,
    allow_cpu: bool = False,
    drain_s: float = DEFAULT_DRAIN_S,
    lock_wait_s: float = DEFAULT_LOCK_WAIT_S,
    dry_run: bool = False,
    reporter: Reporter = SILENT,
    on_warning: Callable[[str], None] | None = None,
) -> Deployment:
    """Serve the version ``ref`` names (``MODEL``, ``MODEL@VERSION`` or ``MODEL@ALIAS``) on a
    target, then switch ``alias`` (default: the model's default alias; none when ``switch`` is
    False) to it and retire the old version after the drain. Idempotent: an identical second
    deploy changes nothing. On a shared target (triton, sagemaker-mme, mme-local) the deploy
    holds the target's lock in the registry, waiting for it at most ``lock_wait_s`` (then a
    ConflictError naming the holder and when its lease expires, and nothing changed)."""
    from mlops_cli.deploy.engine import deploy as run_deploy
    from mlops_cli.deploy.engine import desired_state, resolve_version
    from mlops_cli.registry import open_registry

    if device not in (None, "cpu", "gpu"):
        raise UsageError(f"unknown --device {device!r}", hint="cpu or gpu")
    registry = open_registry(settings.registry)
    version = resolve_version(registry, ref)
    chosen = _open_target(settings, target, fleet, endpoint, reporter)
    desired = desired_state(
        version, _store_opener(settings), target=chosen, device=device, allow_cpu=allow_cpu
    )
    if desired.device == "cpu" and desired.spec.wants_gpu and on_warning is not None:
        on_warning(f"{desired.model} asks for a GPU; serving it on CPU (--allow-cpu)")
    moved = (alias or registry.get_model(version.model).default_alias) if switch else None
    result = run_deploy(
        registry,
        chosen,
        desired,
        alias=moved,
        dry_run=dry_run,
        drain_seconds=drain_s,
        lock_wait_s=lock_wait_s,
        reporter=reporter,
    )
    return Deployment(result, version.model, version.version, chosen.id, dry_run, drain_s)


@dataclass(frozen=True)
class Undeployment:
    plan: Plan
    model: str
    dry_run: bool

    def to_dict(self) -> dict[str, Any]:
        return {**self.plan.to_dict(), "dry_run": self.dry_run}


def undeploy(
    *,
    ref: str,
    settings: Settings,
    target: str | None = None,
    fleet: Path | None = None,
    endpoint: Path | None = None,
    lock_wait_s: float = DEFAULT_LOCK_WAIT_S,
    dry_run: bool = False,
    reporter: Reporter = SILENT,
) -> Undeployment:
    """Stop serving ``MODEL`` (every version) or ``MODEL@VERSION`` on a target and forget the
    deployment records (under the shared target's lock, as :func:`deploy`). Idempotent."""
    from mlops_cli.deploy.engine import parse_model_ref
    from mlops_cli.deploy.engine import undeploy as run_undeploy
    from mlops_cli.registry import open_registry

    model, selector = parse_model_ref(ref)
    if selector is not None and not selector.isdigit():
        raise UsageError("undeploy takes MODEL or MODEL@VERSION (a number)")
    registry = open_registry(settings.registry)
    chosen = _open_target(settings, target, fleet, endpoint, reporter)
    version = int(selector) if selector else None
    plan = run_undeploy(
        registry,
        chosen,
        model,
        version,
        dry_run=dry_run,
        lock_wait_s=lock_wait_s,
        reporter=reporter,
    )
    return Undeployment(plan, model, dry_run)


@dataclass(frozen=True)
class AnswerChunk:
    """One response (one of many when streamed): outputs by name, and when it arrived."""

    outputs: Mapping[str, Any]
    ms: float  # since the request was sent

    def to_dict(self) -> dict[str, Any]:
        return {"outputs": dict(self.outputs), "ms": self.ms}


@dataclass(frozen=True)
class Answer:
    """The answer to one request, and which version (and why) served it."""

    model: str
    version: int
    tenant: str
    source: str  # route, alias, canary, version...: why this version
    target: str
    total_ms: float
    stream: bool
    chunks: tuple[AnswerChunk, ...]

    @property
    def first_chunk_ms(self) -> float | None:
        return self.chunks[0].ms if self.chunks else None

    @property
    def outputs(self) -> dict[str, Any]:
        return dict(self.chunks[0].outputs) if self.chunks else {}

    def to_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "model": self.model,
            "version": self.version,
            "tenant": self.tenant,
            "source": self.source,
            "target": self.target,
            "total_ms": self.total_ms,
        }
        if self.stream:
            document["chunks"] = [chunk.to_dict() for chunk in self.chunks]
            document["first_chunk_ms"] = self.first_chunk_ms
        else:
            document["outputs"] = self.outputs
        return document


def invoke(
    *,
    ref: str,
    inputs: Mapping[str, Any],
    settings: Settings,
    tenant: str = "default",
    stream: bool = False,
    protocol: Literal["http", "grpc"] = "http",
    request_key: str | None = None,
    target: str | None = None,
    timeout_s: float = 60.0,
    on_chunk: Callable[[AnswerChunk], None] | None = None,
) -> Answer:
    """Send one request to the version ``tenant`` is routed to (a version or alias in ``ref``
    skips the route, never the tenant's visibility) where it is deployed (on ``target`` when
    given); ``on_chunk`` sees each streamed response as it arrives."""
    from mlops_cli.deploy.base import InvokeRequest
    from mlops_cli.deploy.engine import find_deployment, version_package
    from mlops_cli.deploy.kinds import rebuild_target
    from mlops_cli.registry import open_registry
    from mlops_cli.registry.routing import resolve_reference

    if protocol not in ("http", "grpc"):
        raise UsageError(f"unknown --protocol {protocol!r}", hint="http or grpc")
    registry = open_registry(settings.registry)
    resolution = resolve_reference(registry, ref, tenant=tenant, request_key=request_key)
    model, number = resolution.model, resolution.version
    version = registry.get_version(model, number)
    record = find_deployment(registry, model, number, target=target)
    _, _, spec = version_package(version, _store_opener(settings))
    request = InvokeRequest(
        inputs=inputs, spec=spec, stream=stream, protocol=protocol, timeout=timeout_s
    )
    started = time.monotonic()
    chunks = []
    served_by = rebuild_target(settings, record.target, [record])
    for received in served_by.invoke(record, request):
        chunk = AnswerChunk(
            dict(received.outputs), round((received.received_at - started) * 1000, 3)
        )
        chunks.append(chunk)
        if on_chunk is not None:
            on_chunk(chunk)
    total = round((time.monotonic() - started) * 1000, 3)
    return Answer(
        model,
        number,
        tenant,
        resolution.source,
        record.target,
        total,
        stream,
        tuple(chunks),
    )


@dataclass(frozen=True)
class StatusReport:
    """Every deployment as its servers see it now; exit 1 unless all are READY."""

    deployments: list[DeploymentStatus]
    routers: list[RouterHeartbeat] = field(default_factory=list)  # live ones
    registry_revision: int = 0

    @property
    def unhealthy(self) -> list[DeploymentStatus]:
        return [item for item in self.deployments if item.state != "READY"]

    @property
    def outcome(self) -> Outcome:
        return Outcome(exit_code=EXIT_FAILED) if self.unhealthy else OK

    def to_dict(self) -> dict[str, Any]:
        return {
            "deployments": [item.to_dict() for item in self.deployments],
            "routers": [router.to_dict() for router in self.routers],
            "registry_revision": self.registry_revision,
        }


def status(
    *,
    settings: Settings,
    model: str | None = None,
    fleet: Path | None = None,
    endpoint: Path | None = None,
) -> StatusReport:
    """Observe every recorded deployment (of ``model`` only, when given). Read-only: an absent
    registry means nothing is deployed, and nothing is created."""
    from mlops_cli.deploy import observe
    from mlops_cli.registry import open_registry
    from mlops_cli.registry.base import check_name

    if model is not None:
        check_name("model", model)
    registry = open_registry(settings.registry)
    if model is not None:
        registry.get_model(model)  # NotFoundError for an unknown model
    found = observe(settings, registry.list_deployments(model), fleet=fleet, endpoint=endpoint)
    if model is not None:
        found = [item for item in found if item.model == model]
    from mlops_cli.deploy.drain import STALE_AFTER_S

    routers = registry.list_heartbeats(max_age_s=STALE_AFTER_S)
    return StatusReport(found, routers, registry.registry_revision())


def profile(
    *, ref: str, settings: Settings, requests: int = 50, reporter: Reporter = SILENT
) -> ProfileResult:
    """Measure a version's resident memory and latency on the local server over ``requests``
    requests, and store both in its registry record."""
    from mlops_cli.deploy.engine import resolve_version
    from mlops_cli.deploy.local import LocalTarget
    from mlops_cli.deploy.profile import profile as run_profile
    from mlops_cli.registry import open_registry

    registry = open_registry(settings.registry)
    version = resolve_version(registry, ref)
    return run_profile(
        registry,
        version,
        _store_opener(settings),
        LocalTarget.from_settings(settings, reporter=reporter),
        requests=requests,
        reporter=reporter,
    )
