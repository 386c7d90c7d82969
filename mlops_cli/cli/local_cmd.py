"""`mlops local`: the embedded Triton server under the workspace."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mlops_cli.cli.context import CliContext

if TYPE_CHECKING:
    from rich.console import Console

    from mlops_cli.local import LocalServerStatus, LocalTriton

app = typer.Typer(help="Run the embedded local Triton server.", no_args_is_help=True)


def _manager(cli: CliContext, overrides: dict[str, Any] | None = None) -> LocalTriton:
    from mlops_cli.local import LocalTriton
    from mlops_cli.workspace import Workspace

    settings = cli.settings(overrides)
    return LocalTriton(Workspace(settings.workspace), settings.local, reporter=cli.reporter())


def _mib(size: int) -> str:
    return f"{size / 2**20:.0f} MiB"


def _render_status(status: LocalServerStatus) -> Any:
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


MmeOpt = Annotated[
    bool, typer.Option("--mme", help="mme-local, the SageMaker multi-model endpoint stand-in.")
]


def _mme(cli: CliContext, action: str) -> None:
    """``up``/``down``/``status`` of the workspace's mme-local server."""
    from mlops_cli.mme.manager import LocalMME
    from mlops_cli.workspace import Workspace

    settings = cli.settings()
    manager = LocalMME(Workspace(settings.workspace), reporter=cli.reporter())
    if action == "up":
        triton = _manager(cli).read_state()
        state, already = manager.up(triton_url=triton.http_url if triton else None)
        cli.info("mme-local already running" if already else "mme-local started")
        cli.emit(
            {"already_running": already, "url": state.url, "pid": state.pid},
            lambda console: console.print(f"mme-local: running pid {state.pid}, {state.url}"),
        )
    elif action == "down":
        was_running = manager.down()
        cli.emit(
            {"was_running": was_running},
            lambda console: console.print(
                "mme-local stopped" if was_running else "mme-local was not running"
            ),
        )
    else:
        observed = manager.status()
        cli.emit(observed, lambda console: console.print(f"mme-local: {observed['state']}"))
        if observed["state"] != "running":
            raise typer.Exit(1)


@app.command("up")
def up(
    ctx: typer.Context,
    http_port: Annotated[int | None, typer.Option(help="HTTP port (0: a free one).")] = None,
    grpc_port: Annotated[int | None, typer.Option(help="gRPC port (0: a free one).")] = None,
    metrics_port: Annotated[int | None, typer.Option(help="Metrics port (0: a free one).")] = None,
    timeout: Annotated[float | None, typer.Option(help="Seconds to wait for readiness.")] = None,
    mme: MmeOpt = False,
) -> None:
    """Start the local Triton server (a no-op when it already runs) and wait until it is ready."""
    cli: CliContext = ctx.obj
    if mme:
        _mme(cli, "up")
        return
    manager = _manager(
        cli,
        {
            "local.http_port": http_port,
            "local.grpc_port": grpc_port,
            "local.metrics_port": metrics_port,
            "local.startup_timeout": timeout,
        },
    )
    from mlops_cli.deploy.local import start_and_reload

    started = start_and_reload(manager, cli.registry(), reporter=cli.reporter())
    cli.info("local Triton already running" if started.already_running else "local Triton started")
    if started.reloaded:
        count = len(started.reloaded)
        cli.info(f"reloaded {count} deployed {_plural(count, 'model')}")
    for name, reason in started.failed.items():
        cli.warn(f"{name}: recorded as deployed here, but not loaded again: {reason}")
    cli.emit(started.to_dict(), _render_status(started.status))
    if started.failed:
        raise typer.Exit(1)


def _plural(count: int, noun: str) -> str:
    return noun if count == 1 else f"{noun}es" if noun.endswith("s") else f"{noun}s"


@app.command("down")
def down(ctx: typer.Context, mme: MmeOpt = False) -> None:
    """Stop the local Triton server and every backend process it started."""
    cli: CliContext = ctx.obj
    if mme:
        _mme(cli, "down")
        return
    result = _manager(cli).down()

    def human(console: Console) -> None:
        if not result.was_running:
            console.print("local Triton was not running")
        else:
            how = "killed after the stop timeout" if result.forced else "stopped"
            count = len(result.stopped_pids)
            console.print(f"local Triton {how} ({count} {_plural(count, 'process')})")

    cli.emit(
        {
            "was_running": result.was_running,
            "stopped_pids": result.stopped_pids,
            "forced": result.forced,
        },
        human,
    )


@app.command("status")
def status(ctx: typer.Context, mme: MmeOpt = False) -> None:
    """Show whether the server runs, its addresses, memory and models. Exit 1 unless running."""
    cli: CliContext = ctx.obj
    if mme:
        _mme(cli, "status")
        return
    observed = _manager(cli).status()
    if observed.state == "dead":
        cli.warn(observed.note)
    cli.emit(observed.to_dict(), _render_status(observed))
    if observed.state != "running":
        raise typer.Exit(1)


@app.command("logs")
def logs(
    ctx: typer.Context,
    lines: Annotated[int, typer.Option("--lines", "-n", min=0, help="How many lines.")] = 50,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines.")
    ] = False,
) -> None:
    """Print the end of the server log."""
    cli: CliContext = ctx.obj
    manager = _manager(cli)
    tail = manager.log_lines(lines)
    if cli.json:
        cli.emit({"log_path": str(manager.log_path), "lines": tail})
        return
    for line in tail:
        print(line)
    if follow:
        _follow(manager)


def _follow(manager: LocalTriton) -> None:
    if not manager.log_path.is_file():
        return
    with open(manager.log_path, encoding="utf-8", errors="replace") as handle:
        handle.seek(0, 2)
        while True:
            line = handle.readline()
            if line:
                print(line, end="", flush=True)
            else:
                time.sleep(0.2)
