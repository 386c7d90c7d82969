"""Library calls for placement planning: ``mlops placement plan`` and ``mlops placement rebalance``.

Each call gathers the items and servers once and hands them to the pure planner
(:mod:`mlops_cli.placement`); nothing here decides where a model goes. Items come either from
the registry (model versions named, or every version deployed on the fleet; memory measured by
``mlops profile`` before memory declared in the spec, and each item says which it got) onto the
servers of a fleet file, or from a models file onto as many servers of one size as needed
(capacity planning, no registry). A plan that cannot be made raises :class:`CannotPlaceError`
with the planner's one-line explanation; nothing is stored or applied.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from mlops_cli.errors import MlopsError, UsageError

if TYPE_CHECKING:
    from mlops_cli.config import Settings
    from mlops_cli.placement import Item, NoFit, Plan, Server
    from mlops_cli.registry.base import Registry
    from mlops_cli.registry.records import VersionRecord
    from mlops_cli.stores.base import ArtifactStore

MemorySource = Literal["measured", "declared", "default", "file"]
SPARE_NAME = "server"  # offline plans name their servers server-1, server-2, ...


class CannotPlaceError(MlopsError):
    """The models do not fit the servers (exit code 1); ``no_fit`` says which and by how much."""

    def __init__(self, no_fit: NoFit, *, hint: str) -> None:
        super().__init__(no_fit.describe(), hint=hint)
        self.no_fit = no_fit


@dataclass(frozen=True)
class ServerUse:
    """How full a planned server is."""

    name: str
    models: int
    used_mb: float
    capacity_mb: float  # usable: after headroom

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "models": self.models,
            "used_mb": round(self.used_mb, 1),
            "capacity_mb": round(self.capacity_mb, 1),
        }


@dataclass(frozen=True)
class PlacementReport:
    """A plan, where each item's memory figure came from, and how full each server is."""

    plan: Plan
    memory_source: Mapping[str, MemorySource]
    servers: tuple[ServerUse, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.plan.to_dict(),
            "relocations": self.plan.relocations,
            "memory_source": dict(self.memory_source),
            "servers": [s.to_dict() for s in self.servers],
        }


@dataclass(frozen=True)
class _Inputs:
    servers: tuple[Server, ...]
    spare: Server | None
    items: list[Item]
    sources: dict[str, MemorySource]


def placement_plan(
    *,
    settings: Settings | None = None,
    fleet: Path | None = None,
    refs: Sequence[str] = (),
    all_deployed: bool = False,
    replicas: Mapping[str, int] | None = None,
    models: Path | None = None,
    server_memory_mb: float | None = None,
    server_gpu_memory_mb: float = 0.0,
    headroom_mb: float = 0.0,
    previous: Path | None = None,
) -> PlacementReport:
    """Plan from scratch: the registry's versions ``refs`` (or ``all_deployed`` on the fleet)
    onto the servers of ``fleet``, or the models of the file ``models`` onto servers of
    ``server_memory_mb`` each; ``moves`` against the plan file ``previous`` when given."""
    from mlops_cli.placement import NoFit, plan

    inputs = _inputs(
        settings=settings,
        fleet=fleet,
        refs=refs,
        all_deployed=all_deployed,
        replicas=replicas,
        models=models,
        server_memory_mb=server_memory_mb,
        server_gpu_memory_mb=server_gpu_memory_mb,
        headroom_mb=headroom_mb,
    )
    before = _previous_plan(previous) if previous is not None else None
    result = plan(inputs.servers, inputs.items, spare=inputs.spare, previous=before)
    if isinstance(result, NoFit):
        raise CannotPlaceError(result, hint=_hint(result, offline=models is not None))
    return _report(result, inputs)


