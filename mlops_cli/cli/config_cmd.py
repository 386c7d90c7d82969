"""`mlops config`: the effective configuration and where each value came from."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from mlops_cli.cli.context import CliContext

if TYPE_CHECKING:
    from rich.console import Console

app = typer.Typer(help="Inspect the effective configuration.", no_args_is_help=True)


@app.command("show")
def show(ctx: typer.Context) -> int:
    """Print every setting, its value and its source (flag, env, file or default)."""
    cli: CliContext = ctx.obj
    settings = cli.settings()
    values = settings.as_flat_dict()
    sources = {key: settings.sources.get(key, "default") for key in values}
    result = {"values": values, "sources": sources, "files": [str(path) for path in settings.files]}

    def human(console: Console) -> None:
        from rich.table import Table

        table = Table(box=None, pad_edge=False)
        table.add_column("key", style="bold")
        table.add_column("value")
        table.add_column("source", style="dim")
        for key, value in values.items():
            table.add_row(key, str(value), sources[key])
        console.print(table)

    return cli.emit(result, human)
