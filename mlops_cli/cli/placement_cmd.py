"""`mlops placement`: plan which servers hold which model versions, and rebalance a plan."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mlops_cli.cli.context import CliContext
from mlops_cli.cli.options import DryRunOpt, FleetOpt, RegistryOpt, StoreOpt

if TYPE_CHECKING:
    from rich.console import Console

    from mlops_cli.api.placement import PlacementReport

app = typer.Typer(
    help="Plan which servers hold which model versions (memory, replicas, labels); rebalance.",
    no_args_is_help=True,
)

RefsArg = Annotated[
    list[str] | None, typer.Argument(metavar="MODEL@VERSION", help="Registered versions to plan.")
]
AllDeployedOpt = Annotated[
    bool, typer.Option("--all-deployed", help="Every version deployed on the fleet.")
]
ReplicasOpt = Annotated[
    list[str] | None,
    typer.Option("--replicas", metavar="MODEL=N", help="Replicas of a model (repeatable)."),
]
ModelsOpt = Annotated[
    Path | None,
    typer.Option("--models", help="Models file (JSON or YAML) to plan offline, no registry."),
]
ServerMemoryOpt = Annotated[
    str | None,
    typer.Option(help="Memory of each server for --models, e.g. 24GiB (a bare number: MB)."),
]
ServerGpuMemoryOpt = Annotated[
    str | None, typer.Option(help="GPU memory of each server for --models, e.g. 80GiB.")
]
HeadroomOpt = Annotated[
    str | None, typer.Option(help="Memory kept free on each server for --models, e.g. 2GiB.")
]

_SIZE = re.compile(r"([0-9]+(?:\.[0-9]+)?) *(?:([kmgt])(?:i?b)?|(b))?", re.IGNORECASE)
_POWERS = {"k": 10, "m": 20, "g": 30, "t": 40}


def megabytes(text: str | None, option: str) -> float | None:
    """A size as MB (2**20 bytes): ``24GiB``, ``512MiB``, ``1.5g``, ``1048576b``, or a bare
    number of MB. K, M, G and T are binary with or without the ``i``."""
    from mlops_cli.errors import UsageError

    if text is None:
        return None
    found = _SIZE.fullmatch(text.strip())
    if found is None:
        raise UsageError(f"{option} {text!r} is not a size", hint="e.g. 24GiB, 512MiB")
    number, prefix, plain_bytes = found.groups()
    if plain_bytes:
        value = float(number) / 2**20
    else:
        value = float(number) * 2 ** (_POWERS[prefix.lower()] - 20 if prefix else 0)
    if not value < 2**40:
        raise UsageError(f"{option} {text!r} is too large")
    return value


def replica_counts(pairs: list[str] | None) -> dict[str, int]:
    from mlops_cli.errors import UsageError

    found: dict[str, int] = {}
    for pair in pairs or []:
        model, sep, count = pair.partition("=")
        if not (sep and model and count.isascii() and count.isdecimal() and int(count) >= 1):
            raise UsageError(f"--replicas takes MODEL=N with N at least 1, got {pair!r}")
        found[model] = int(count)
    return found


@app.command("plan")
def plan(
    ctx: typer.Context,
    refs: RefsArg = None,
    fleet: FleetOpt = None,
    all_deployed: AllDeployedOpt = False,
    replicas: ReplicasOpt = None,
    models: ModelsOpt = None,
    server_memory: ServerMemoryOpt = None,
    server_gpu_memory: ServerGpuMemoryOpt = None,
    headroom: HeadroomOpt = None,
    previous: Annotated[
        Path | None, typer.Option("--from", help="A plan file (--json output): count the moves.")
    ] = None,
    registry: RegistryOpt = None,
    store: StoreOpt = None,
) -> int:
    """Pack model versions onto as few servers as possible, replicas apart; print the plan."""
    from mlops_cli.api.placement import placement_plan

    cli: CliContext = ctx.obj
    report = placement_plan(
        settings=cli.settings({"registry": registry, "store": store}) if fleet else None,
        fleet=fleet,
        refs=refs or (),
        all_deployed=all_deployed,
        replicas=replica_counts(replicas),
        models=models,
        server_memory_mb=megabytes(server_memory, "--server-memory"),
        server_gpu_memory_mb=megabytes(server_gpu_memory, "--server-gpu-memory") or 0.0,
        headroom_mb=megabytes(headroom, "--headroom") or 0.0,
        previous=previous,
    )
    return cli.emit(report, lambda c: render(c, report, verb="planned"))


@app.command("rebalance")
def rebalance(
    ctx: typer.Context,
    previous: Annotated[
        Path, typer.Option("--from", help="The plan file (--json output) to rebalance.")
    ],
    refs: RefsArg = None,
    fleet: FleetOpt = None,
    all_deployed: AllDeployedOpt = False,
    replicas: ReplicasOpt = None,
    models: ModelsOpt = None,
    server_memory: ServerMemoryOpt = None,
    server_gpu_memory: ServerGpuMemoryOpt = None,
    headroom: HeadroomOpt = None,
    max_moves: Annotated[
        int | None, typer.Option(help="Move at most this many models to save servers.")
    ] = None,
    registry: RegistryOpt = None,
    store: StoreOpt = None,
) -> int:
    """Bring a plan back near the best packing, moving few models; print the moves (applies
    nothing)."""
    from mlops_cli.api.placement import placement_rebalance

    cli: CliContext = ctx.obj
    report = placement_rebalance(
        previous=previous,
        settings=cli.settings({"registry": registry, "store": store}) if fleet else None,
        fleet=fleet,
        refs=refs or (),
        all_deployed=all_deployed,
        replicas=replica_counts(replicas),
        models=models,
        server_memory_mb=megabytes(server_memory, "--server-memory"),
        server_gpu_memory_mb=megabytes(server_gpu_memory, "--server-gpu-memory") or 0.0,
        headroom_mb=megabytes(headroom, "--headroom") or 0.0,
        max_moves=max_moves,
    )
    return cli.emit(report, lambda c: render(c, report, verb="rebalanced"))


def render(console: Console, report: PlacementReport, *, verb: str) -> None:
    """The summary, the fullest servers' use, the measured/declared split and the moves."""
    from mlops_cli.cli.render_helpers import print_table

    plan = report.plan
    models = len(plan.assignments)
    console.print(
        f"{verb} {models:,} models on {plan.servers_used:,} servers "
        f"(lower bound {plan.lower_bound:,}); {plan.relocations:,} moves"
    )
    counts: dict[str, int] = {}
    for source in report.memory_source.values():
        counts[source] = counts.get(source, 0) + 1
    console.print("memory: " + ", ".join(f"{n:,} {s}" for s, n in sorted(counts.items())))
    shown = report.servers[:20]
    print_table(
        console,
        ["server", "models", "used MB", "of MB"],
        [[s.name, s.models, f"{s.used_mb:,.0f}", f"{s.capacity_mb:,.0f}"] for s in shown],
    )
    if len(report.servers) > len(shown):
        console.print(f"... and {len(report.servers) - len(shown):,} more servers (--json: all)")
    moves = [m for m in plan.moves if m.source is not None and m.target is not None]
    for move in moves[:20]:
        console.print(f"move {move.key}: {move.source} -> {move.target}")
    if len(moves) > 20:
        console.print(f"... and {len(moves) - 20:,} more moves (--json: all)")