def placement_rebalance(
    *,
    previous: Path,
    settings: Settings | None = None,
    fleet: Path | None = None,
    refs: Sequence[str] = (),
    all_deployed: bool = False,
    replicas: Mapping[str, int] | None = None,
    models: Path | None = None,
    server_memory_mb: float | None = None,
    server_gpu_memory_mb: float = 0.0,
    headroom_mb: float = 0.0,
    max_moves: int | None = None,
) -> PlacementReport:
    """Bring the plan in the file ``previous`` back near the best packing of the same items (as
    :func:`placement_plan` gathers them), moving as few models as possible (at most
    ``max_moves`` relocations beyond those a removed or shrunk server forces). Applies nothing:
    ``moves`` is what would change."""
    from mlops_cli.placement import NoFit, rebalance

    if max_moves is not None and max_moves < 0:
        raise UsageError(f"--max-moves must be 0 or more, not {max_moves}")
    inputs = _inputs(
        settings=settings,
        fleet=fleet,
        refs=refs,
        all_deployed=all_deployed,
        replicas=replicas,
        models=models,
        server_memory_mb=server_memory_mb,
        server_gpu_memory_mb=server_gpu_memory_mb,
        headroom_mb=headroom_mb,
    )
    before = _previous_plan(previous)
    result = rebalance(
        before, inputs.servers, inputs.items, spare=inputs.spare, max_moves=max_moves
    )
    if isinstance(result, NoFit):
        raise CannotPlaceError(result, hint=_hint(result, offline=models is not None))
    return _report(result, inputs)


# -- inputs ------------------------------------------------------------------------------------


def _inputs(
    *,
    settings: Settings | None,
    fleet: Path | None,
    refs: Sequence[str],
    all_deployed: bool,
    replicas: Mapping[str, int] | None,
    models: Path | None,
    server_memory_mb: float | None,
    server_gpu_memory_mb: float,
    headroom_mb: float,
) -> _Inputs:
    if (fleet is None) == (models is None):
        raise UsageError(
            "plan either registered versions onto a fleet (--fleet) or a models file (--models)"
        )
    if models is not None:
        if refs or all_deployed or replicas:
            raise UsageError("MODEL@VERSION, --all-deployed and --replicas go with --fleet")
        if server_memory_mb is None:
            raise UsageError("--models needs --server-memory (e.g. 24GiB)")
        return _from_models(models, server_memory_mb, server_gpu_memory_mb, headroom_mb)
    if server_memory_mb is not None or server_gpu_memory_mb or headroom_mb:
        raise UsageError(
            "--server-memory, --server-gpu-memory and --headroom go with --models "
            "(a fleet file gives each server's memory)"
        )
    if bool(refs) == all_deployed:
        raise UsageError("name the versions to plan (MODEL@VERSION ...) or pass --all-deployed")
    if settings is None:
        raise UsageError("planning registered versions needs settings (the registry and store)")
    assert fleet is not None
    return _from_registry(settings, fleet, refs, all_deployed, dict(replicas or {}))


def _from_models(path: Path, memory_mb: float, gpu_memory_mb: float, headroom_mb: float) -> _Inputs:
    from mlops_cli.placement import Server
    from mlops_cli.placement.documents import items_from_document

    if not memory_mb > 0 or not gpu_memory_mb >= 0 or not 0 <= headroom_mb < memory_mb:
        raise UsageError(
            "--server-memory must be more than 0, --server-gpu-memory 0 or more, and "
            "--headroom less than --server-memory"
        )
    items = items_from_document(_read_document(path), source=str(path))
    spare = Server(
        name=SPARE_NAME,
        memory_mb=memory_mb,
        gpu_memory_mb=gpu_memory_mb,
        gpu_count=1 if gpu_memory_mb else 0,
        headroom_mb=headroom_mb,
    )
    return _Inputs((), spare, items, dict.fromkeys((i.key for i in items), "file"))


