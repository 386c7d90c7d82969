"""Library call for ``mlops tune``: the serving configuration of a registered version that meets an
SLA with the most throughput (or at the lowest cost), measured on a real Triton server.

The version is resolved in the registry, its package read from the store, and its candidates
loaded on the local Triton (or a fleet's server) under a name of their own
(:mod:`mlops_cli.tune.candidates`), searched (:mod:`mlops_cli.tune.search`) within the time budget
and costed (:mod:`mlops_cli.tune.cost`). The result is returned whether or not a candidate met
the SLA: when none did, its outcome is exit 3, naming the closest candidate and by how much it
missed. ``apply`` registers the best as the next version (:mod:`mlops_cli.tune.apply`); nothing is
applied when none met the SLA or the best is the version's own configuration.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_cli.api.outcome import OK, Outcome
from mlops_cli.errors import GateFailedError, UsageError
from mlops_cli.progress import SILENT, Reporter

if TYPE_CHECKING:
    from mlops_cli.config import Settings
    from mlops_cli.deploy.base import Desired
    from mlops_cli.registry.base import Registry, VersionRecord
    from mlops_cli.tune.measurement import Measurement
    from mlops_cli.tune.options import TuneOptions
    from mlops_cli.tune.result import TuneRun


@dataclass(frozen=True)
class TuneResult:
    """What tune found (:class:`~mlops_cli.tune.result.TuneRun`), the version ``apply``
    registered (if any), the report files written, and the outcome: exit 3 when no candidate
    met the SLA."""

    run: TuneRun
    applied: VersionRecord | None
    written: dict[str, str]
    outcome: Outcome

    def to_dict(self) -> dict[str, Any]:
        applied = None
        if self.applied is not None:
            applied = {
                "model": self.applied.model,
                "version": self.applied.version,
                "package_uri": self.applied.package_uri,
                "lineage": dict(self.applied.lineage),
            }
        return {**self.run.to_dict(), "applied": applied, "reports": self.written}


def tune(
    *,
    ref: str,
    settings: Settings,
    options: TuneOptions,
    prices: Path | None = None,
    fleet: Path | None = None,
    server: str | None = None,
    allow_cpu: bool = False,
    apply: bool = False,
    report_dir: Path | None = None,
    reporter: Reporter = SILENT,
    on_measurement: Callable[[Measurement], None] | None = None,
) -> TuneResult:
    """Search serving configurations of ``ref`` (``MODEL``, ``MODEL@VERSION`` or ``MODEL@ALIAS``)
    on the local Triton (or ``server`` of the ``fleet`` file) under ``options.sla`` and return the
    best. Everything that can be refused (the options, the price table, the instance type, the
    model, a GPU model on a CPU server without ``allow_cpu``) is refused before any load."""
    from mlops_cli.deploy.engine import resolve_version
    from mlops_cli.registry import open_registry
    from mlops_cli.tune.candidates import TritonBench, fleet_server, local_server
    from mlops_cli.tune.cost import cost_of, load_prices
    from mlops_cli.tune.options import LOAD_ALLOWANCE_S
    from mlops_cli.tune.result import TuneRun
    from mlops_cli.tune.search import Objective, Search
    from mlops_cli.tune.space import build_space

    if server is not None and fleet is None:
        raise UsageError("--server names a server of a fleet file", hint="add --fleet FILE")
    table = load_prices(prices)
    registry = open_registry(settings.registry)
    version = resolve_version(registry, ref)
    on_fleet = fleet_server(fleet, server) if fleet is not None else None
    desired = _desired(
        version, settings, gpu_server=bool(on_fleet and on_fleet.gpu), allow_cpu=allow_cpu
    )
    price = table.choose(options.instance_type, gpu=desired.spec.wants_gpu)
    space = build_space(desired.spec, options.space)
    notes = list(space.skipped)
    if desired.spec.wants_gpu and desired.device == "cpu":
        notes.append(f"{version.model} asks for a GPU; its candidates ran on CPU (--allow-cpu)")
    target = on_fleet or local_server(settings, reporter=reporter)
    objective = Objective(
        name=options.objective,
        mode=space.load.mode,
        cost_per_million=lambda rps: cost_of(rps, price, options.traffic_rps).per_million,
    )
    started = datetime.now(UTC).isoformat(timespec="seconds")
    with TritonBench(
        server=target,
        desired=desired,
        measure=options.measure,
        timeout_s=options.timeout_s,
        reporter=reporter,
    ) as bench:
        log = Search(
            space=space,
            bench=bench,
            sla=options.sla,
            objective=objective,
            budget_s=options.budget_s,
            first_load_s=LOAD_ALLOWANCE_S,
            first_measure_s=options.least_measurement_s,
            max_error_rate=options.max_error_rate,
            on_measurement=on_measurement,
        ).run(options.strategy)
    run = TuneRun(
        model=version.model,
        version=version.version,
        server=target.to_dict(),
        sla=options.sla,
        objective=objective,
        space=space,
        log=log,
        budget_s=options.budget_s,
        prices=table,
        price=price,
        traffic_rps=options.traffic_rps,
        started_at=started,
        notes=tuple(notes),
    )
    applied = None
    if apply:
        applied = _apply(run, registry, desired, version, notes)
        run = replace(run, notes=tuple(notes))
    written = {}
    if report_dir is not None:
        from mlops_cli.tune.report import write_reports

        written = write_reports(run, report_dir)
    outcome = OK
    if not run.met:
        outcome = Outcome.failed(
            GateFailedError(
                run.verdict(),
                hint="relax the SLA, widen the search (--instances, --batch-sizes, "
                "--max-concurrency) or give it more --budget"
                if log.stopped is None
                else f"the search stopped early ({log.stopped}): give it more --budget",
            )
        )
    return TuneResult(run, applied, written, outcome)


def _desired(
    version: VersionRecord, settings: Settings, *, gpu_server: bool, allow_cpu: bool
) -> Desired:
    """What the version's candidates are rendered from, refusing a GPU model on a CPU server
    unless ``allow_cpu``."""
    from mlops_cli.deploy.base import Device
    from mlops_cli.deploy.engine import GpuRequiredError, desired_from, version_package
    from mlops_cli.stores import open_store

    store, manifest, spec = version_package(
        version, lambda root: open_store(root or settings.store)
    )
    device: Device = "gpu" if spec.wants_gpu and gpu_server else "cpu"
    if spec.wants_gpu and not gpu_server and not allow_cpu:
        raise GpuRequiredError(
            f"{version.model} v{version.version} asks for a GPU and the server tuned on has none",
            hint="tune on a GPU server of a fleet (--fleet, --server), or pass --allow-cpu",
        )
    return desired_from(version, store, manifest, spec, device=device)


def _apply(
    run: TuneRun, registry: Registry, desired: Desired, version: VersionRecord, notes: list[str]
) -> VersionRecord | None:
    """Register the best configuration as the next version; None (with a note) when there is
    nothing to apply."""
    from mlops_cli.tune.apply import register_tuned
    from mlops_cli.tune.space import ServingConfig

    best = run.best
    if best is None:
        notes.append("--apply: nothing applied, no configuration met the SLA")
        return None
    if best.config == ServingConfig.of_spec(desired.spec):
        notes.append(
            f"--apply: nothing applied, v{version.version}'s own configuration is the best"
        )
        return None
    tune = {
        "sla": run.sla.text,
        "objective": run.objective.name,
        "server": f"{run.server['name']} ({run.server['url']})",
        "measured": {
            "load": run.space.load.label(best.level or 0),
            "throughput_rps": round(best.figures.throughput_rps, 2),
            "latency_ms": dict(best.figures.latency_ms or {}),
        },
    }
    return register_tuned(registry, desired.store, desired.manifest, version, best.config, tune)


__all__ = ["TuneResult", "tune"]
