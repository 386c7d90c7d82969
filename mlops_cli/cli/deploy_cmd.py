"""`mlops deploy` and `mlops undeploy`."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from mlops_cli.api.serving import DEFAULT_DRAIN_S, DEFAULT_LOCK_WAIT_S
from mlops_cli.cli.context import CliContext
from mlops_cli.cli.options import (
    DryRunOpt,
    EndpointOpt,
    FleetOpt,
    RegistryOpt,
    StoreOpt,
    TargetOpt,
)

if TYPE_CHECKING:
    from rich.console import Console

    from mlops_cli.deploy.base import Plan

LockWaitOpt = Annotated[
    float,
    typer.Option(
        "--lock-wait",
        metavar="SECONDS",
        min=0,
        max=86400,
        help="The longest to wait while another mlops process holds the lock on a shared target "
        f"(triton, sagemaker-mme, mme-local) (default {DEFAULT_LOCK_WAIT_S:g}s). A holder that "
        "died loses the lock when its lease expires (MLOPS_LEASE_TTL_S, default 60s).",
    ),
]


def print_plan(console: Console, plan: Plan, *, dry_run: bool) -> None:
    if not plan.changes:
        console.print(f"{plan.model}: nothing to do on {plan.target} (already deployed)")
        return
    console.print(f"plan for {plan.target}{' (dry run: nothing changed)' if dry_run else ''}:")
    for action in plan.actions:
        console.print(f"  {action.describe()}")


def deploy(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(metavar="MODEL[@VERSION|@ALIAS]", help="What to deploy.")],
    target: TargetOpt = None,
    fleet: FleetOpt = None,
    endpoint: EndpointOpt = None,
    alias: Annotated[
        str | None,
        typer.Option(
            "--alias",
            "-a",
            help="Alias switched to this version once it is ready "
            "(default: the model's default alias).",
        ),
    ] = None,
    no_switch: Annotated[
        bool, typer.Option("--no-switch", help="Deploy beside the current version; move no alias.")
    ] = False,
    device: Annotated[
        str | None, typer.Option(help="cpu or gpu (default: what the model asks for).")
    ] = None,
    allow_cpu: Annotated[
        bool, typer.Option("--allow-cpu", help="Serve a model that asks for a GPU on CPU.")
    ] = False,
    drain: Annotated[
        float,
        typer.Option(
            min=0,
            max=3600,
            help="The longest to wait, after the switch, for every live router to apply it and "
            "finish the requests it has in flight on the old version before unloading it "
            f"(default {DEFAULT_DRAIN_S:g}s; at least the routers' 2s cache TTL).",
        ),
    ] = DEFAULT_DRAIN_S,
    lock_wait: LockWaitOpt = DEFAULT_LOCK_WAIT_S,
    dry_run: DryRunOpt = False,
    store: StoreOpt = None,
    registry: RegistryOpt = None,
    print_iam_policy: Annotated[
        bool,
        typer.Option(
            "--print-iam-policy",
            help="Print the least-privilege IAM policy this deploy needs (sagemaker-mme, "
            "sagemaker-ic: the --target given) and stop.",
        ),
    ] = False,
) -> int:
    """Serve a registered version, cut over to it from the old one, and record it."""
    from mlops_cli import api
    from mlops_cli.errors import UsageError

    cli: CliContext = ctx.obj
    if print_iam_policy:
        if endpoint is None:
            raise UsageError("--print-iam-policy needs the endpoint file", hint="--endpoint FILE")
        policy = api.iam_policy(endpoint=endpoint, target=target)
        return cli.emit(policy, lambda console: print(json.dumps(policy, indent=2)))
    if device not in (None, "cpu", "gpu"):
        raise UsageError(f"unknown --device {device!r}", hint="cpu or gpu")
    done = api.deploy(
        ref=ref,
        settings=cli.settings({"store": store, "registry": registry}),
        target=target,
        fleet=fleet,
        endpoint=endpoint,
        alias=alias,
        switch=not no_switch,
        device="gpu" if device == "gpu" else "cpu" if device == "cpu" else None,
        allow_cpu=allow_cpu,
        drain_s=drain,
        lock_wait_s=lock_wait,
        dry_run=dry_run,
        reporter=cli.reporter(),
        on_warning=cli.warn,
    )

    def human(console: Console) -> None:
        print_plan(console, done.plan, dry_run=dry_run)
        waited = done.result.drain
        if waited is not None:
            routers = f"{len(waited.routers)} router(s)" if waited.routers else "no live routers"
            console.print(f"drain: {waited.seconds:.1f}s, {routers} at revision {waited.revision}")
            if waited.unconfirmed:
                console.print(
                    f"[yellow]drain bound reached: {', '.join(waited.unconfirmed)} had not "
                    "finished with the old version[/]"
                )
        if done.result.applied:
            where = done.result.where
            console.print(
                f"deployed {done.model} v{done.version} on {done.target}"
                + (f" ({where})" if where else "")
            )

    return cli.emit(done, human)


def undeploy(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(metavar="MODEL[@VERSION]", help="Every version, or one.")],
    target: TargetOpt = None,
    fleet: FleetOpt = None,
    endpoint: EndpointOpt = None,
    lock_wait: LockWaitOpt = DEFAULT_LOCK_WAIT_S,
    dry_run: DryRunOpt = False,
    registry: RegistryOpt = None,
) -> int:
    """Stop serving a model (every version, or one) on a target and forget the deployment."""
    from mlops_cli import api

    cli: CliContext = ctx.obj
    done = api.undeploy(
        ref=ref,
        settings=cli.settings({"registry": registry}),
        target=target,
        fleet=fleet,
        endpoint=endpoint,
        lock_wait_s=lock_wait,
        dry_run=dry_run,
        reporter=cli.reporter(),
    )

    def human(console: Console) -> None:
        print_plan(console, done.plan, dry_run=dry_run)
        if not dry_run:
            versions = ", ".join(f"v{action.version}" for action in done.plan.actions)
            console.print(f"undeployed {done.model} {versions} from {done.plan.target}")

    return cli.emit(done, human)
