"""`mlops validate`: check a model folder's mlops.yaml and code without uploading anything."""

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
    from mlops_cli.checks import check_model
    from mlops_cli.errors import ValidationError
    from mlops_cli.modelspec import SPEC_FILE, load_spec

    cli: CliContext = ctx.obj
    if not folder.is_dir():
        raise ValidationError(f"model folder {folder} does not exist or is not a folder")
    spec = load_spec(folder)
    findings = check_model(folder, spec)
    source = str(folder / SPEC_FILE)
    errors = [f for f in findings if f.severity == "error"]
    result = {
        "valid": not errors,
        "name": spec.name,
        "runtime": spec.runtime,
        "findings": [
            {"severity": f.severity, "key_path": f.key_path, "message": f.message} for f in findings
        ],
    }

    def human(console: Console) -> None:
        for finding in findings:
            colour = "red" if finding.severity == "error" else "yellow"
            console.print(f"[{colour}]{finding.severity}[/]: {finding.line(source)}")
        if not errors:
            console.print(f"{source}: valid ({spec.name}, {spec.runtime})")

    cli.emit(result, human)
    if errors:
        raise typer.Exit(2)
