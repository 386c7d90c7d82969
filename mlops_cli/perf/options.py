"""Turning command-line words into a target and load options: durations (``10s``, ``500ms``),
level lists (``1,4,16``), model lists (``m1,m2`` or ``@FILE``), and the target itself (a URL, a
registered model name followed through its routing, or a model on the running local Triton)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from mlops_cli.errors import NotFoundError, UsageError
from mlops_cli.perf.targets import PROTOCOLS, ModelRouting, TargetSpec

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


_PERCENTAGE = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*%\s*$")


def parse_percentage(text: str, *, option: str) -> float:
    """A fraction from ``0.5%`` (the ``%`` is required: ``1`` could mean 1% or 100%)."""
    match = _PERCENTAGE.match(text)
    value = float(match[1]) / 100 if match else -1.0
    if not 0 <= value <= 1:
        raise UsageError(
            f"{option}: {text!r} is not a percentage from 0% to 100%", hint="write e.g. 0.5%"
        )
    return value


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
    tenant: str | None = None,
) -> TargetSpec:
    """The target's description. A URL picks its protocol from the scheme (``grpc://``,
    ``sagemaker://``, ``router://``; ``http(s)://`` is Triton with ``--model``, plain HTTP JSON
    without). A bare name is a registered model, followed through its routing during the run
    (as ``tenant`` sees it, or the operator's view), else a model on the running local Triton."""
    if protocol is not None and protocol not in PROTOCOLS:
        raise UsageError(f"unknown protocol '{protocol}'", hint=f"valid: {', '.join(PROTOCOLS)}")
    url = target
    scheme = target.split("://", 1)[0] if "://" in target else None
    routing: ModelRouting | None = None
    if tenant is not None and scheme is not None:
        raise UsageError(
            "--tenant applies to registered model names, not to a URL",
            hint="give the model's registered name as TARGET, or drop --tenant",
        )
    if scheme is None:
        models = models or (target,)
        protocol = protocol or "http"
        if protocol not in ("http", "grpc"):
            raise UsageError(
                f"a model name is served by Triton over http or grpc, not {protocol}",
                hint="give the endpoint's URL for other protocols",
            )
        routing = _registered(settings, models, tenant, protocol)
        if routing is not None:
            url = _first_server(settings, models, routing, protocol)
        else:
            url = _local_triton_url(settings, protocol)
    elif scheme in ("grpc", "sagemaker", "router"):
        protocol = protocol or scheme
    elif scheme in ("http", "https"):
        protocol = protocol or ("http" if models else "http-json")
    else:
        raise UsageError(
            f"cannot tell what {target!r} is",
            hint="give a registered model name, a model on the local Triton, or a URL: "
            "http(s)://, grpc://, sagemaker://ENDPOINT",
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
        routing=routing,
    )


def _registered(
    settings: Settings, names: tuple[str, ...], tenant: str | None, protocol: str
) -> ModelRouting | None:
    """How to follow ``names`` when they are all registered models; None when none is, so that
    plain Triton model names keep working. Only "no such model" falls back: a registry that
    cannot be reached or read is an error that names the registry."""
    from mlops_cli.registry import open_registry
    from mlops_cli.registry.routing import parse_model_ref

    registry = open_registry(settings.registry)
    known = []
    for name in names:
        model = parse_model_ref(name)[0]
        try:
            registry.get_model(model)
        except NotFoundError:
            continue
        known.append(name)
    if not known:
        if tenant is not None:
            raise UsageError(
                "--tenant applies to registered models; "
                f"{', '.join(names)} is not registered in {settings.registry}",
                hint="mlops models list",
            )
        return None
    if len(known) != len(names):
        missing = ", ".join(n for n in names if n not in known)
        raise UsageError(
            f"{missing} is not a registered model, unlike {', '.join(known)}",
            hint="test registered models (followed through their routing) or Triton model "
            "names on one server (give its URL and --model), not both at once",
        )
    return ModelRouting(registry=settings.registry, tenant=tenant)


def _first_server(
    settings: Settings, names: tuple[str, ...], routing: ModelRouting, protocol: str
) -> str:
    """The server the first name resolves to now (the report's URL); every name must resolve
    and be deployed, or the run is refused before any load."""
    from mlops_cli.perf.targets.routed import resolve_served
    from mlops_cli.registry import open_registry

    registry = open_registry(routing.registry)
    routes = [
        resolve_served(registry, name, tenant=routing.tenant, protocol=protocol) for name in names
    ]
    return routes[0].server


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
