"""`mlops deploy` and `mlops undeploy`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mlops_cli.cli.context import CliContext
from mlops_cli.cli.register_cmd import RegistryOpt
from mlops_cli.registry.routing import ROUTER_CACHE_TTL_S

if TYPE_CHECKING:
    from rich.console import Console

    from mlops_cli.config import Settings
    from mlops_cli.deploy.base import DeployTarget, Plan
    from mlops_cli.progress import Reporter

TargetOpt = Annotated[
    str | None,
    typer.Option(
        "--target", "-t", help="local, triton, sagemaker-mme or mme-local (default: setting)."
    ),
]
FleetOpt = Annotated[Path | None, typer.Option("--fleet", help="Fleet file of the triton target.")]
EndpointOpt = Annotated[
    Path | None,
    typer.Option("--endpoint", help="Endpoint file of the sagemaker-mme / mme-local targets."),
]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Print the plan and change nothing.")]


def open_target(
    settings: Settings,
    target: str | None,
    fleet: Path | None,
    endpoint: Path | None,
    reporter: Reporter,
) -> DeployTarget:
    from mlops_cli.deploy import open_target as build

    return build(settings, target, fleet=fleet, endpoint=endpoint, reporter=reporter)


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
            help="Seconds between the switch and unloading the old version; never less than "
            f"the routers' {ROUTER_CACHE_TTL_S:g}s cache TTL (a smaller value waits that long).",
        ),
    ] = ROUTER_CACHE_TTL_S,
    dry_run: DryRunOpt = False,
    store: Annotated[str | None, typer.Option("--store", help="Artifact store URI.")] = None,
    registry: RegistryOpt = None,
    print_iam_policy: Annotated[
        bool,
        typer.Option(
            "--print-iam-policy",
            help="Print the least-privilege IAM policy this deploy needs (sagemaker-mme) and stop.",
        ),
    ] = False,
) -> None:
    """Serve a registered version, cut over to it from the old one, and record it."""
    from mlops_cli.deploy.engine import deploy as run_deploy
    from mlops_cli.deploy.engine import desired_state, resolve_version
    from mlops_cli.errors import UsageError
    from mlops_cli.stores import open_store

    cli: CliContext = ctx.obj
    if print_iam_policy:
        if endpoint is None:
            raise UsageError("--print-iam-policy needs the endpoint file", hint="--endpoint FILE")
        from mlops_cli.deploy.sagemaker import iam_policy_for

        policy = iam_policy_for(endpoint)
        cli.emit(policy, lambda console: print(json.dumps(policy, indent=2)))
        return
    if device not in (None, "cpu", "gpu"):
        raise UsageError(f"unknown --device {device!r}", hint="cpu or gpu")
    settings = cli.settings({"store": store, "registry": registry})
    backend = cli.registry(settings.registry)
    reporter = cli.reporter()
    version = resolve_version(backend, ref)
    chosen = open_target(settings, target, fleet, endpoint, reporter)
    desired = desired_state(
        version,
        lambda root: open_store(root or settings.store),
        target=chosen,
        device=device,  # type: ignore[arg-type]
        allow_cpu=allow_cpu,
    )
    if desired.device == "cpu" and desired.spec.wants_gpu:
        cli.warn(f"{desired.model} asks for a GPU; serving it on CPU (--allow-cpu)")
    switch = None if no_switch else (alias or backend.get_model(version.model).default_alias)
    result = run_deploy(
        backend,
        chosen,
        desired,
        alias=switch,
        dry_run=dry_run,
        drain_seconds=drain,
        reporter=reporter,
    )
    document = {**result.to_dict(), "dry_run": dry_run}

    def human(console: Console) -> None:
        print_plan(console, result.plan, dry_run=dry_run)
        if drain < result.drain_seconds and any(a.op == "unload" for a in result.plan.actions):
            console.print(
                f"drain: {result.drain_seconds:g}s, not {drain:g}s: "
                "routers cache a model's routes that long"
            )
        if result.applied:
            console.print(
                f"deployed {version.model} v{version.version} on {chosen.id}"
                + (f" ({result.detail['where']})" if result.detail.get("where") else "")
            )

    cli.emit(document, human)


def undeploy(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(metavar="MODEL[@VERSION]", help="Every version, or one.")],
    target: TargetOpt = None,
    fleet: FleetOpt = None,
    endpoint: EndpointOpt = None,
    dry_run: DryRunOpt = False,
    registry: RegistryOpt = None,
) -> None:
    """Stop serving a model (every version, or one) on a target and forget the deployment."""
    from mlops_cli.deploy.engine import parse_model_ref
    from mlops_cli.deploy.engine import undeploy as run_undeploy
    from mlops_cli.errors import UsageError

    cli: CliContext = ctx.obj
    model, selector = parse_model_ref(ref)
    if selector is not None and not selector.isdigit():
        raise UsageError("undeploy takes MODEL or MODEL@VERSION (a number)")
    settings = cli.settings({"registry": registry})
    backend = cli.registry(settings.registry)
    reporter = cli.reporter()
    chosen = open_target(settings, target, fleet, endpoint, reporter)
    plan = run_undeploy(
        backend,
        chosen,
        model,
        int(selector) if selector else None,
        dry_run=dry_run,
        reporter=reporter,
    )

    def human(console: Console) -> None:
        print_plan(console, plan, dry_run=dry_run)
        if not dry_run:
            versions = ", ".join(f"v{action.version}" for action in plan.actions)
            console.print(f"undeployed {model} {versions} from {plan.target}")

    cli.emit({**plan.to_dict(), "dry_run": dry_run}, human)
