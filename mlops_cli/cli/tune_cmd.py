"""`mlops tune`: the serving configuration that meets an SLA with the most throughput, or at the
lowest cost.

The flags become typed options in :func:`mlops_cli.tune.options.tune_options`; the search is
:func:`mlops_cli.api.tune`, whose outcome (exit 3 when no candidate met the SLA) is reported after
the result by the one exit path in :mod:`mlops_cli.cli.main`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mlops_cli.cli.context import CliContext
from mlops_cli.cli.options import RegistryOpt, StoreOpt

if TYPE_CHECKING:
    from rich.console import Console

    from mlops_cli.api.tuning import TuneResult
    from mlops_cli.tune.measurement import Measurement


def tune(
    ctx: typer.Context,
    ref: Annotated[
        str,
        typer.Argument(metavar="MODEL[@VERSION|@ALIAS]", help="The registered version to tune."),
    ],
    sla: Annotated[
        str,
        typer.Option(
            help="What a candidate must meet: 'p99<100ms' (terms as in perftest --sla, e.g. "
            "'p99<100ms,throughput>500')."
        ),
    ],
    objective: Annotated[
        str,
        typer.Option(
            help="throughput: the most requests/s per server; cost: the lowest cost per million "
            "requests at --traffic (then fewer model instances)."
        ),
    ] = "throughput",
    budget: Annotated[str, typer.Option(help="Time for the whole search (10m, 90s).")] = "10m",
    rate: Annotated[
        str | None,
        typer.Option(help="Measure every candidate at this open-loop rate (500rps) instead."),
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(help="Measure every candidate at this many users instead of searching it."),
    ] = None,
    max_concurrency: Annotated[
        int, typer.Option(help="Search client concurrency 1, 2, 4, ... up to this.")
    ] = 128,
    instances: Annotated[
        str | None, typer.Option(help="Model instances per server to try (default 1,2,4,8).")
    ] = None,
    batch_sizes: Annotated[
        str | None,
        typer.Option(help="max_batch_size values to try (default 1,2,4,8,16,32; 1: no batching)."),
    ] = None,
    queue_delays: Annotated[
        str | None,
        typer.Option(help="Dynamic batching queue delays (default 0,500us,2ms,8ms)."),
    ] = None,
    preferred: Annotated[
        str | None,
        typer.Option(help="Preferred batch size: none, max (prefer full batches), or none,max."),
    ] = None,
    strategy: Annotated[
        str,
        typer.Option(help="coordinate (prunes; the default) or grid (every candidate)."),
    ] = "coordinate",
    traffic: Annotated[
        str | None,
        typer.Option(help="Traffic to cost (2000rps): servers needed and cost per million."),
    ] = None,
    instance_type: Annotated[
        str | None,
        typer.Option(help="Instance type to cost (default: the price table's CPU or GPU one)."),
    ] = None,
    prices: Annotated[
        Path | None,
        typer.Option(help="Your price table (YAML, as schemas/instance-prices.yaml)."),
    ] = None,
    apply: Annotated[
        bool,
        typer.Option("--apply", help="Register the best configuration as the next version."),
    ] = False,
    report: Annotated[
        Path | None, typer.Option(help="Write tune.json, summary.md and report.html here.")
    ] = None,
    fleet: Annotated[
        Path | None, typer.Option(help="Tune on a server of this fleet file, not the local one.")
    ] = None,
    server: Annotated[str | None, typer.Option(help="The fleet's server to tune on.")] = None,
    allow_cpu: Annotated[
        bool, typer.Option("--allow-cpu", help="Tune a GPU model on a CPU server.")
    ] = False,
    max_error_rate: Annotated[
        str, typer.Option(help="Failed requests a candidate may have (0.5%).")
    ] = "0%",
    warmup: Annotated[str, typer.Option(help="Unmeasured load before each measurement.")] = "0.5s",
    window: Annotated[str, typer.Option(help="Measurement window length.")] = "0.5s",
    max_windows: Annotated[int, typer.Option(min=1, help="Cap on windows per measurement.")] = 8,
    stable_windows: Annotated[
        int, typer.Option(min=1, help="Stability: this many last windows agree...")
    ] = 3,
    stable_tolerance: Annotated[
        float, typer.Option(min=0.0, help="...within this fraction in throughput and p99.")
    ] = 0.10,
    timeout: Annotated[str, typer.Option(help="Per-request timeout.")] = "30s",
    store: StoreOpt = None,
    registry: RegistryOpt = None,
) -> int:
    """Find the serving configuration that meets an SLA with the most throughput or lowest cost."""
    from mlops_cli import api
    from mlops_cli.tune.options import TuneFlags, tune_options

    cli: CliContext = ctx.obj
    options = tune_options(
        TuneFlags(
            sla=sla,
            objective=objective,
            strategy=strategy,
            budget=budget,
            rate=rate,
            concurrency=concurrency,
            max_concurrency=max_concurrency,
            instances=instances,
            batch_sizes=batch_sizes,
            queue_delays=queue_delays,
            preferred=preferred,
            traffic=traffic,
            instance_type=instance_type,
            max_error_rate=max_error_rate,
            warmup=warmup,
            window=window,
            max_windows=max_windows,
            stable_windows=stable_windows,
            stable_tolerance=stable_tolerance,
            timeout=timeout,
        )
    )
    result = api.tune(
        ref=ref,
        settings=cli.settings({"store": store, "registry": registry}),
        options=options,
        prices=prices,
        fleet=fleet,
        server=server,
        allow_cpu=allow_cpu,
        apply=apply,
        report_dir=report,
        reporter=cli.reporter(),
        on_measurement=_progress(cli, open_loop=rate is not None),
    )
    return cli.emit(result, _render(result))


def _progress(cli: CliContext, *, open_loop: bool) -> Any:
    """One line per measurement on stderr (also with --json, whose result alone is on stdout);
    none with --quiet."""
    if cli.quiet:
        return None
    console = cli.stderr

    def show(m: Measurement) -> None:
        line = f"{m.index + 1}. {m.config.describe()}"
        if m.level is None:
            line += f": did not load ({m.reason})"
        else:
            load = f"rate={m.level:g}" if open_loop else f"concurrency={int(m.level)}"
            line += f" at {load}: {m.status}"
            if m.status != "failed":
                p99 = "n/a" if m.p99_ms is None else f"{m.p99_ms:.2f}"
                line += f", {m.figures.throughput_rps:,.1f} req/s, p99 {p99} ms"
            if m.missed:
                line += f" ({'; '.join(m.missed)})"
        console.print(line, markup=False)

    return show


def _render(result: TuneResult) -> Any:
    from mlops_cli.cli.render_helpers import print_table
    from mlops_cli.tune.report import (
        COST_COLUMNS,
        cost_caption,
        cost_rows,
        search_line,
    )

    run = result.run

    def human(console: Console) -> None:
        verdict = "[green]met[/]" if run.met else "[red]not met[/]"
        console.print(f"{run.model} v{run.version}, SLA {run.sla.text}: {verdict}")
        console.print(run.verdict(), markup=False)
        console.print(search_line(run), markup=False)
        gain = run.gain_over_start()
        if gain is not None:
            console.print(f"throughput {gain:+.0%} over v{run.version}'s own configuration")
        rows = cost_rows(run)
        if rows:
            console.print(cost_caption(run), markup=False)
            print_table(console, COST_COLUMNS, rows)
        for note in run.notes:
            console.print(f"note: {note}", markup=False)
        if result.applied is not None:
            applied = result.applied
            console.print(
                f"registered {applied.model} v{applied.version}; deploy it with "
                f"`mlops deploy {applied.model}@{applied.version}`",
                markup=False,
            )
        for kind, path in result.written.items():
            console.print(f"{kind}: {path}", markup=False)

    return human
