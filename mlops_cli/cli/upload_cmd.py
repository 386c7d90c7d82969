"""`mlops upload`: a model folder or a Hugging Face snapshot into the artifact store."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from mlops_cli.cli.context import CliContext
from mlops_cli.cli.render_helpers import human_bytes, short

if TYPE_CHECKING:
    from rich.console import Console


def upload(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help="Model folder, or hf://org/name@revision.")],
    store: Annotated[
        str | None,
        typer.Option("--store", help="Artifact store URI (file:///path or s3://bucket/prefix)."),
    ] = None,
    no_cache: Annotated[
        bool,
        typer.Option(
            "--no-cache", help="Hash every file again instead of trusting the hash cache."
        ),
    ] = False,
) -> None:
    """Package SOURCE (every file with size and sha256) and send the blobs the store lacks."""
    from mlops_cli.hashcache import HashCache
    from mlops_cli.stores import open_store
    from mlops_cli.upload import upload as run_upload

    cli: CliContext = ctx.obj
    settings = cli.settings({"store": store})
    cache = None if no_cache else HashCache(settings.workspace / "cache" / "hashes.json")
    result = run_upload(source, open_store(settings.store), reporter=cli.reporter(), cache=cache)
    for warning in result.warnings:
        cli.warn(warning)

    def human(console: Console) -> None:
        console.print(
            f"uploaded {result.name} {short(result.digest)}: {result.files} files, "
            f"{human_bytes(result.bytes_total)}, sent {human_bytes(result.bytes_sent)} "
            f"({result.blobs_sent} of {result.blobs_total} blobs) in {result.seconds:.1f} s"
        )
        console.print(result.uri)

    cli.emit(result.to_dict(), human)
