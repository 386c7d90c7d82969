"""`mlops validate`: check a model folder's mlops.yaml, code and files without uploading anything.

It reports what ``upload`` would refuse, all of it at once: every schema problem, every semantic
finding and the folder scan. Each finding is one ``error: ...`` or ``warning: ...`` line on stderr;
with ``--json`` the same findings are one JSON document on stdout. Exit 2 when any is an error.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mlops_cli.cli.context import CliContext

if TYPE_CHECKING:
    from rich.console import Console


def validate(
    ctx: typer.Context,
    folder: Annotated[Path, typer.Argument(help="Model folder holding mlops.yaml.")] = Path("."),
) -> None:
    """Validate mlops.yaml against the schema, then check files, code, shapes and streaming."""
    from mlops_cli.checks import inspect_model_dir

    cli: CliContext = ctx.obj
    inspection = inspect_model_dir(folder)
    spec = inspection.spec
    errors = inspection.errors
    result = {
        "valid": not errors,
        "name": spec.name if spec else None,
        "runtime": spec.runtime if spec else None,
        "findings": [finding.to_dict() for finding in inspection.findings],
    }
    stderr = cli.stderr
    for finding in inspection.findings:
        if finding.severity == "error" or not cli.quiet:
            stderr.print(
                f"{finding.severity}: {finding.line(inspection.source)}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )

    def human(console: Console) -> None:
        if spec is not None and not errors:
            console.print(f"{inspection.source}: valid ({spec.name}, {spec.runtime})", markup=False)

    cli.emit(result, human)
    if errors:
        raise typer.Exit(2)