@app.command("apply")
def apply(
    ctx: typer.Context,
    fleet: Annotated[Path, typer.Option("--fleet", help="The fleet file.")],
    refs: RefsArg = None,
    all_deployed: AllDeployedOpt = False,
    replicas: ReplicasOpt = None,
    max_moves: Annotated[
        int | None, typer.Option(help="Move at most this many models to save servers.")
    ] = None,
    dry_run: DryRunOpt = False,
    lock_wait: Annotated[
        float,
        typer.Option(min=0, max=86400, help="Seconds to wait for another deploy's fleet lock."),
    ] = 600.0,
    registry: RegistryOpt = None,
    store: StoreOpt = None,
) -> int:
    """Place model versions on the fleet as planned: new replicas loaded before old ones go."""
    from mlops_cli.api.placement import placement_apply

    cli: CliContext = ctx.obj
    done = placement_apply(
        settings=cli.settings({"registry": registry, "store": store}),
        fleet=fleet,
        refs=refs or (),
        all_deployed=all_deployed,
        replicas=replica_counts(replicas),
        max_moves=max_moves,
        dry_run=dry_run,
        lock_wait_s=lock_wait,
        reporter=cli.reporter(),
    )

    def human(console: Console) -> None:
        render(console, done.report, verb="planned")
        steps = done.applied.steps
        if not steps:
            console.print("nothing to do: the fleet is as planned")
        for step in steps:
            mark = "would " if dry_run else ""
            console.print(f"{mark}{step.op} {step.key} on {step.server}")
        if done.applied.revision is not None:
            console.print(f"stored as placement revision {done.applied.revision}")

    return cli.emit(done, human)


