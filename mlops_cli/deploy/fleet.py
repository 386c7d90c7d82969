"""Triton targets: a fleet of servers sharing one model repository (and, as a fleet of one, the
embedded local server).

The repository is a folder every server reads (a shared path) or an ``s3://bucket/prefix`` the
servers were started on. A server marked ``dynamic`` loads models on demand (the router loads
them on their first request and evicts idle ones to make room, :mod:`mlops_cli.router.ondemand`):
a deploy there checks that the version fits the server's whole memory, loads it once (so that
its warmup proves it answers), unloads it again and records the server's capacity for the
router. Deploying a version writes ``<repository>/<model>-v<version>/`` and loads
it, in explicit model-control mode, on the server :func:`mlops_cli.deploy.placement.place` picks
from a snapshot of the fleet taken once per plan. What a server serves is read from the server
itself (repository index, and the memory each loaded model's config carries), never assumed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_cli.deploy.base import (
    Action,
    Capabilities,
    Chunk,
    DeploymentRecord,
    DeploymentStatus,
    DeployTarget,
    Desired,
    InvokeRequest,
    Plan,
)
from mlops_cli.deploy.engine import DEFAULT_MEMORY_MB
from mlops_cli.deploy.fleet_file import Fleet, FleetServer, load_fleet
from mlops_cli.deploy.placement import ModelNeeds, PlacementRefusal, ServerSnapshot, place
from mlops_cli.deploy.repository import Repository
from mlops_cli.deploy.triton import (
    TritonDetail,
    invoke_triton,
    recorded_memory_mb,
    usage,
    warmup_requests,
)
from mlops_cli.errors import MlopsError, UsageError
from mlops_cli.progress import SILENT, Reporter, running
from mlops_cli.triton.client import RepositoryEntry, ServerUnreachableError, TritonLoadHungError
from mlops_cli.triton.naming import parse_versioned_name, versioned_name

if TYPE_CHECKING:
    from mlops_cli.config import Settings


class CapacityError(MlopsError):
    """No server can take the model."""


@dataclass(kw_only=True)
class TritonPlan(Plan):
    """A Triton target's plan: the name the version gets on the servers, the servers that will
    serve it, and whether ``apply`` loads it (``desired``) or finds it served already."""

    name: str
    servers: tuple[str, ...] = ()
    load: bool = False
    desired: Desired | None = None
    start: bool = False  # the local server must be started first (then placed again)
    records: tuple[DeploymentRecord, ...] = field(default=())


def fleet_snapshot(fleet: Fleet) -> tuple[list[ServerSnapshot], dict[str, set[str]]]:
    """Observe every server once: its capacity, the memory its READY models declare (mlops
    records it in each config it renders; a model loaded by others counts at the default), its GPUs
    (an unreachable server is marked so), and the names it has READY."""
    snapshots: list[ServerSnapshot] = []
    ready: dict[str, set[str]] = {}
    for server in fleet.servers:
        common: dict[str, Any] = {
            "name": server.name,
            "memory_mb": server.memory_mb - server.headroom_mb,
            "gpu_kind": server.gpu_kind,
            "gpu_count": server.gpu_count,
            "labels": server.labels,
        }
        client = server.client()
        try:
            loaded = client.ready_models()
            # a model loaded by someone else carries no memory of mlops': counted at the default
            used = sum(
                recorded_memory_mb(client.model_config(name)) or DEFAULT_MEMORY_MB
                for name in loaded
            )
        except ServerUnreachableError:
            snapshots.append(ServerSnapshot(reachable=False, **common))
            continue
        ready[server.name] = loaded
        # a dynamic server evicts idle models to make room: all of its memory is available
        snapshots.append(ServerSnapshot(used_mb=0.0 if server.dynamic else used, **common))
    return snapshots, ready


def model_needs(desired: Desired) -> ModelNeeds:
    gpu = desired.spec.resources.gpu
    return ModelNeeds(
        memory_mb=desired.memory_mb,
        device=desired.device,
        gpu_kind=gpu.kind if gpu and desired.device == "gpu" else None,
    )


class TritonTarget(DeployTarget[TritonPlan, TritonDetail]):
    """Triton servers sharing a repository, explicit model control."""

    kind = "triton"

    def __init__(self, fleet: Fleet, *, target_id: str | None = None) -> None:
        self.fleet = fleet
        self.id = target_id or f"triton:{fleet.name}"
        self.repository = Repository(fleet.repository)
        self.capabilities = Capabilities(
            streaming=True,
            multi_model=True,
            explicit_load=True,
            gpu=any(s.gpu_count > 0 for s in fleet.servers),
        )

    @classmethod
    def parse_detail(cls, record: DeploymentRecord) -> TritonDetail:
        return TritonDetail.from_record(record)

    # -- observing ---------------------------------------------------------------------------

    def servers(self) -> Sequence[FleetServer]:
        return self.fleet.servers

    def _place(self, desired: Desired, snapshot: Sequence[ServerSnapshot]) -> FleetServer:
        chosen = place(snapshot, model_needs(desired))
        if isinstance(chosen, PlacementRefusal):
            raise CapacityError(
                f"no server can take {desired.model} v{desired.version} "
                f"({desired.memory_mb:g} MB): {chosen.describe()}",
                hint="add capacity to the fleet file, undeploy something, or profile the model",
            )
        return next(s for s in self.servers() if s.name == chosen.name)

    def _load_failure(self, name: str) -> Callable[[], str | None] | None:
        """A check that ends a load Triton itself never ends (see ``TritonClient.load``); the
        servers of a fleet keep their logs to themselves, so none here."""
        return None

    # -- the contract -------------------------------------------------------------------------

    def plan(self, desired: Desired, records: Sequence[DeploymentRecord]) -> TritonPlan:
        name = versioned_name(desired.model, desired.version)
        plan = TritonPlan(self.id, desired.model, desired.version, name=name)
        snapshot, ready = fleet_snapshot(self.fleet)
        serving = [s for s in self.servers() if name in ready.get(s.name, set())]
        recorded = any(r.version == desired.version for r in records)
        if serving:
            op = "keep" if recorded else "adopt"
            for server in serving:
                plan.actions.append(Action(op, desired.model, desired.version, server.name))
            plan.servers = tuple(s.name for s in serving)
            return plan
        server = self._place(desired, snapshot)
        plan.actions.append(
            Action(
                "load",
                desired.model,
                desired.version,
                server.name,
                f"{desired.device.upper()}, {desired.memory_mb:g} MB, as {name}",
            )
        )
        plan.servers, plan.load, plan.desired = (server.name,), True, desired
        return plan

    def _detail(self, plan: TritonPlan) -> TritonDetail:
        chosen = [s for s in self.servers() if s.name in plan.servers]
        desired = plan.desired
        return TritonDetail(
            where=",".join(s.name for s in chosen),
            triton_name=plan.name,
            servers=tuple(s.address() for s in chosen),
            repository=self.fleet.repository,
            device=desired.device if desired else None,
            memory_mb=desired.memory_mb if desired else None,
        )

    def apply(self, plan: TritonPlan, *, reporter: Reporter = SILENT) -> TritonDetail:
        if not plan.load or plan.desired is None:
            return self._detail(plan)
        name = plan.name
        chosen = [s for s in self.servers() if s.name in plan.servers]
        self.repository.write(plan.desired, name, reporter)
        try:
            for server in chosen:
                with running(reporter, f"loading {name} on {server.name}"):
                    server.client().load(
                        name, timeout=self.fleet.load_timeout, failed=self._load_failure(name)
                    )
            for server in chosen:  # answered its warmup; a dynamic server loads it on demand
                if server.dynamic:
                    server.client().unload(name)
        except BaseException as exc:
            # Leave the fleet as it was: a failed model stays listed on Triton until unloaded
            # (a hung load answers no unload). The clean-up is best effort: the load's own
            # error is the one to report.
            for server in chosen if not isinstance(exc, TritonLoadHungError) else ():
                with contextlib.suppress(Exception):
                    server.client().unload(name, wait=5.0)
            self.repository.remove_quietly(name, reporter)
            raise
        return self._detail(plan)

    def retire(
        self, model: str, version: int, detail: TritonDetail, *, reporter: Reporter = SILENT
    ) -> None:
        name = detail.triton_name or versioned_name(model, version)
        wanted = {s.name for s in detail.servers}
        for server in self.servers():
            if wanted and server.name not in wanted:
                continue
            with running(reporter, f"unloading {name} from {server.name}"):
                try:
                    server.client().unload(name)
                except ServerUnreachableError:
                    reporter.note(f"{server.name} is unreachable; {name} was not unloaded there")
        self.repository.remove(name)

    def status(self, records: Sequence[DeploymentRecord]) -> list[DeploymentStatus]:
        found: list[DeploymentStatus] = []
        covered: set[tuple[str, str]] = set()
        observed: dict[str, tuple[dict[str, RepositoryEntry], str | None]] = {}
        for server in self.servers():
            try:
                index = {e.name: e for e in server.client().index()}
                observed[server.name] = (index, None)
            except ServerUnreachableError as exc:
                observed[server.name] = ({}, str(exc))
        for record in records:
            model, version = record.model, record.version
            detail = self.parse_detail(record)
            name = detail.triton_name
            names = [s.name for s in detail.servers] or [self.servers()[0].name]
            dynamic = {s.name for s in detail.servers if s.capacity_mb is not None}
            for server_name in names:
                covered.add((server_name, name))
                index, problem = observed.get(server_name, ({}, "not in the fleet any more"))
                if problem is None and server_name in dynamic and _cold(index.get(name)):
                    found.append(
                        DeploymentStatus(
                            model=model,
                            version=version,
                            target=self.id,
                            where=server_name,
                            state="READY",
                            note="not loaded now: loads on its first request (dynamic server)",
                        )
                    )
                    continue
                found.append(
                    self._observed_status(model, version, server_name, name, index, problem)
                )
        for server_name, (index, _) in observed.items():
            for name, entry in index.items():
                parsed = parse_versioned_name(name)
                if parsed and entry.state == "READY" and (server_name, name) not in covered:
                    found.append(
                        DeploymentStatus(
                            model=parsed[0],
                            version=parsed[1],
                            target=self.id,
                            where=server_name,
                            state="DRIFT",
                            note="served, but not recorded in the registry",
                        )
                    )
        return found

    def _observed_status(
        self,
        model: str,
        version: int,
        server_name: str,
        name: str,
        index: Mapping[str, RepositoryEntry],
        problem: str | None,
    ) -> DeploymentStatus:
        common: dict[str, Any] = {
            "model": model,
            "version": version,
            "target": self.id,
            "where": server_name,
        }
        if problem is not None:
            return DeploymentStatus(state="UNAVAILABLE", note=problem, **common)
        entry = index.get(name)
        if entry is None or entry.state != "READY":
            state = (entry.state if entry else "") or "absent"
            reason = f": {entry.reason}" if entry and entry.reason else ""
            return DeploymentStatus(
                state="DRIFT",
                note=f"recorded as deployed, but {state} on the server{reason}",
                **common,
            )
        client = next(s for s in self.servers() if s.name == server_name).client()
        warmup = warmup_requests(client.model_config(name))
        requests, failures, latency = usage(client.statistics(name), warmup=warmup)
        return DeploymentStatus(
            state="READY", requests=requests, failures=failures, latency_ms=latency, **common
        )

    def _invoke(self, record: DeploymentRecord, request: InvokeRequest) -> Iterator[Chunk]:
        return invoke_triton(record.model, record.version, self.parse_detail(record), request)


def _cold(entry: RepositoryEntry | None) -> bool:
    """In the repository and not loaded (never loaded, unloaded or being unloaded), as a dynamic
    server keeps its models; a load that failed (UNAVAILABLE with another reason) is not cold but broken."""
    if entry is None or entry.state in ("", "UNLOADING"):
        return True
    return entry.state == "UNAVAILABLE" and (entry.reason or "unloaded") == "unloaded"


class FleetTarget(TritonTarget):
    """The ``triton`` target: the servers a fleet file lists."""

    @classmethod
    def open(
        cls,
        settings: Settings,
        *,
        fleet: Path | None = None,
        endpoint: Path | None = None,
        reporter: Reporter = SILENT,
    ) -> FleetTarget:
        if fleet is None:
            raise UsageError("the triton target needs a fleet file", hint="--fleet fleet.yaml")
        return cls(load_fleet(fleet))

    @classmethod
    def from_records(
        cls,
        settings: Settings,
        target_id: str,
        records: Sequence[DeploymentRecord],
        *,
        fleet: Path | None = None,
        endpoint: Path | None = None,
    ) -> FleetTarget:
        """From the fleet file when it names this fleet, else the part of the fleet that the
        records describe (the servers they were loaded on)."""
        name = target_id.partition(":")[2]
        spec = load_fleet(fleet) if fleet is not None else None
        if spec is None or spec.name != name:
            spec = fleet_from_records(name, records)
        return cls(spec)


def fleet_from_records(name: str, records: Sequence[DeploymentRecord]) -> Fleet:
    """The part of a fleet that deployment records describe (enough to observe them)."""
    servers: dict[str, FleetServer] = {}
    repository = ""
    for record in records:
        detail = TritonDetail.from_record(record)
        repository = repository or detail.repository
        for entry in detail.servers:
            servers.setdefault(
                entry.name, FleetServer(name=entry.name, url=entry.url, grpc_url=entry.grpc_url)
            )
    return Fleet(name=name, repository=repository, servers=tuple(servers.values()))


__all__ = [
    "CapacityError",
    "FleetTarget",
    "TritonPlan",
    "TritonTarget",
    "fleet_from_records",
    "fleet_snapshot",
    "load_fleet",
]
