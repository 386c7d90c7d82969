"""`mlops router`: the request path applications call by a stable model name."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlops_cli.cli.context import CliContext
from mlops_cli.cli.options import RegistryOpt, TenantArg

app = typer.Typer(
    help="Serve models by stable name, each tenant routed to its version.", no_args_is_help=True
)

KeysOpt = Annotated[
    Path | None,
    typer.Option("--keys", help="API keys file (tenant and SHA-256 of each key)."),
]


def _size(text: str) -> int:
    from mlops_cli.errors import UsageError

    units = {
        "": 1,
        "b": 1,
        "k": 1024,
        "kib": 1024,
        "m": 2**20,
        "mib": 2**20,
        "g": 2**30,
        "gib": 2**30,
    }
    number = text.strip().lower().rstrip()
    digits = number.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = number[len(digits) :]
    if not (digits.isascii() and digits.isdecimal()) or unit not in units:
        raise UsageError(f"--max-body {text!r} is not a size", hint="e.g. 6MiB, 512KiB, 1048576")
    return int(digits) * units[unit]


@app.command("serve")
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0: a free one).")] = 8700,
    workers: Annotated[
        int, typer.Option(help="Processes serving the same port (SO_REUSEPORT).")
    ] = 1,
    registry: RegistryOpt = None,
    refresh: Annotated[
        float, typer.Option(help="Seconds between checks of the registry's revision.")
    ] = 0.25,
    keys: KeysOpt = None,
    trust_tenant_header: Annotated[
        bool,
        typer.Option(
            help="Believe the tenant header without an API key (behind an authenticating gateway)."
        ),
    ] = False,
    tenant_header: Annotated[str, typer.Option(help="Header naming the tenant.")] = "X-Tenant-Id",
    max_body: Annotated[str, typer.Option(help="Largest request body.")] = "6MiB",
    upstream_timeout: Annotated[
        float, typer.Option(help="Seconds a model server may stay silent before a 504.")
    ] = 60.0,
    idle_timeout: Annotated[
        float, typer.Option(help="Seconds an idle client connection is kept open.")
    ] = 60.0,
    tenant_label: Annotated[
        str, typer.Option(help="Tenant label in metrics: all, none or top:N (the rest: other).")
    ] = "top:1000",
) -> int:
    """Serve KServe v2 under stable model names; each tenant gets the version it is routed to."""
    from mlops_cli import api

    cli: CliContext = ctx.obj
    return api.serve_router(
        settings=cli.settings({"registry": registry}),
        host=host,
        port=port,
        workers=workers,
        refresh_s=refresh,
        tenant_header=tenant_header,
        trust_tenant_header=trust_tenant_header,
        keys_file=keys,
        max_body_bytes=_size(max_body),
        upstream_timeout_s=upstream_timeout,
        idle_timeout_s=idle_timeout,
        tenant_label=tenant_label,
    )


key_app = typer.Typer(help="API keys of the router.", no_args_is_help=True)
app.add_typer(key_app, name="key")


@key_app.command("create")
def key_create(
    ctx: typer.Context,
    tenant: TenantArg,
    keys: Annotated[Path, typer.Option("--keys", help="API keys file to add the key's hash to.")],
) -> int:
    """Make an API key for a tenant: printed once, only its hash is stored in the keys file."""
    from mlops_cli import api

    cli: CliContext = ctx.obj
    created = api.create_key(tenant=tenant, keys_file=keys)
    return cli.emit(created, lambda console: console.print(created.key))


@app.command("list")
def router_list(ctx: typer.Context, registry: RegistryOpt = None) -> int:
    """List the routers heartbeating into the registry, and the revision each has applied."""
    from mlops_cli import api

    cli: CliContext = ctx.obj
    live = api.live_routers(settings=cli.settings({"registry": registry}))

    def human(console: object) -> None:
        from rich.console import Console
        from rich.table import Table

        assert isinstance(console, Console)
        if not live.routers:
            console.print("no live routers")
            return
        table = Table(box=None, pad_edge=False)
        for column in ("router", "address", "revision", "in flight"):
            table.add_column(column)
        for router in live.routers:
            behind = "" if router.applied_revision >= live.registry_revision else " (behind)"
            table.add_row(
                router.router_id,
                router.address,
                f"{router.applied_revision}{behind}",
                str(sum(router.in_flight.values())),
            )
        console.print(table)

    return cli.emit(live, human)