@app.command("simulate")
def simulate(
    ctx: typer.Context,
    models: Annotated[int, typer.Option("--models", min=1, help="Models in the fleet.")] = 10000,
    size_median: Annotated[str, typer.Option(help="Median model size, e.g. 500MiB.")] = "500MiB",
    size_sigma: Annotated[
        float, typer.Option(min=0, help="Sigma of the log of model sizes (log-normal).")
    ] = 1.0,
    servers: Annotated[
        int | None, typer.Option(min=1, help="Servers (default: as many as hold every model).")
    ] = None,
    server_memory: Annotated[str, typer.Option(help="Memory of each server.")] = "24GiB",
    rate: Annotated[float, typer.Option(min=0.001, help="Requests per second.")] = 1000.0,
    requests: Annotated[int, typer.Option(min=0, help="Requests in the trace.")] = 100000,
    zipf: Annotated[float, typer.Option(min=0, help="Zipf exponent of traffic.")] = 1.1,
    tenants: Annotated[int, typer.Option(min=1, help="Tenants (Zipf over them too).")] = 1,
    load_time: Annotated[float, typer.Option(min=0, help="Seconds a load takes.")] = 2.0,
    load_per_gb: Annotated[float, typer.Option(min=0, help="Extra load seconds per GiB.")] = 0.0,
    fail_servers: Annotated[int, typer.Option(min=0, help="Servers failing during the run.")] = 0,
    seed: Annotated[int, typer.Option(help="Seed of the trace and of failures.")] = 0,
    trace: Annotated[
        Path | None, typer.Option(help="Replay a recorded trace (CSV t,model[,memory_mb]).")
    ] = None,
) -> int:
    """Simulate on-demand loading on a fleet: hit rate, cold requests, p99 added by loads."""
    from mlops_cli.api.placement import placement_simulate
    from mlops_cli.placement.simulate import Workload

    cli: CliContext = ctx.obj
    median = megabytes(size_median, "--size-median") or 0.0
    report = placement_simulate(
        workload=Workload(
            models=models,
            requests=requests,
            size_median_mb=median,
            size_sigma=size_sigma,
            zipf=zipf,
            tenants=tenants,
            rate=rate,
            seed=seed,
        ),
        trace=trace,
        server_memory_mb=megabytes(server_memory, "--server-memory") or 0.0,
        servers=servers,
        load_time_s=load_time,
        load_s_per_gb=load_per_gb,
        fail_servers=fail_servers,
        seed=seed,
        default_size_mb=median,
    )

    def human(console: Console) -> None:
        sim = report.simulation
        console.print(
            f"{sim.models:,} models ({sim.model_memory_mb / 1024:,.0f} GiB), "
            f"{sim.requests:,} requests on {sim.servers:,} servers of "
            f"{sim.server_memory_mb / 1024:,.1f} GiB; every model resident needs "
            f"{sim.servers_needed:,} (lower bound {sim.lower_bound:,})"
        )
        for o in sim.outcomes:
            console.print(
                f"{o.policy:>12}: hit rate {o.hit_rate:.1%} ({o.hit_rate_after_warmup:.1%} after "
                f"warm-up), cold {o.cold / max(1, o.requests):.2%}, p99 added "
                f"{o.cold_added_p99_ms:,.0f} ms, busiest server {o.max_load_ratio:.2f}x mean"
            )
        console.print(f"simulated in {report.seconds:.1f} s")

    return cli.emit(report, human)
