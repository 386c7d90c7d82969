"""`mlops status`: every deployment as its servers see it now.

Exit 0 when every deployment is READY (or nothing is deployed), 1 when any is not (drifted,
unavailable, loading, unknown), so scripts can gate on it. Read-only: an absent registry means
nothing is deployed, and nothing is created.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from mlops_cli.cli.context import CliContext
from mlops_cli.cli.options import EndpointOpt, FleetOpt, RegistryOpt

if TYPE_CHECKING:
    from rich.console import Console


def status(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Argument(help="Only this model.")] = None,
    fleet: FleetOpt = None,
    endpoint: EndpointOpt = None,
    registry: RegistryOpt = None,
) -> int:
    """Show every deployment: target, server, version, state, drift, requests and latency."""
    from mlops_cli import api

    cli: CliContext = ctx.obj
    report = api.status(
        settings=cli.settings({"registry": registry}), model=model, fleet=fleet, endpoint=endpoint
    )
    document = report.to_dict()
    rows = document["deployments"]

    def human(console: Console) -> None:
        _table(console, rows)
        _routers(console, document["routers"], document["registry_revision"])

    code = cli.emit(report, human)
    if report.unhealthy:
        first = report.unhealthy[0]
        cli.warn(
            f"{len(report.unhealthy)} of {len(report.deployments)} deployments not READY "
            f"({first.model} v{first.version} on {first.target}: {first.state})"
        )
    return code


def _table(console: Console, rows: list[dict[str, Any]]) -> None:
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


def _routers(console: Console, routers: list[dict[str, Any]], revision: int) -> None:
    """The live routers (heartbeat in the last few seconds) and the revision each applied."""
    if not routers:
        return
    from rich.table import Table

    table = Table(box=None, pad_edge=False, title=f"routers (registry revision {revision})")
    for column in ("ROUTER", "ADDRESS", "APPLIED", "IN FLIGHT"):
        table.add_column(column)
    for router in routers:
        applied = int(router["applied_revision"])
        table.add_row(
            str(router["router_id"]),
            str(router["address"]),
            f"{applied}" + ("" if applied >= revision else " (behind)"),
            str(sum(router["in_flight"].values())),
        )
    console.print(table)
