"""`mlops perftest`: load a model endpoint, report latency and throughput, gate on an SLA."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mlops_cli.cli.context import CliContext

if TYPE_CHECKING:
    from rich.console import Console


def perftest(
    ctx: typer.Context,
    target: Annotated[
        str,
        typer.Argument(
            help="A registered model (NAME, NAME@ALIAS, NAME@VERSION), followed through its "
            "routing to wherever it is deployed while the test runs; a model name on the running "
            "local Triton; or a URL: http(s)://HOST:PORT[/path], grpc://HOST:PORT, "
            "sagemaker://ENDPOINT."
        ),
    ],
    tenant: Annotated[
        str | None,
        typer.Option(help="Follow the registered model as this tenant's requests are routed."),
    ] = None,
    protocol: Annotated[
        str | None,
        typer.Option(help="http | grpc | sagemaker | http-json | router (default: from TARGET)."),
    ] = None,
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model", "--models", "-m", help="Model(s) to load: NAME, m1,m2 or @FILE (repeatable)."
        ),
    ] = None,
    distribution: Annotated[
        str, typer.Option(help="Traffic over the models: uniform or zipf:S (e.g. zipf:1.1).")
    ] = "uniform",
    concurrency: Annotated[
        str | None, typer.Option(help="Closed loop: users in flight, one step each (1,4,16).")
    ] = None,
    rate: Annotated[
        str | None, typer.Option(help="Open loop: requests per second, one step each (100,200).")
    ] = None,
    arrival: Annotated[
        str, typer.Option(help="Open-loop arrivals: constant or poisson.")
    ] = "constant",
    duration: Annotated[
        str | None,
        typer.Option(help="Measured time per step (10s). Default: until stable, --max-windows."),
    ] = None,
    requests: Annotated[
        int | None, typer.Option(min=1, help="Measured requests per step (instead of a duration).")
    ] = None,
    warmup: Annotated[str, typer.Option(help="Unmeasured load before each step.")] = "1s",
    window: Annotated[str, typer.Option(help="Measurement window length.")] = "1s",
    max_windows: Annotated[
        int | None, typer.Option(min=1, help="Cap on windows per step (default 10 until stable).")
    ] = None,
    stable_windows: Annotated[
        int, typer.Option(min=1, help="Stability: this many last windows agree...")
    ] = 3,
    stable_tolerance: Annotated[
        float, typer.Option(min=0.0, help="...within this fraction in throughput and p99.")
    ] = 0.10,
    stream: Annotated[
        bool, typer.Option("--stream", help="Stream responses; measure TTFT, ITL, tokens/s.")
    ] = False,
    payload: Annotated[
        str | None, typer.Option(help="Request bodies from a JSONL file: @FILE.jsonl.")
    ] = None,
    template: Annotated[
        str | None, typer.Option(help="A JSON request body; {{i}} expands to 0..15.")
    ] = None,
    sla: Annotated[
        str | None,
        typer.Option(
            help="Gate: 'p99<250ms,error_rate<0.1%,throughput>500' (latencies need a unit: "
            "us, ms or s); exit 3 if not met."
        ),
    ] = None,
    max_error_rate: Annotated[
        str,
        typer.Option(
            help="Failed requests allowed per step, as a percentage (0.5%). By default any "
            "failed request fails the run (exit 3); a step whose every request fails is exit 1."
        ),
    ] = "0%",
    report: Annotated[
        Path | None, typer.Option(help="Write report.json, report.csv, summary.md, report.html.")
    ] = None,
    baseline: Annotated[
        Path | None, typer.Option(help="A previous report.json; regressions fail with exit 3.")
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="Generator processes (cores).")] = 1,
    timeout: Annotated[str, typer.Option(help="Per-request timeout.")] = "30s",
    max_connections: Annotated[
        int, typer.Option(min=1, help="Cap on open connections (open loop) per worker.")
    ] = 1024,
    method: Annotated[str, typer.Option(help="HTTP method for http-json targets.")] = "POST",
    header: Annotated[
        list[str] | None, typer.Option(help="Extra HTTP header NAME:VALUE (repeatable).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of payload synthesis and model choice.")] = 0,
) -> None:
    """Load a model endpoint and report latency percentiles, throughput and errors; gate on an SLA."""
    from mlops_cli.errors import UsageError
    from mlops_cli.perf import options as opts
    from mlops_cli.perf.runner import LoadOptions
    from mlops_cli.perf.sla import parse_sla
    from mlops_cli.perf.windows import StabilityRule

    cli: CliContext = ctx.obj
    if concurrency and rate:
        raise UsageError("give --concurrency or --rate, not both")
    if payload and template:
        raise UsageError("give --payload or --template, not both")
    if arrival not in ("constant", "poisson"):
        raise UsageError(f"--arrival: {arrival!r} is not constant or poisson")
    headers = []
    for item in header or []:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise UsageError(f"--header: {item!r} is not NAME:VALUE")
        headers.append((name.strip(), value.strip()))
    options = LoadOptions(
        mode="open" if rate else "closed",
        levels=opts.parse_levels(rate, option="--rate", integer=False)
        if rate
        else opts.parse_levels(concurrency or "1", option="--concurrency", integer=True),
        arrival=arrival,
        duration_s=opts.parse_duration(duration, option="--duration") if duration else None,
        requests=requests,
        warmup_s=opts.parse_duration(warmup, option="--warmup"),
        window_s=opts.parse_duration(window, option="--window"),
        max_windows=max_windows,
        stability=StabilityRule(windows=stable_windows, tolerance=stable_tolerance),
        workers=workers,
        distribution=distribution,
        seed=seed,
    )
    if options.window_s <= 0:
        raise UsageError("--window must be above zero")
    gate = parse_sla(sla) if sla else None
    allowed_error_rate = opts.parse_percentage(max_error_rate, option="--max-error-rate")
    spec = opts.resolve_target(
        target,
        protocol=protocol,
        models=opts.parse_models(model or []),
        settings=cli.settings(),
        stream=stream,
        timeout_s=opts.parse_duration(timeout, option="--timeout"),
        max_connections=max_connections,
        method=method,
        headers=tuple(headers),
        tenant=tenant,
    )
    from mlops_cli.perf import payloads as payload_sources
    from mlops_cli.perf import report as reports
    from mlops_cli.perf.report import describe_errors
    from mlops_cli.perf.runner import model_weights, run_perftest, step_label
    from mlops_cli.perf.targets import make_target

    model_weights(max(1, len(spec.models)), distribution)  # a bad --distribution fails here
    make_target(spec)  # an unsupported protocol or capability fails before any load
    previous = reports.load_baseline(baseline) if baseline else None
    if previous is not None:
        labels = [step_label(options, level) for level in options.levels]
        reports.check_baseline_steps(previous, labels, source=str(baseline))
    bodies = None
    if payload:
        bodies = payload_sources.read_jsonl(Path(payload.removeprefix("@")))
    elif template:
        bodies = payload_sources.from_template(template)

    document = run_perftest(
        spec, options, payloads=bodies, on_window=_progress(cli), on_note=cli.warn
    )
    failures: list[str] = []
    hint: str | None = None
    if not reports.apply_error_gate(document, allowed_error_rate):
        gate_doc = document["error_gate"]
        failures.append(
            "failed requests ("
            + "; ".join(
                f"{f['step']}: {f['errors']} of {f['requests']}, "
                f"{describe_errors(f['errors_by_kind'])}"
                for f in gate_doc["failures"]
            )
            + f") above --max-error-rate {max_error_rate}"
        )
        kinds: dict[str, int] = {}
        for f in gate_doc["failures"]:
            for kind, count in f["errors_by_kind"].items():
                kinds[kind] = kinds.get(kind, 0) + count
        hint = reports.errors_hint(kinds, stream=spec.stream) or (
            "allow some with --max-error-rate, e.g. --max-error-rate 1%"
        )
    if gate is not None:
        reports.apply_sla(document, gate)
        sla_doc = document["sla"]
        if not sla_doc["passed"]:
            named = sorted(
                {
                    f"{f['term']} (at {f['step']}: {reports.measured_text(f['actual'])})"
                    for f in sla_doc["failures"]
                }
            )
            failures.append("SLA not met: " + "; ".join(named or ["no step completed"]))
    if previous is not None and baseline is not None:
        regressions = reports.compare_baseline(document, previous, source=str(baseline))
        if regressions:
            failures.append(
                f"{len(regressions)} regression(s) against {baseline}: "
                + "; ".join(f"{r['step']} {r['metric']} {r['change']:+.1%}" for r in regressions)
            )
    written = reports.write_reports(document, report) if report else {}
    cli.emit(document, _render(document, written))
    _finish(cli, document, failures, report, hint=hint, stream=spec.stream)


def _progress(cli: CliContext) -> Any:
    """Live progress, one line per window, on stderr (also with --json, whose result alone is on
    stdout); none with --quiet."""
    if cli.quiet:
        return None
    console = cli.stderr

    def show(label: str, window: dict[str, Any]) -> None:
        if window["p50_ms"] is None:
            latency = "no successful request"
        else:
            latency = f"p50 {window['p50_ms']:.2f} ms, p99 {window['p99_ms']:.2f} ms"
        console.print(
            f"{label} window {window['window']}: {window['throughput_rps']:,.0f} req/s, "
            f"{latency}, errors {window['errors']}"
        )

    return show


def _render(document: dict[str, Any], written: dict[str, str]) -> Any:
    from mlops_cli.perf.report import latency_text, served_versions

    def human(console: Console) -> None:
        from rich.table import Table

        table = Table(box=None, pad_edge=False)
        for column in (
            "step",
            "req/s",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms",
            "errors",
        ):
            table.add_column(column, justify="left" if column == "step" else "right")
        for step in document["steps"]:
            lat = step["latency_ms"] or {}
            mark = "" if step["generator"]["rate_sustained"] else " [yellow](rate not sustained)[/]"
            table.add_row(
                step["label"] + mark,
                f"{step['throughput_rps']:,.1f}",
                *(latency_text(lat.get(k)) for k in ("p50", "p90", "p99", "p99.9", "max")),
                f"{step['errors']} ({step['error_rate']:.2%})",
            )
        console.print(table)
        for step in document["steps"]:
            if step.get("stream"):
                s = step["stream"]
                ttft, itl = s["ttft_ms"] or {}, s["itl_ms"] or {}
                console.print(
                    f"{step['label']}: TTFT p50 {latency_text(ttft.get('p50'))} ms, p99 "
                    f"{latency_text(ttft.get('p99'))} ms; ITL p50 {latency_text(itl.get('p50'))} "
                    f"ms; {s['tokens_per_s']:,.1f} tokens/s"
                )
        for line in served_versions(document):
            console.print(line)
        if document.get("sla"):
            verdict = "[green]met[/]" if document["sla"]["passed"] else "[red]not met[/]"
            console.print(f"SLA {document['sla']['expression']}: {verdict}")
        for kind, path in written.items():
            console.print(f"{kind}: {path}")

    return human


def _finish(
    cli: CliContext,
    document: dict[str, Any],
    failures: list[str],
    report: Path | None,
    *,
    hint: str | None,
    stream: bool,
) -> None:
    """Turn an aborted run (exit 1) or a failed gate (exit 3) into the exit code. With --json the
    document is already on stdout, so the error goes to stderr alone (one JSON document on
    stdout)."""
    from mlops_cli.errors import GateFailedError, MlopsError, ServerError
    from mlops_cli.perf.report import errors_hint

    error: MlopsError | None = None
    if document.get("aborted"):
        kept = (
            f"partial results in {report / 'report.json'}"
            if report
            else "use --report DIR to keep partial results"
        )
        aborted_step = next(
            (s for s in document["steps"] if s["label"] == document["aborted"]["step"]), None
        )
        why = errors_hint(aborted_step["errors_by_kind"], stream=stream) if aborted_step else None
        error = ServerError(
            f"load test aborted at {document['aborted']['step']}: {document['aborted']['reason']}",
            hint=f"{why}; {kept}" if why else kept,
        )
    elif failures:
        error = GateFailedError("; ".join(failures), hint=hint)
    if error is None:
        return
    if not cli.json:
        raise error
    line = f"error: {error.message}" + (f" (hint: {error.hint})" if error.hint else "")
    print(line, file=sys.stderr)
    raise typer.Exit(error.exit_code)
