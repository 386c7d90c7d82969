"""`mlops register` and `mlops registry init`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from mlops_cli.cli.context import CliContext
from mlops_cli.cli.options import RegistryOpt, StoreOpt

if TYPE_CHECKING:
    from rich.console import Console

registry_app = typer.Typer(help="Set up the registry backend.", no_args_is_help=True)


def parse_tags(pairs: list[str] | None) -> dict[str, str]:
    from mlops_cli.errors import UsageError

    tags: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--tag takes KEY=VALUE, got {pair!r}")
        tags[key] = value
    return tags


def register(
    ctx: typer.Context,
    source: Annotated[
        str,
        typer.Argument(help="Package URI, sha256:<digest>, a model folder or hf://org/name@rev."),
    ],
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Model name (default: the package's).")
    ] = None,
    alias: Annotated[
        str | None, typer.Option("--alias", "-a", help="Point this alias at the new version.")
    ] = None,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", metavar="KEY=VALUE", help="Repeatable.")
    ] = None,
    description: Annotated[str, typer.Option(help="What this version is.")] = "",
    new_version: Annotated[
        bool,
        typer.Option(
            "--new-version", help="A new number even if this package is registered already."
        ),
    ] = False,
    verify: Annotated[
        str, typer.Option(help="sizes (blobs present at their size) or full (read and hash).")
    ] = "sizes",
    store: StoreOpt = None,
    registry: RegistryOpt = None,
) -> int:
    """Record a package as the next immutable version of a model, with its lineage."""
    from mlops_cli import api
    from mlops_cli.errors import UsageError

    cli: CliContext = ctx.obj
    if verify not in ("sizes", "full"):
        raise UsageError(f"unknown --verify {verify!r}", hint="use sizes or full")
    result = api.register(
        source=source,
        settings=cli.settings({"store": store, "registry": registry}),
        model=model,
        alias=alias,
        tags=parse_tags(tag),
        description=description,
        new_version=new_version,
        verify="full" if verify == "full" else "sizes",
        reporter=cli.reporter(),
    )
    document = result.to_dict()

    def human(console: Console) -> None:
        verb = "registered" if result.registered.created else "already registered as"
        line = f"{verb} {document['model']} version {document['version']}"
        if alias:
            line += f" (@{alias})"
        console.print(line)
        console.print(f"package {document['package_uri']}")

    return cli.emit(result, human)


@registry_app.command("init")
def init(ctx: typer.Context, registry: RegistryOpt = None) -> int:
    """Create the registry's schema or DynamoDB table if needed (idempotent)."""
    from mlops_cli import api

    cli: CliContext = ctx.obj
    setup = api.init_registry(settings=cli.settings({"registry": registry}))
    return cli.emit(
        setup,
        lambda console: console.print(
            f"{setup.registry}: {'created' if setup.created else 'already set up'}"
        ),
    )
