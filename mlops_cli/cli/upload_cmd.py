"""`mlops upload`: a model folder or a Hugging Face snapshot into the artifact store."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from mlops_cli.cli.context import CliContext
from mlops_cli.cli.options import StoreUriOpt
from mlops_cli.cli.render_helpers import human_bytes, short

if TYPE_CHECKING:
    from rich.console import Console


def upload(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help="Model folder, or hf://org/name@revision.")],
    store: StoreUriOpt = None,
    no_cache: Annotated[
        bool,
        typer.Option(
            "--no-cache", help="Hash every file again instead of trusting the hash cache."
        ),
    ] = False,
) -> int:
    """Package SOURCE (every file with size and sha256) and send the blobs the store lacks."""
    from mlops_cli import api

    cli: CliContext = ctx.obj
    result = api.upload(
        source=source,
        settings=cli.settings({"store": store}),
        use_cache=not no_cache,
        reporter=cli.reporter(),
    )
    for warning in result.warnings:
        cli.warn(warning)

    def human(console: Console) -> None:
        console.print(
            f"uploaded {result.name} {short(result.digest)}: {result.files} files, "
            f"{human_bytes(result.bytes_total)}, sent {human_bytes(result.bytes_sent)} "
            f"({result.blobs_sent} of {result.blobs_total} blobs) in {result.seconds:.1f} s"
        )
        console.print(result.uri)

    return cli.emit(result, human)
