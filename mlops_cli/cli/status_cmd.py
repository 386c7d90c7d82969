"""`mlops status`: every deployment as its servers see it now.

Exit 0 when every deployment is READY (or nothing is deployed), 1 when any is not (drifted,
unavailable, loading, unknown), so scripts can gate on it. Read-only: an absent registry means
nothing is deployed, and nothing is created.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from mlops_cli.cli.context import CliContext
from mlops_cli.cli.deploy_cmd import EndpointOpt, FleetOpt
from mlops_cli.cli.register_cmd import RegistryOpt

if TYPE_CHECKING:
    from rich.console import Console


def status(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Argument(help="Only this model.")] = None,
    fleet: FleetOpt = None,
    endpoint: EndpointOpt = None,
    registry: RegistryOpt = None,
) -> None:
    """Show every deployment: target, server, version, state, drift, requests and latency."""
    from mlops_cli.deploy import observe
    from mlops_cli.registry.base import check_name

    cli: CliContext = ctx.obj
    if model is not None:
        check_name("model", model)
    settings = cli.settings({"registry": registry})
    backend = cli.registry(settings.registry)
    if model is not None:
        backend.get_model(model)  # NotFoundError for an unknown model
    records = backend.list_deployments(model)
    found = observe(settings, records, fleet=fleet, endpoint=endpoint)
    if model is not None:
        found = [item for item in found if item.model == model]
    rows = [item.to_dict() for item in found]
    cli.emit({"deployments": rows}, lambda console: _table(console, rows))
    unhealthy = [item for item in found if item.state != "READY"]
    if unhealthy:
        first = unhealthy[0]
        cli.warn(
            f"{len(unhealthy)} of {len(found)} deployments not READY "
            f"({first.model} v{first.version} on {first.target}: {first.state})"
        )
        raise typer.Exit(1)


def _table(console: Console, rows: list[dict[str, object]]) -> None:
    from rich.table import Table

    if not rows:
        console.print("nothing is deployed (mlops deploy MODEL@VERSION)")
        return
    table = Table(box=None, pad_edge=False)
    columns = ("MODEL", "VERSION", "TARGET", "WHERE", "STATE", "REQUESTS", "FAILED", "MEAN MS")
    for column in (*columns, "NOTE"):
        table.add_column(column)
    for row in rows:
        latency = row.get("latency_ms")
        table.add_row(
            str(row["model"]),
            str(row["version"]),
            str(row["target"]),
            str(row["where"]),
            str(row["state"]),
            "" if row.get("requests") is None else str(row["requests"]),
            "" if row.get("failures") is None else str(row["failures"]),
            "" if latency is None else f"{float(str(latency)):.2f}",
            str(row.get("note") or ""),
        )
    console.print(table)
