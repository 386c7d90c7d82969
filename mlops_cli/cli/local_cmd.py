"""`mlops local`: the embedded Triton server under the workspace (and mme-local with --mme)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer

from mlops_cli.cli.context import CliContext
from mlops_cli.cli.options import MmeOpt

if TYPE_CHECKING:
    from rich.console import Console

    from mlops_cli.local import LocalServerStatus

app = typer.Typer(help="Run the embedded local Triton server.", no_args_is_help=True)


def _mib(size: int) -> str:
    return f"{size / 2**20:.0f} MiB"


def _plural(count: int, noun: str) -> str:
    return noun if count == 1 else f"{noun}es" if noun.endswith("s") else f"{noun}s"


def _render_status(status: LocalServerStatus) -> Callable[[Console], None]:
    def human(console: Console) -> None:
        if status.state != "running":
            console.print(
                f"local Triton: {status.state}" + (f" ({status.note})" if status.note else "")
            )
            return
        console.print(
            f"local Triton: [green]running[/] pid {status.pid}, {status.http_url} (HTTP), "
            f"{status.grpc_url} (gRPC), memory {_mib(status.total_rss_bytes)}"
        )
        if not status.models:
            console.print("no models loaded")
            return
        from rich.table import Table

        table = Table(box=None, pad_edge=False)
        for column in ("model", "version", "state", "memory", "reason"):
            table.add_column(column)
        for model in status.models:
            table.add_row(
                model.name,
                model.version,
                model.state,
                _mib(model.rss_bytes) if model.rss_bytes else "",
                model.reason,
            )
        console.print(table)

    return human


@app.command("up")
def up(
    ctx: typer.Context,
    http_port: Annotated[int | None, typer.Option(help="HTTP port (0: a free one).")] = None,
    grpc_port: Annotated[int | None, typer.Option(help="gRPC port (0: a free one).")] = None,
    metrics_port: Annotated[int | None, typer.Option(help="Metrics port (0: a free one).")] = None,
    timeout: Annotated[float | None, typer.Option(help="Seconds to wait for readiness.")] = None,
    mme: MmeOpt = False,
) -> int:
    """Start the local Triton server (a no-op when it already runs) and wait until it is ready."""
    from mlops_cli import api

    cli: CliContext = ctx.obj
    if mme:
        mme_up = api.mme_up(settings=cli.settings(), reporter=cli.reporter())
        cli.info("mme-local already running" if mme_up.already_running else "mme-local started")
        return cli.emit(
            mme_up,
            lambda console: console.print(f"mme-local: running pid {mme_up.pid}, {mme_up.url}"),
        )
    ports = {
        "local.http_port": http_port,
        "local.grpc_port": grpc_port,
        "local.metrics_port": metrics_port,
        "local.startup_timeout": timeout,
    }
    result = api.local_up(settings=cli.settings(ports), reporter=cli.reporter())
    started = result.start
    cli.info("local Triton already running" if started.already_running else "local Triton started")
    if started.reloaded:
        count = len(started.reloaded)
        cli.info(f"reloaded {count} deployed {_plural(count, 'model')}")
    for name, reason in started.failed.items():
        cli.warn(f"{name}: recorded as deployed here, but not loaded again: {reason}")
    return cli.emit(result, _render_status(started.status))


@app.command("down")
def down(ctx: typer.Context, mme: MmeOpt = False) -> int:
    """Stop the local Triton server and every backend process it started."""
    from mlops_cli import api

    cli: CliContext = ctx.obj
    if mme:
        stopped = api.mme_down(settings=cli.settings(), reporter=cli.reporter())
        return cli.emit(
            stopped,
            lambda console: console.print(
                "mme-local stopped" if stopped.was_running else "mme-local was not running"
            ),
        )
    result = api.local_down(settings=cli.settings(), reporter=cli.reporter())

    def human(console: Console) -> None:
        if not result.was_running:
            console.print("local Triton was not running")
        else:
            how = "killed after the stop timeout" if result.forced else "stopped"
            count = len(result.stopped_pids)
            console.print(f"local Triton {how} ({count} {_plural(count, 'process')})")

    document = {
        "was_running": result.was_running,
        "stopped_pids": result.stopped_pids,
        "forced": result.forced,
    }
    return cli.emit(document, human)


@app.command("status")
def status(ctx: typer.Context, mme: MmeOpt = False) -> int:
    """Show whether the server runs, its addresses, memory and models. Exit 1 unless running."""
    from mlops_cli import api

    cli: CliContext = ctx.obj
    if mme:
        observed = api.mme_status(settings=cli.settings())
        return cli.emit(observed, lambda console: console.print(f"mme-local: {observed.state}"))
    local = api.local_status(settings=cli.settings())
    if local.status.state == "dead":
        cli.warn(local.status.note)
    return cli.emit(local, _render_status(local.status))


@app.command("logs")
def logs(
    ctx: typer.Context,
    lines: Annotated[int, typer.Option("--lines", "-n", min=0, help="How many lines.")] = 50,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines.")
    ] = False,
) -> int:
    """Print the end of the server log."""
    from mlops_cli import api

    cli: CliContext = ctx.obj
    log = api.local_log(settings=cli.settings(), lines=lines)
    if cli.json:
        return cli.emit(log)
    for line in log.lines:
        print(line)
    if follow:
        for appended in log.follow():
            print(appended, end="", flush=True)
    return 0
