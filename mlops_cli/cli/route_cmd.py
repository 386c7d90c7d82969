"""`mlops route`: which version each tenant gets."""

from __future__ import annotations

from typing import Annotated

import typer

from mlops_cli.cli.context import CliContext
from mlops_cli.cli.options import ModelArg, RegistryOpt, TenantArg
from mlops_cli.cli.render_helpers import print_table

app = typer.Typer(
    help="Tenant routes: tenant -> model version, alias or canary split.", no_args_is_help=True
)


def _target(text: str) -> tuple[int | None, str | None]:
    from mlops_cli.errors import UsageError

    if text.startswith("@"):
        return None, text[1:]
    try:
        return int(text), None
    except ValueError:
        raise UsageError(f"target {text!r} is neither a version number nor @alias") from None


def _canary(text: str | None) -> tuple[int | None, float]:
    from mlops_cli.errors import UsageError

    if text is None:
        return None, 0.0
    version, sep, percent = text.partition(":")
    try:
        if not sep:
            raise ValueError
        return int(version), float(percent.rstrip("%"))
    except ValueError:
        raise UsageError(f"--canary takes VERSION:PERCENT (e.g. 7:10), got {text!r}") from None


@app.command("set")
def route_set(
    ctx: typer.Context,
    tenant: TenantArg,
    model: ModelArg,
    target: Annotated[str, typer.Argument(help="VERSION or @ALIAS.")],
    canary: Annotated[
        str | None, typer.Option(help="VERSION:PERCENT of requests to a canary version.")
    ] = None,
    expect_revision: Annotated[
        int | None, typer.Option(help="Only if the route is at this revision (0: new).")
    ] = None,
    registry: RegistryOpt = None,
) -> int:
    """Route a tenant to a version or alias of a model, optionally with a canary."""
    from mlops_cli import api

    cli: CliContext = ctx.obj
    version, alias = _target(target)
    canary_version, canary_percent = _canary(canary)
    record = api.set_route(
        tenant=tenant,
        model=model,
        settings=cli.settings({"registry": registry}),
        version=version,
        alias=alias,
        canary_version=canary_version,
        canary_percent=canary_percent,
        expect_revision=expect_revision,
    )
    return cli.emit(
        record.to_dict(),
        lambda c: c.print(f"{tenant} -> {model} {record.target} (revision {record.revision})"),
    )


@app.command("get")
def route_get(
    ctx: typer.Context, tenant: TenantArg, model: ModelArg, registry: RegistryOpt = None
) -> int:
    """A tenant's route to a model."""
    from mlops_cli import api

    cli: CliContext = ctx.obj
    settings = cli.settings({"registry": registry})
    record = api.get_route(tenant=tenant, model=model, settings=settings)
    return cli.emit(record.to_dict(), lambda c: c.print(f"{tenant} -> {model} {record.target}"))


@app.command("list")
def route_list(
    ctx: typer.Context,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's routes.")] = None,
    model: Annotated[str | None, typer.Option(help="Only routes to this model.")] = None,
    registry: RegistryOpt = None,
) -> int:
    """Routes, by tenant and model."""
    from mlops_cli import api

    cli: CliContext = ctx.obj
    settings = cli.settings({"registry": registry})
    records = api.list_routes(settings=settings, tenant=tenant, model=model)
    return cli.emit(
        [r.to_dict() for r in records],
        lambda c: print_table(
            c,
            ["tenant", "model", "target", "canary", "revision"],
            [
                [
                    r.tenant,
                    r.model,
                    r.target,
                    f"{r.canary_version}:{r.canary_percent:g}%" if r.canary_version else "",
                    r.revision,
                ]
                for r in records
            ],
        ),
    )


@app.command("delete")
def route_delete(
    ctx: typer.Context,
    tenant: TenantArg,
    model: ModelArg,
    expect_revision: Annotated[
        int | None, typer.Option(help="Only if the route is at this revision.")
    ] = None,
    registry: RegistryOpt = None,
) -> int:
    """Remove a tenant's route (it then gets the model's default alias)."""
    from mlops_cli import api

    cli: CliContext = ctx.obj
    settings = cli.settings({"registry": registry})
    api.delete_route(tenant=tenant, model=model, settings=settings, expect_revision=expect_revision)
    return cli.emit(
        {"tenant": tenant, "model": model, "deleted": True},
        lambda c: c.print(f"deleted route {tenant} -> {model}"),
    )


@app.command("resolve")
def route_resolve(
    ctx: typer.Context,
    tenant: TenantArg,
    model: ModelArg,
    request_key: Annotated[
        str | None, typer.Option(help="Request key for a canary split (sticky).")
    ] = None,
    registry: RegistryOpt = None,
) -> int:
    """Which version this tenant's request gets, and why (route, alias or canary)."""
    from mlops_cli import api

    cli: CliContext = ctx.obj
    settings = cli.settings({"registry": registry})
    resolution = api.resolve_route(
        tenant=tenant, model=model, settings=settings, request_key=request_key
    )
    via = f" via @{resolution.alias}" if resolution.alias else ""
    return cli.emit(
        resolution.to_dict(),
        lambda c: c.print(
            f"{tenant} -> {model} version {resolution.version} ({resolution.source}{via})"
        ),
    )
