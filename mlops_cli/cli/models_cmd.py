"""`mlops models` and `mlops alias`: what is registered, and the names that point at versions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

import typer

from mlops_cli.cli.context import CliContext
from mlops_cli.cli.options import ModelArg, RegistryOpt
from mlops_cli.cli.render_helpers import print_table

if TYPE_CHECKING:
    from rich.console import Console

app = typer.Typer(help="List, inspect, update and archive registered models.", no_args_is_help=True)
alias_app = typer.Typer(
    help="Aliases (production, staging, ...) pointing at versions.", no_args_is_help=True
)


@app.command("list")
def list_models(ctx: typer.Context, registry: RegistryOpt = None) -> int:
    """Every registered model."""
    from mlops_cli import api

    cli: CliContext = ctx.obj
    models = api.list_models(settings=cli.settings({"registry": registry}))
    return cli.emit(
        [m.to_dict() for m in models],
        lambda c: print_table(
            c,
            ["model", "latest", "default alias", "private to", "description"],
            [
                [m.name, m.latest_version, m.default_alias, ",".join(m.private_to), m.description]
                for m in models
            ],
        ),
    )


@app.command("show")
def show(ctx: typer.Context, model: ModelArg, registry: RegistryOpt = None) -> int:
    """A model with its aliases and routes."""
    from mlops_cli import api

    cli: CliContext = ctx.obj
    overview = api.show_model(model=model, settings=cli.settings({"registry": registry}))
    record = overview.model

    def human(console: Console) -> None:
        visibility = f"private to {', '.join(record.private_to)}" if record.private_to else "public"
        console.print(
            f"{record.name}: {record.latest_version} version{'' if record.latest_version == 1 else 's'}, "
            f"default @{record.default_alias}, {visibility}"
        )
        for alias in overview.aliases:
            console.print(f"  @{alias.alias} -> {alias.version}")
        for route in overview.routes:
            canary = (
                f" (canary {route.canary_version} at {route.canary_percent:g}%)"
                if route.canary_version
                else ""
            )
            console.print(f"  route {route.tenant} -> {route.target}{canary}")

    return cli.emit(overview, human)


@app.command("versions")
def versions(ctx: typer.Context, model: ModelArg, registry: RegistryOpt = None) -> int:
    """Every version of a model with its package and lineage."""
    from mlops_cli import api

    cli: CliContext = ctx.obj
    records = api.list_versions(model=model, settings=cli.settings({"registry": registry}))
    return cli.emit(
        [v.to_dict() for v in records],
        lambda c: print_table(
            c,
            ["version", "status", "package", "git", "created", "description"],
            [
                [
                    v.version,
                    v.status,
                    v.package_digest[:12],
                    str(v.lineage.get("git_commit", ""))[:10]
                    + ("*" if v.lineage.get("git_dirty") else ""),
                    v.created_at,
                    v.description,
                ]
                for v in records
            ],
        ),
    )


@app.command("archive")
def archive(
    ctx: typer.Context,
    model: ModelArg,
    version: Annotated[int, typer.Argument(help="Version number.")],
    registry: RegistryOpt = None,
) -> int:
    """Archive a version (refused while an alias, route or deployment uses it)."""
    from mlops_cli import api

    cli: CliContext = ctx.obj
    settings = cli.settings({"registry": registry})
    record = api.archive_version(model=model, version=version, settings=settings)
    return cli.emit(record.to_dict(), lambda c: c.print(f"archived {model} version {version}"))


@app.command("update")
def update(
    ctx: typer.Context,
    model: ModelArg,
    description: Annotated[str | None, typer.Option(help="New description.")] = None,
    default_alias: Annotated[
        str | None, typer.Option(help="Alias used when a tenant has no route.")
    ] = None,
    private_to: Annotated[
        str | None,
        typer.Option(
            metavar="TENANT[,TENANT...]",
            help="Only these tenants can resolve the model (replaces the list).",
        ),
    ] = None,
    public: Annotated[
        bool, typer.Option("--public", help="Visible to every tenant (clears --private-to).")
    ] = False,
    registry: RegistryOpt = None,
) -> int:
    """Change a model's description, default alias or visibility."""
    from mlops_cli import api
    from mlops_cli.errors import UsageError

    cli: CliContext = ctx.obj
    if public and private_to is not None:
        raise UsageError("--public and --private-to contradict each other", hint="give one of them")
    visibility = () if public else _private_to(private_to)
    if description is None and default_alias is None and visibility is None:
        raise UsageError(
            f"nothing to update for {model}",
            hint="give --description, --default-alias, --private-to or --public",
        )
    record = api.update_model(
        model=model,
        settings=cli.settings({"registry": registry}),
        description=description,
        default_alias=default_alias,
        private_to=visibility,
    )
    return cli.emit(record.to_dict(), lambda c: c.print(f"updated {model}"))


