"""`mlops init`: a new model folder from a template."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mlops_cli.cli.context import CliContext

if TYPE_CHECKING:
    from rich.console import Console


def init(
    ctx: typer.Context,
    folder: Annotated[Path, typer.Argument(help="Folder to create (must be empty or absent).")],
    template: Annotated[
        str,
        typer.Option(
            "--template", "-t", help="triton-python, triton-python-stream or sagemaker-mms."
        ),
    ] = "triton-python",
    name: Annotated[
        str | None, typer.Option(help="Model name (default: the folder's name).")
    ] = None,
    force: Annotated[bool, typer.Option(help="Write into a non-empty folder.")] = False,
) -> int:
    """Write mlops.yaml, runnable inference code and small generated weights into FOLDER."""
    from mlops_cli import api

    cli: CliContext = ctx.obj
    result = api.new_model_folder(folder=folder, template=template, name=name, force=force)

    def human(console: Console) -> None:
        console.print(f"created {result.name} in {result.path} ({result.template_title})")
        for path in result.files:
            console.print(f"  {path}")
        console.print(f"next: mlops validate {folder} && mlops upload {folder}")

    return cli.emit(result, human)
