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
) -> int:
    """Validate mlops.yaml against the schema, then check files, code, shapes and streaming."""
    from mlops_cli import api

    cli: CliContext = ctx.obj
    report = api.validate(folder=folder)
    for finding in report.findings:
        if finding.severity == "error" or not cli.quiet:
            cli.stderr.print(
                f"{finding.severity}: {finding.line(report.source)}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )

    def human(console: Console) -> None:
        if report.spec is not None and not report.errors:
            console.print(
                f"{report.source}: valid ({report.spec.name}, {report.spec.runtime})", markup=False
            )

    return cli.emit(report, human)
