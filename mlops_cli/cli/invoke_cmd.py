"""`mlops invoke`: one request to the version a tenant is routed to."""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated, Any

import typer

from mlops_cli.cli.context import CliContext
from mlops_cli.cli.register_cmd import RegistryOpt


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
        str, typer.Option("--tenant", help="Resolve the version through this tenant's route.")
    ] = "default",
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
) -> None:
    """Send one request to the version a tenant is routed to, and print the answer."""
    from mlops_cli.deploy import invoke_recorded
    from mlops_cli.deploy.base import InvokeRequest
    from mlops_cli.deploy.engine import find_deployment, version_package
    from mlops_cli.errors import UsageError
    from mlops_cli.registry.routing import resolve_reference
    from mlops_cli.stores import open_store

    cli: CliContext = ctx.obj
    if protocol not in ("http", "grpc"):
        raise UsageError(f"unknown --protocol {protocol!r}", hint="http or grpc")
    inputs = read_inputs(input_)
    settings = cli.settings({"registry": registry})
    backend = cli.registry(settings.registry)
    resolution = resolve_reference(backend, ref, tenant=tenant, request_key=request_key)
    model, number, source = resolution.model, resolution.version, resolution.source
    version = backend.get_version(model, number)
    record = find_deployment(backend, model, number, target=target)
    _, _, spec = version_package(version, lambda root: open_store(root or settings.store))
    request = InvokeRequest(
        inputs=inputs,
        spec=spec,
        stream=stream,
        protocol="grpc" if protocol == "grpc" else "http",
        timeout=timeout,
    )
    started = time.monotonic()
    chunks = []
    live = stream and not cli.json and not cli.quiet
    for chunk in invoke_recorded(record, request):
        chunks.append(
            {"outputs": dict(chunk.outputs), "ms": round((chunk.received_at - started) * 1000, 3)}
        )
        if live:
            sys.stdout.write(_text(chunk.outputs))
            sys.stdout.flush()
    total = round((time.monotonic() - started) * 1000, 3)
    if live:
        sys.stdout.write("\n")
        cli.info(
            f"{model} v{number} ({source}) · {len(chunks)} chunks · first {chunks[0]['ms'] if chunks else '-'} ms · total {total} ms"
        )
        return
    document: dict[str, Any] = {
        "model": model,
        "version": number,
        "tenant": tenant,
        "source": source,
        "target": record["target"],
        "total_ms": total,
    }
    if stream:
        document["chunks"] = chunks
        document["first_chunk_ms"] = chunks[0]["ms"] if chunks else None
    else:
        document["outputs"] = chunks[0]["outputs"] if chunks else {}
    cli.emit(document, lambda console: console.print_json(json.dumps(document["outputs"])))


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
