"""`mlops profile`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from mlops_cli.cli.context import CliContext
from mlops_cli.cli.register_cmd import RegistryOpt

if TYPE_CHECKING:
    from rich.console import Console


def profile(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(metavar="MODEL[@VERSION|@ALIAS]", help="What to profile.")],
    requests: Annotated[
        int, typer.Option("--requests", "-n", min=1, max=100_000, help="Requests to time.")
    ] = 50,
    store: Annotated[str | None, typer.Option("--store", help="Artifact store URI.")] = None,
    registry: RegistryOpt = None,
) -> None:
    """Measure a version's memory and p50 latency on the local server and store them."""
    from mlops_cli.deploy.engine import resolve_version
    from mlops_cli.deploy.local import LocalTarget
    from mlops_cli.deploy.profile import profile as run_profile
    from mlops_cli.stores import open_store

    cli: CliContext = ctx.obj
    settings = cli.settings({"store": store, "registry": registry})
    backend = cli.registry(settings.registry)
    version = resolve_version(backend, ref)
    reporter = cli.reporter()
    result = run_profile(
        backend,
        version,
        lambda root: open_store(root or settings.store),
        LocalTarget.from_settings(settings, reporter=reporter),
        requests=requests,
        reporter=reporter,
    )

    def human(console: Console) -> None:
        console.print(
            f"{result.model} v{result.version}: {result.memory_mb:g} MB resident, "
            f"p50 {result.latency_ms:.2f} ms, p90 {result.p90_ms:.2f} ms over {result.requests} requests"
        )

    cli.emit(result.to_dict(), human)
