"""`mlops perftest`: load a model endpoint, report latency and throughput, gate on an SLA.

The words of the command line become typed load and target options in
:func:`mlops_cli.perf.options.perftest_options`; the run and its gates are
:func:`mlops_cli.api.perftest`, whose outcome (exit 1 aborted, 3 a gate not met) is reported
after the report itself by the one exit path in :mod:`mlops_cli.cli.main`.
"""

from __future__ import annotations

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
            "sagemaker://ENDPOINT (with --inference-component for its components), "
            "router://HOST:PORT (the tenant router)."
        ),
    ],
    tenant: Annotated[
        str | None,
        typer.Option(help="Follow the registered model as this tenant's requests are routed."),
    ] = None,
    tenants: Annotated[
        str | None,
        typer.Option(
            help="Router targets: send each request as one of these tenants, t1,t2 or @FILE "
            "(one a line, at most 100,000)."
        ),
    ] = None,
    tenant_distribution: Annotated[
        str | None,
        typer.Option(
            help="Router targets: traffic over --tenants, uniform or zipf:S (default uniform)."
        ),
    ] = None,
    api_keys: Annotated[
        str | None,
        typer.Option(
            help="Router targets: @FILE (YAML/JSON) of tenant: API key; each request sends its "
            "tenant's key (default: the X-Tenant-Id header). Without --tenants, its tenants."
        ),
    ] = None,
    protocol: Annotated[
        str | None,
        typer.Option(
            help="http | grpc | sagemaker | sagemaker-ic | http-json | router "
            "(default: from TARGET)."
        ),
    ] = None,
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model", "--models", "-m", help="Model(s) to load: NAME, m1,m2 or @FILE (repeatable)."
        ),
    ] = None,
    inference_component: Annotated[
        list[str] | None,
        typer.Option(
            "--inference-component",
            help="sagemaker://ENDPOINT: call these inference components of it (NAME, ic1,ic2 "
            "or @FILE; repeatable), with --stream through InvokeEndpointWithResponseStream.",
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
) -> int:
    """Load a model endpoint and report latency percentiles, throughput and errors; gate on an SLA."""
    from mlops_cli import api
    from mlops_cli.perf.options import PerftestFlags, perftest_options

    cli: CliContext = ctx.obj
    options = perftest_options(
        PerftestFlags(
            concurrency=concurrency,
            rate=rate,
            arrival=arrival,
            duration=duration,
            requests=requests,
            warmup=warmup,
            window=window,
            max_windows=max_windows,
            stable_windows=stable_windows,
            stable_tolerance=stable_tolerance,
            workers=workers,
            distribution=distribution,
            seed=seed,
            protocol=protocol,
            models=tuple(model or ()),
            inference_components=tuple(inference_component or ()),
            tenant=tenant,
            tenants=tenants,
            tenant_distribution=tenant_distribution,
            api_keys=api_keys,
            stream=stream,
            timeout=timeout,
            max_connections=max_connections,
            method=method,
            headers=tuple(header or ()),
            payload=payload,
            template=template,
            sla=sla,
            max_error_rate=max_error_rate,
        )
    )
    result = api.perftest(
        target=target,
        settings=cli.settings(),
        load=options.load,
        reach=options.reach,
        sla=options.sla,
        max_error_rate=options.max_error_rate,
        report_dir=report,
        baseline=baseline,
        payload_file=options.payload_file,
        template=options.template,
        on_window=_progress(cli),
        on_note=cli.warn,
    )
    return cli.emit(result, _render(result.document, result.written))


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
    from mlops_cli.perf.report_text import (
        cold_loads,
        latency_text,
        served_tenants,
        served_versions,
    )

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
        for line in served_tenants(document):
            console.print(line, markup=False)
        for line in cold_loads(document):
            console.print(line, markup=False)
        if document.get("sla"):
            verdict = "[green]met[/]" if document["sla"]["passed"] else "[red]not met[/]"
            console.print(f"SLA {document['sla']['expression']}: {verdict}")
        for kind, path in written.items():
            console.print(f"{kind}: {path}")

    return human
