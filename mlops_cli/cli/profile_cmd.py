"""`mlops profile`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from mlops_cli.cli.context import CliContext
from mlops_cli.cli.options import RegistryOpt, StoreOpt

if TYPE_CHECKING:
    from rich.console import Console


def profile(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(metavar="MODEL[@VERSION|@ALIAS]", help="What to profile.")],
    requests: Annotated[
        int, typer.Option("--requests", "-n", min=1, max=100_000, help="Requests to time.")
    ] = 50,
    store: StoreOpt = None,
    registry: RegistryOpt = None,
) -> int:
    """Measure a version's memory and p50 latency on the local server and store them."""
    from mlops_cli import api

    cli: CliContext = ctx.obj
    result = api.profile(
        ref=ref,
        settings=cli.settings({"store": store, "registry": registry}),
        requests=requests,
        reporter=cli.reporter(),
    )

    def human(console: Console) -> None:
        console.print(
            f"{result.model} v{result.version}: {result.memory_mb:g} MB resident, "
            f"p50 {result.latency_ms:.2f} ms, p90 {result.p90_ms:.2f} ms over {result.requests} requests"
        )

    return cli.emit(result, human)
