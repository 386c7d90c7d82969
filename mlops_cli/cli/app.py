"""The Typer application: global options and the registered command groups."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlops_cli import __version__
from mlops_cli.cli import (
    config_cmd,
    init_cmd,
    local_cmd,
    package_cmd,
    upload_cmd,
    validate_cmd,
)
from mlops_cli.cli.context import CliContext

app = typer.Typer(
    name="mlops",
    help="Take a trained model from weights on disk to a versioned, routed, tested endpoint.",
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command("init")(init_cmd.init)
app.command("validate")(validate_cmd.validate)
app.command("upload")(upload_cmd.upload)
app.add_typer(package_cmd.app, name="package")
app.add_typer(local_cmd.app, name="local")
app.add_typer(config_cmd.app, name="config")


def _print_version(value: bool) -> None:
    if value:
        print(f"mlops {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print only the result, as one JSON document, on stdout.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress or notes.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="More notes on stderr.")] = False,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="Project config file to use instead of .mlops/config.yaml."),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", metavar="KEY=VALUE", help="Override one setting (repeatable)."),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    """Global options; they may also be given after the subcommand."""
    ctx.obj = CliContext(
        json=json_output, quiet=quiet, verbose=verbose, config_file=config, set_pairs=set_ or []
    )


def run(args: list[str]) -> int:
    """Run the app without Typer's own exit handling; errors propagate to ``main``."""
    command = typer.main.get_command(app)
    result = command.main(args=args, prog_name="mlops", standalone_mode=False)
    return result if isinstance(result, int) else 0


def usage_error_class() -> type[Exception]:
    """The exception class Typer raises for a bad command line."""
    return typer.BadParameter.__mro__[1]  # UsageError: BadParameter's direct base
