"""`mlops invoke`: one request to the version a tenant is routed to: resolved here and sent to
its deployment, or, with ``--via-router`` (or the ``router`` setting), sent to the tenant router,
which resolves it."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mlops_cli.cli.context import CliContext
from mlops_cli.cli.options import RegistryOpt

if TYPE_CHECKING:
    from mlops_cli.api.serving import AnswerChunk


def read_inputs(value: str) -> dict[str, Any]:
    """``--input``: a JSON object, or @FILE holding one."""
    from pathlib import Path

    from mlops_cli.errors import UsageError

    source = "--input"
    text = value
    if value.startswith("@"):
        path = Path(value[1:])
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
        source = str(path)
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise UsageError(
            f"{source} is not JSON: {exc}", hint="e.g. '{\"features\": [1, 2, 3, 4]}'"
        ) from None
    if not isinstance(data, dict):
        raise UsageError(f"{source} must be a JSON object of input name -> value")
    return data


def invoke(
    ctx: typer.Context,
    ref: Annotated[
        str,
        typer.Argument(
            metavar="MODEL[@VERSION|@ALIAS]",
            help="Model; a version or alias skips the tenant's route, never its visibility.",
        ),
    ],
    input_: Annotated[
        str,
        typer.Option("--input", "-i", metavar="JSON|@FILE", help="Input name -> value, as JSON."),
    ],
    tenant: Annotated[
        str | None,
        typer.Option(
            "--tenant",
            help="Resolve the version through this tenant's route (default: 'default'); "
            "through the router, sent as X-Tenant-Id.",
        ),
    ] = None,
    via_router: Annotated[
        str | None,
        typer.Option(
            "--via-router",
            metavar="URL",
            help="Send through the tenant router at http://HOST:PORT (default: the router "
            "setting, MLOPS_ROUTER), which picks the version.",
        ),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            envvar="MLOPS_API_KEY",
            show_envvar=True,
            help="Through the router: the tenant's API key.",
        ),
    ] = None,
    stream: Annotated[
        bool, typer.Option("--stream", help="Print streamed responses as they arrive.")
    ] = False,
    protocol: Annotated[str, typer.Option(help="http or grpc.")] = "http",
    request_key: Annotated[
        str | None, typer.Option("--request-key", help="Sticky key for a canary split.")
    ] = None,
    target: Annotated[
        str | None, typer.Option("--target", "-t", help="Prefer the deployment on this target.")
    ] = None,
    timeout: Annotated[
        float, typer.Option(min=0.1, max=3600, help="Seconds to wait for the answer.")
    ] = 60.0,
    registry: RegistryOpt = None,
) -> int:
    """Send one request to the version a tenant is routed to, and print the answer."""
    from mlops_cli import api
    from mlops_cli.errors import UsageError

    cli: CliContext = ctx.obj
    if protocol not in ("http", "grpc"):
        raise UsageError(f"unknown --protocol {protocol!r}", hint="http or grpc")
    inputs = read_inputs(input_)
    live = stream and not cli.json and not cli.quiet

    def show(chunk: AnswerChunk) -> None:
        sys.stdout.write(_text(chunk.outputs))
        sys.stdout.flush()

    settings = cli.settings({"registry": registry})
    router = via_router or settings.router
    if router:
        if target is not None or protocol != "http":
            raise UsageError(
                "--target and --protocol grpc pick a deployment; through the router, it does",
                hint="drop them, or invoke directly (without --via-router; --set router= "
                "when the router setting is on)",
            )
        answer = api.invoke_via_router(
            router=router,
            model=ref,
            inputs=inputs,
            api_key=api_key,
            tenant=tenant,
            request_key=request_key,
            stream=stream,
            timeout_s=timeout,
            on_chunk=show if live else None,
        )
    else:
        if api_key is not None:
            raise UsageError(
                "--api-key is for the router", hint="add --via-router URL, or drop --api-key"
            )
        answer = api.invoke(
            ref=ref,
            inputs=inputs,
            settings=settings,
            tenant=tenant or "default",
            stream=stream,
            protocol="grpc" if protocol == "grpc" else "http",
            request_key=request_key,
            target=target,
            timeout_s=timeout,
            on_chunk=show if live else None,
        )
    if live:
        sys.stdout.write("\n")
        first = answer.first_chunk_ms if answer.chunks else "-"
        cli.info(
            f"{answer.model} v{answer.version} ({answer.source}) · {len(answer.chunks)} chunks"
            f" · first {first} ms · total {answer.total_ms} ms"
        )
        return 0
    if router:
        cli.info(f"{answer.model} v{answer.version} ({answer.source}) via {answer.target}")
    return cli.emit(answer, lambda console: console.print_json(json.dumps(answer.outputs)))


def _text(outputs: Any) -> str:
    """A streamed chunk as text: its first output's values, space-separated."""
    for value in outputs.values():
        flat = value
        while isinstance(flat, list) and len(flat) == 1:
            flat = flat[0]
        if isinstance(flat, list):
            return " ".join(str(v) for v in flat) + " "
        return f"{flat} "
    return ""