def _private_to(text: str | None) -> tuple[str, ...] | None:
    """``--private-to``: one or more tenant names, comma-separated (never empty: making a model
    public is ``--public``, so that a blank value cannot do it by accident)."""
    from mlops_cli.errors import UsageError
    from mlops_cli.registry.base import check_name

    if text is None:
        return None
    tenants = tuple(part.strip() for part in text.split(","))
    if not all(tenants):
        raise UsageError(
            f"--private-to takes tenant names separated by commas, got {text!r}",
            hint="e.g. --private-to acme,globex; --public makes the model visible to every tenant",
        )
    return tuple(check_name("tenant", tenant) for tenant in tenants)


def _expected(text: str | None) -> int | Literal["absent"] | None:
    from mlops_cli.errors import UsageError

    if text is None:
        return None
    if text in ("none", "absent"):
        return "absent"
    try:
        return int(text)
    except ValueError:
        raise UsageError(
            f"--expect-version takes a version number or 'none', got {text!r}"
        ) from None


@alias_app.command("set")
def alias_set(
    ctx: typer.Context,
    model: ModelArg,
    alias: Annotated[str, typer.Argument(help="Alias name, e.g. production.")],
    version: Annotated[int, typer.Argument(help="Version number.")],
    expect_version: Annotated[
        str | None,
        typer.Option(
            help="Only if the alias points at this version now ('none': only if it does not exist)."
        ),
    ] = None,
    registry: RegistryOpt = None,
) -> int:
    """Point an alias at a version (compare-and-swap with --expect-version)."""
    from mlops_cli import api

    cli: CliContext = ctx.obj
    expected = _expected(expect_version)
    record = api.set_alias(
        model=model,
        alias=alias,
        version=version,
        settings=cli.settings({"registry": registry}),
        expect_version=expected,
    )
    return cli.emit(
        record.to_dict(),
        lambda c: c.print(f"{model}@{alias} -> {version} (revision {record.revision})"),
    )


@alias_app.command("get")
def alias_get(ctx: typer.Context, model: ModelArg, alias: str, registry: RegistryOpt = None) -> int:
    """The version an alias points at."""
    from mlops_cli import api

    cli: CliContext = ctx.obj
    record = api.get_alias(model=model, alias=alias, settings=cli.settings({"registry": registry}))
    return cli.emit(record.to_dict(), lambda c: c.print(f"{model}@{alias} -> {record.version}"))


@alias_app.command("list")
def alias_list(ctx: typer.Context, model: ModelArg, registry: RegistryOpt = None) -> int:
    """Every alias of a model."""
    from mlops_cli import api

    cli: CliContext = ctx.obj
    records = api.list_aliases(model=model, settings=cli.settings({"registry": registry}))
    return cli.emit(
        [a.to_dict() for a in records],
        lambda c: print_table(
            c,
            ["alias", "version", "revision", "updated"],
            [[a.alias, a.version, a.revision, a.updated_at] for a in records],
        ),
    )


@alias_app.command("delete")
def alias_delete(
    ctx: typer.Context,
    model: ModelArg,
    alias: str,
    expect_version: Annotated[
        int | None, typer.Option(help="Only if the alias points at this version.")
    ] = None,
    registry: RegistryOpt = None,
) -> int:
    """Remove an alias (refused while a route uses it)."""
    from mlops_cli import api

    cli: CliContext = ctx.obj
    api.delete_alias(
        model=model,
        alias=alias,
        settings=cli.settings({"registry": registry}),
        expect_version=expect_version,
    )
    return cli.emit(
        {"model": model, "alias": alias, "deleted": True},
        lambda c: c.print(f"deleted {model}@{alias}"),
    )