def _from_registry(
    settings: Settings,
    fleet_path: Path,
    refs: Sequence[str],
    all_deployed: bool,
    replicas: dict[str, int],
) -> _Inputs:
    from mlops_cli.deploy.engine import resolve_version
    from mlops_cli.deploy.fleet_file import load_fleet
    from mlops_cli.placement import Server
    from mlops_cli.registry import open_registry
    from mlops_cli.stores import open_store

    fleet = load_fleet(fleet_path)
    servers = tuple(
        Server(
            name=s.name,
            memory_mb=s.memory_mb,
            gpu_memory_mb=s.gpu_memory_mb,
            gpu_kind=s.gpu_kind,
            gpu_count=s.gpu_count,
            labels=s.labels,
            headroom_mb=s.headroom_mb,
        )
        for s in fleet.servers
    )
    registry = open_registry(settings.registry)
    if all_deployed:
        versions = _deployed_on(registry, f"triton:{fleet.name}")
    else:
        versions = [resolve_version(registry, ref) for ref in refs]
    unknown = sorted(set(replicas) - {v.model for v in versions})
    if unknown:
        raise UsageError(f"--replicas names {unknown[0]}, which is not among the planned models")

    def opener(root: str | None) -> ArtifactStore:
        return open_store(root or settings.store)

    items: list[Item] = []
    sources: dict[str, MemorySource] = {}
    seen: set[tuple[str, int]] = set()
    for version in versions:
        if (version.model, version.version) in seen:
            continue  # named twice (or by two aliases)
        seen.add((version.model, version.version))
        item, source = _registry_item(version, opener, replicas.get(version.model))
        items.append(item)
        sources[item.key] = source
    return _Inputs(servers, None, items, sources)


def _deployed_on(registry: Registry, target: str) -> list[VersionRecord]:
    records = [r for r in registry.list_deployments() if r.target == target]
    if not records:
        raise UsageError(
            f"nothing is deployed on {target}",
            hint="name the versions to plan: mlops placement plan --fleet FILE MODEL@VERSION ...",
        )
    return [registry.get_version(r.model, r.version) for r in records]


def _registry_item(
    version: VersionRecord,
    open_store: Callable[[str | None], ArtifactStore],
    replicas: int | None,
) -> tuple[Item, MemorySource]:
    """The item for a registered version: memory measured, else declared, else the default."""
    from mlops_cli.deploy.engine import DEFAULT_MEMORY_MB, version_package
    from mlops_cli.placement import Item

    _, _, spec = version_package(version, open_store)
    source: MemorySource
    if version.memory_mb:
        memory, source = version.memory_mb, "measured"
    elif spec.resources.memory_mb:
        memory, source = float(spec.resources.memory_mb), "declared"
    else:
        memory, source = DEFAULT_MEMORY_MB, "default"
    gpu = spec.resources.gpu
    # the GPU memory `mlops profile` measures, and the spec's replicas, where this version of
    # the project records them
    measured_gpu = getattr(version, "gpu_memory_mb", None) or 0.0
    wanted = replicas if replicas is not None else int(getattr(spec, "replicas", 1) or 1)
    item = Item(
        model=version.model,
        version=version.version,
        memory_mb=float(memory),
        gpu_memory_mb=float(measured_gpu),
        device="gpu" if spec.wants_gpu else "cpu",
        gpu_kind=gpu.kind if gpu is not None else None,
        replicas=wanted,
    )
    return item, source


