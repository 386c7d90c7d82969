"""`mlops store`: check the artifact store's blobs, and move damaged ones aside."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from mlops_cli.cli.context import CliContext
from mlops_cli.cli.render_helpers import human_bytes, short

if TYPE_CHECKING:
    from rich.console import Console

app = typer.Typer(help="Check and repair the artifact store.", no_args_is_help=True)


@app.command("verify")
def verify(
    ctx: typer.Context,
    store: Annotated[
        str | None,
        typer.Option("--store", help="Artifact store URI (file:///path or s3://bucket/prefix)."),
    ] = None,
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="Move damaged blobs to the store's quarantine/ so the next upload sends them again.",
        ),
    ] = False,
) -> None:
    """Hash every blob of the store and compare it with its name; exit 1 if damage is left."""
    from mlops_cli.errors import MlopsError
    from mlops_cli.stores import open_store
    from mlops_cli.stores.verify import verify_store

    cli: CliContext = ctx.obj
    settings = cli.settings({"store": store})
    result = verify_store(open_store(settings.store), repair=repair, reporter=cli.reporter())

    def human(console: Console) -> None:
        console.print(
            f"checked {result.blobs} blobs ({human_bytes(result.bytes)}) in {result.store}: "
            + (f"{len(result.damaged)} damaged" if result.damaged else "all intact")
        )
        for blob in result.damaged:
            fate = f"moved to {blob.quarantined}" if blob.quarantined else "left in place"
            console.print(
                f"  {short(blob.digest)}  {human_bytes(blob.size):>10}  "
                f"hashes to {short(blob.actual)}, {fate}"
            )

    cli.emit(result.to_dict(), human)
    left = result.unrepaired
    if not left:
        if result.damaged:
            cli.info("upload the models that hold these blobs again to restore them")
        return
    error = MlopsError(
        f"{len(left)} of {result.blobs} blobs in {result.store} are damaged"
        + (" and could not be moved aside" if repair else ""),
        hint=(
            "check that the store is writable, then run it again"
            if repair
            else "run `mlops store verify --repair` to move them to quarantine/, then upload again"
        ),
    )
    if not cli.json:
        raise error
    # With --json the result is already on stdout: the error goes to stderr alone.
    print(f"error: {error.message} (hint: {error.hint})", file=sys.stderr)
    raise typer.Exit(error.exit_code)
