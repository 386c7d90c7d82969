"""Turning command-line words into a target and load options: durations (``10s``, ``500ms``),
level lists (``1,4,16``), model lists (``m1,m2`` or ``@FILE``), and the target itself (a URL, or a
model name served by the running local Triton)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from mlops_cli.errors import NotFoundError, UsageError
from mlops_cli.perf.targets import PROTOCOLS, TargetSpec

if TYPE_CHECKING:
    from mlops_cli.config import Settings

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|m|h)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str, *, option: str) -> float:
    """Seconds from ``10s``, ``500ms``, ``2m``, ``1h`` or a bare number of seconds."""
    match = _DURATION.match(text)
    if match is None:
        raise UsageError(f"{option}: {text!r} is not a duration", hint="write e.g. 10s, 500ms, 2m")
    return float(match[1]) * _UNIT_S[match[2]]


def parse_levels(text: str, *, option: str, integer: bool) -> tuple[float, ...]:
    """``1,4,16`` as numbers, each above zero."""
    levels = []
    for part in text.split(","):
        try:
            value = int(part) if integer else float(part)
        except ValueError:
            value = 0
        if value <= 0:
            kind = "positive whole numbers" if integer else "positive numbers"
            raise UsageError(
                f"{option}: {part.strip()!r} is not valid", hint=f"give {kind}, e.g. 1,4,16"
            )
        levels.append(float(value))
    return tuple(levels)


def parse_models(values: list[str]) -> tuple[str, ...]:
    """Model names from repeated ``--model`` values, each ``m1,m2`` or ``@FILE`` (one a line)."""
    models: list[str] = []
    for value in values:
        if value.startswith("@"):
            path = Path(value[1:])
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except OSError as exc:
                raise UsageError(f"cannot read the model list {path}: {exc.strerror}") from exc
            models += [line.strip() for line in lines if line.strip() and not line.startswith("#")]
        else:
            models += [part.strip() for part in value.split(",") if part.strip()]
    return tuple(models)


def resolve_target(
    target: str,
    *,
    protocol: str | None,
    models: tuple[str, ...],
    settings: Settings,
    stream: bool,
    timeout_s: float,
    max_connections: int,
    method: str,
    headers: tuple[tuple[str, str], ...],
) -> TargetSpec:
    """The target's description. A URL picks its protocol from the scheme (``grpc://``,
    ``sagemaker://``, ``router://``; ``http(s)://`` is Triton with ``--model``, plain HTTP JSON
    without); a bare name is a model on the running local Triton."""
    if protocol is not None and protocol not in PROTOCOLS:
        raise UsageError(f"unknown protocol '{protocol}'", hint=f"valid: {', '.join(PROTOCOLS)}")
    url = target
    scheme = target.split("://", 1)[0] if "://" in target else None
    if scheme is None:
        models = models or (target,)
        deployed = _deployed(settings, models, protocol or "http")
        if deployed is not None:
            url, models = deployed
        else:
            url = _local_triton_url(settings, protocol or "http")
        protocol = protocol or "http"
    elif scheme in ("grpc", "sagemaker", "router"):
        protocol = protocol or scheme
    elif scheme in ("http", "https"):
        protocol = protocol or ("http" if models else "http-json")
    else:
        raise UsageError(
            f"cannot tell what {target!r} is",
            hint="give a model name on the local Triton, or a URL: http(s)://, grpc://, "
            "sagemaker://ENDPOINT",
        )
    if protocol in ("http", "grpc") and not models:
        raise UsageError(f"the {protocol} (Triton) protocol needs a model", hint="add --model NAME")
    return TargetSpec(
        protocol=protocol,
        url=url,
        models=models,
        stream=stream,
        timeout_s=timeout_s,
        max_connections=max_connections,
        method=method.upper(),
        headers=headers,
    )


def _deployed(
    settings: Settings, names: tuple[str, ...], protocol: str
) -> tuple[str, tuple[str, ...]] | None:
    """Registered models deployed by ``mlops deploy`` on Triton: the server and the Triton name
    of the version each resolves to (``name@VERSION`` or ``name@ALIAS`` pins one; a bare name
    takes the model's default alias, as a tenant without a route gets). None when the names are
    not registered models, so that plain Triton model names keep working."""
    from mlops_cli.deploy.engine import find_deployment, parse_model_ref, resolve_version
    from mlops_cli.errors import MlopsError
    from mlops_cli.registry import open_registry

    try:
        registry = open_registry(settings.registry)
        for name in names:
            registry.get_model(parse_model_ref(name)[0])
    except MlopsError:
        return None  # not (all) registered models: Triton model names, as they are
    versions = [resolve_version(registry, name) for name in names]
    servers: set[str] = set()
    triton_names = []
    for version in versions:
        record = find_deployment(
            registry, version.model, version.version, kinds=("local", "triton")
        )
        detail = record.get("detail") or {}
        server = (detail.get("servers") or [{}])[0]
        if protocol == "grpc":
            servers.add(f"grpc://{server.get('grpc_url', '')}")
        else:
            servers.add(str(server.get("url", "")))
        triton_names.append(str(detail.get("triton_name") or f"{version.model}-v{version.version}"))
    if len(servers) != 1:
        raise UsageError(
            "the models are deployed on different servers; test one server at a time",
            hint="give the server's URL and --model with its Triton model names",
        )
    return servers.pop(), tuple(triton_names)


def _local_triton_url(settings: Settings, protocol: str) -> str:
    from mlops_cli.local import LocalTriton
    from mlops_cli.workspace import Workspace

    state = LocalTriton(Workspace(settings.workspace), settings.local).read_state()
    if state is None:
        raise NotFoundError(
            "no local Triton is running to take the model name",
            hint="start it with 'mlops local up', or give the endpoint's URL",
        )
    if protocol == "grpc":
        return f"grpc://127.0.0.1:{state.grpc_port}"
    return state.http_url