def _read_document(path: Path) -> Any:
    """A JSON or YAML file, within bounds: JSON (``.json``, or text starting with ``{``) up to
    :data:`~mlops_cli.placement.documents.MAX_DOCUMENT_BYTES`; YAML through the project's
    bounded reader, whose smaller limits hold."""
    from mlops_cli.placement.documents import MAX_DOCUMENT_BYTES, PlacementFileError
    from mlops_cli.validation import MAX_YAML_BYTES, read_yaml_file

    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_DOCUMENT_BYTES + 1)
    except FileNotFoundError:
        raise PlacementFileError(f"{path} does not exist") from None
    except OSError as exc:
        raise PlacementFileError(f"cannot read: {exc.strerror or exc}", source=str(path)) from None
    if len(data) > MAX_DOCUMENT_BYTES:
        raise PlacementFileError(
            f"the file is more than {MAX_DOCUMENT_BYTES // 2**20} MiB", source=str(path)
        )
    if path.suffix.lower() == ".json" or data.lstrip()[:1] == b"{":
        try:
            return json.loads(data)
        except json.JSONDecodeError as exc:
            where = f"{path}:{exc.lineno}:{exc.colno}"
            raise PlacementFileError(f"malformed JSON: {exc.msg}", source=where) from None
        except (UnicodeDecodeError, RecursionError) as exc:
            reason = "nests too deeply" if isinstance(exc, RecursionError) else "is not UTF-8"
            raise PlacementFileError(f"the JSON {reason}", source=str(path)) from None
    if len(data) > MAX_YAML_BYTES:
        raise PlacementFileError(
            f"a YAML file is limited to {MAX_YAML_BYTES // 1024} KiB",
            source=str(path),
            hint="write large model lists as JSON",
        )
    return read_yaml_file(
        path, error_class=PlacementFileError, missing=PlacementFileError(f"{path} does not exist")
    )


def _previous_plan(path: Path) -> Plan:
    from mlops_cli.placement import Plan
    from mlops_cli.placement.documents import assignments_from_document

    assignments = assignments_from_document(_read_document(path), source=str(path))
    servers = tuple(sorted({name for names in assignments.values() for name in names}))
    return Plan(assignments, servers, lower_bound=0)


# -- results -----------------------------------------------------------------------------------


def _report(result: Plan, inputs: _Inputs) -> PlacementReport:
    from mlops_cli.placement import Server

    by_name = {s.name: s for s in inputs.servers}
    memory = {i.key: i.memory_mb for i in inputs.items}
    used: dict[str, float] = dict.fromkeys(result.servers, 0.0)
    count: dict[str, int] = dict.fromkeys(result.servers, 0)
    for key, names in result.assignments.items():
        for name in names:
            used[name] += memory[key]
            count[name] += 1

    def capacity(name: str) -> float:
        server = by_name.get(name) or inputs.spare or Server(name, 0.0)
        return server.usable_mb

    usage = tuple(ServerUse(n, count[n], used[n], capacity(n)) for n in result.servers)
    return PlacementReport(result, inputs.sources, usage)


def _hint(no_fit: NoFit, *, offline: bool) -> str:
    if any(u.reason == "too-large" for u in no_fit.unplaced):
        return (
            "plan on larger servers (--server-memory)"
            if offline
            else "add a larger server to the fleet file, or measure the model: mlops profile"
        )
    if offline:
        return "lower the replicas, or plan on larger servers (--server-memory)"
    return "add servers to the fleet file, or lower the replicas (--replicas MODEL=N)"


__all__ = [
    "CannotPlaceError",
    "PlacementReport",
    "ServerUse",
    "placement_plan",
    "placement_rebalance",
]


@dataclass(frozen=True)
class PlacementApplied:
    """The plan carried out on the fleet (or, with ``dry_run``, the steps it would take)."""

    report: PlacementReport
    applied: Any  # deploy.placement_apply.Applied

    def to_dict(self) -> dict[str, Any]:
        return {**self.report.to_dict(), **self.applied.to_dict()}


