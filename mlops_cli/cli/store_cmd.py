"""`mlops store`: check the artifact store's blobs, and move damaged ones aside."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from mlops_cli.cli.context import CliContext
from mlops_cli.cli.options import StoreUriOpt
from mlops_cli.cli.render_helpers import human_bytes, short

if TYPE_CHECKING:
    from rich.console import Console

app = typer.Typer(help="Check and repair the artifact store.", no_args_is_help=True)


@app.command("verify")
def verify(
    ctx: typer.Context,
    store: StoreUriOpt = None,
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="Move damaged blobs to the store's quarantine/ so the next upload sends them again.",
        ),
    ] = False,
) -> int:
    """Hash every blob of the store and compare it with its name; exit 1 if damage is left."""
    from mlops_cli import api

    cli: CliContext = ctx.obj
    check = api.verify_store(
        settings=cli.settings({"store": store}), repair=repair, reporter=cli.reporter()
    )
    result = check.result

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

    code = cli.emit(check, human)  # damage left: raises, and main prints the error line
    if result.damaged:
        cli.info("upload the models that hold these blobs again to restore them")
    return code