def placement_apply(
    *,
    settings: Settings,
    fleet: Path,
    refs: Sequence[str] = (),
    all_deployed: bool = False,
    replicas: Mapping[str, int] | None = None,
    max_moves: int | None = None,
    dry_run: bool = False,
    lock_wait_s: float = 600.0,
    reporter: Any = None,
) -> PlacementApplied:
    """Place the versions on the fleet as planned from where they are now (the planner's
    rebalance from the current records: few moves), load new replicas before any is unloaded,
    record each step, and store the plan in the registry; under the fleet's lease."""
    from mlops_cli.deploy.engine import desired_state, resolve_version
    from mlops_cli.deploy.fleet import FleetTarget
    from mlops_cli.deploy.fleet_file import load_fleet
    from mlops_cli.deploy.placement_apply import apply_placement, current_assignments
    from mlops_cli.placement import NoFit, Plan, rebalance
    from mlops_cli.progress import SILENT
    from mlops_cli.registry import open_registry
    from mlops_cli.stores import open_store

    inputs = _inputs(
        settings=settings,
        fleet=fleet,
        refs=refs,
        all_deployed=all_deployed,
        replicas=replicas,
        models=None,
        server_memory_mb=None,
        server_gpu_memory_mb=0.0,
        headroom_mb=0.0,
    )
    registry = open_registry(settings.registry)
    target = FleetTarget(load_fleet(fleet))
    keys = {item.key for item in inputs.items}
    current = {
        key: servers
        for key, servers in current_assignments(registry.list_deployments(), target.id).items()
        if key in keys
    }
    known = {server.name for server in inputs.servers}
    start = Plan(
        assignments={k: tuple(s for s in v if s in known) for k, v in current.items()},
        servers=tuple(s.name for s in inputs.servers),
        lower_bound=0,
    )
    result = rebalance(start, inputs.servers, inputs.items, max_moves=max_moves)
    if isinstance(result, NoFit):
        raise CannotPlaceError(result, hint=_hint(result, offline=False))
    report = _report(result, inputs)

    def desired_of(key: str) -> Any:
        version = resolve_version(registry, key)
        return desired_state(
            version, lambda root: open_store(root or settings.store), target=target
        )

    applied = apply_placement(
        registry,
        target,
        result.assignments,
        report.to_dict(),
        desired_of=desired_of,
        dry_run=dry_run,
        lock_wait_s=lock_wait_s,
        reporter=reporter or SILENT,
    )
    return PlacementApplied(report, applied)


@dataclass(frozen=True)
class SimulationReport:
    """``mlops placement simulate``: the simulation and how long it took to run."""

    simulation: Any  # placement.simulate.Simulation
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {**self.simulation.to_dict(), "seconds": round(self.seconds, 3)}


def placement_simulate(
    *,
    workload: Any = None,  # placement.simulate.Workload
    trace: Path | None = None,
    server_memory_mb: float,
    servers: int | None = None,
    load_time_s: float = 2.0,
    load_s_per_gb: float = 0.0,
    fail_servers: int = 0,
    seed: int = 0,
    default_size_mb: float = 500.0,
) -> SimulationReport:
    """Simulate on-demand loading on a fleet (:mod:`mlops_cli.placement.simulate`): on the trace
    ``workload`` generates, or on a recorded one (CSV ``t,model[,memory_mb]``)."""
    import csv
    import time

    from mlops_cli.placement.simulate import FleetModel, generate_trace, simulate, trace_from_rows

    started = time.perf_counter()
    if trace is not None:
        try:
            with trace.open(newline="") as handle:
                replay = trace_from_rows(csv.reader(handle), default_size_mb=default_size_mb)
        except OSError as exc:
            raise UsageError(f"cannot read the trace {trace}: {exc.strerror}") from exc
    elif workload is not None:
        replay = generate_trace(workload, max_size_mb=server_memory_mb)
    else:
        raise UsageError("simulate needs a workload or a trace file")
    fleet = FleetModel(
        server_memory_mb=server_memory_mb,
        servers=servers,
        load_time_s=load_time_s,
        load_s_per_gb=load_s_per_gb,
        fail_servers=fail_servers,
        seed=seed,
    )
    simulation = simulate(replay, fleet)
    return SimulationReport(simulation, time.perf_counter() - started)
