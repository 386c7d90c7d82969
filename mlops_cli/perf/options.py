"""Turning ``mlops perftest`` flags into the typed options of a run.

:func:`perftest_options` takes the flag words as given (:class:`PerftestFlags`) and returns the
load, the way to reach the target, the gates and the payload source (:class:`PerftestOptions`),
refusing contradictory or malformed flags with a :class:`~mlops_cli.errors.UsageError` before any
load is sent. The parts are durations (``10s``, ``500ms``), percentages (``0.5%``), level lists
(``1,4,16``), model lists (``m1,m2`` or ``@FILE``), headers (``NAME:VALUE``) and the tenants a
router target sends as (:mod:`mlops_cli.perf.tenants`). It lives here, not in the command, so the
rules are one pure, unit-tested function (reading ``@FILE`` model and tenant lists and an API keys
file are its side effects) and the command stays parse -> call -> render. What a target word
means (a URL, a registered model, a model on the local Triton) is decided by
:func:`mlops_cli.api.perf.resolve_target`, which reads the registry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from mlops_cli.errors import UsageError
from mlops_cli.perf.load_options import LoadOptions
from mlops_cli.perf.sla import Sla, parse_sla
from mlops_cli.perf.targets.base import TenantTraffic
from mlops_cli.perf.tenants import tenant_traffic
from mlops_cli.perf.windows import StabilityRule


@dataclass(frozen=True)
class TargetOptions:
    """How to reach the target, beside the target word itself."""

    protocol: str | None = None  # default: from the target's scheme
    models: tuple[str, ...] = ()  # Triton model names (a URL), or several registered ones
    tenant: str | None = None  # follow registered models as this tenant's requests are routed
    stream: bool = False
    timeout_s: float = 30.0
    max_connections: int = 1024
    method: str = "POST"  # http-json targets
    headers: tuple[tuple[str, str], ...] = ()
    tenants: TenantTraffic | None = None  # whom a router target sends as


@dataclass(frozen=True)
class PerftestFlags:
    """The ``mlops perftest`` flags as the user wrote them (defaults: the command's). Numbers that
    the command line already checks (``--requests``, ``--workers``, ...) arrive typed."""

    concurrency: str | None = None
    rate: str | None = None
    arrival: str = "constant"
    duration: str | None = None
    requests: int | None = None
    warmup: str = "1s"
    window: str = "1s"
    max_windows: int | None = None
    stable_windows: int = 3
    stable_tolerance: float = 0.10
    workers: int = 1
    distribution: str = "uniform"
    seed: int = 0
    protocol: str | None = None
    models: tuple[str, ...] = ()  # repeated --model values, each NAME, m1,m2 or @FILE
    inference_components: tuple[str, ...] = ()  # repeated --inference-component values, likewise
    tenant: str | None = None
    tenants: str | None = None  # t1,t2 or @FILE
    tenant_distribution: str | None = None  # uniform or zipf:S (default uniform)
    api_keys: str | None = None  # @FILE of tenant: key
    stream: bool = False
    timeout: str = "30s"
    max_connections: int = 1024
    method: str = "POST"
    headers: tuple[str, ...] = ()  # repeated --header values, each NAME:VALUE
    payload: str | None = None  # @FILE.jsonl
    template: str | None = None
    sla: str | None = None
    max_error_rate: str = "0%"


@dataclass(frozen=True)
class PerftestOptions:
    """Everything :func:`mlops_cli.api.perftest` needs from the flags."""

    load: LoadOptions
    reach: TargetOptions
    sla: Sla | None
    max_error_rate: float  # a fraction
    payload_file: Path | None
    template: str | None


def perftest_options(flags: PerftestFlags) -> PerftestOptions:
    """The typed options ``flags`` mean. Refused: --concurrency with --rate, --payload with
    --template, an --arrival other than constant or poisson, a --window of zero, and any
    malformed duration, level, percentage, SLA, header or model list. Without --rate the run is
    a closed loop (at --concurrency, default 1); with it, an open loop. Tenant lists and keys
    files are refused as :func:`mlops_cli.perf.tenants.tenant_traffic` says; inference
    components as :func:`component_choice` says."""
    if flags.concurrency and flags.rate:
        raise UsageError("give --concurrency or --rate, not both")
    if flags.payload and flags.template:
        raise UsageError("give --payload or --template, not both")
    if flags.arrival not in ("constant", "poisson"):
        raise UsageError(f"--arrival: {flags.arrival!r} is not constant or poisson")
    headers = parse_headers(flags.headers)
    load = LoadOptions(
        mode="open" if flags.rate else "closed",
        levels=parse_levels(flags.rate, option="--rate", integer=False)
        if flags.rate
        else parse_levels(flags.concurrency or "1", option="--concurrency", integer=True),
        arrival=flags.arrival,
        duration_s=parse_duration(flags.duration, option="--duration") if flags.duration else None,
        requests=flags.requests,
        warmup_s=parse_duration(flags.warmup, option="--warmup"),
        window_s=parse_duration(flags.window, option="--window"),
        max_windows=flags.max_windows,
        stability=StabilityRule(windows=flags.stable_windows, tolerance=flags.stable_tolerance),
        workers=flags.workers,
        distribution=flags.distribution,
        seed=flags.seed,
    )
    if load.window_s <= 0:
        raise UsageError("--window must be above zero")
    sla = parse_sla(flags.sla) if flags.sla else None
    max_error_rate = parse_percentage(flags.max_error_rate, option="--max-error-rate")
    protocol, models = component_choice(flags)
    reach = TargetOptions(
        protocol=protocol,
        models=models,
        tenant=flags.tenant,
        stream=flags.stream,
        timeout_s=parse_duration(flags.timeout, option="--timeout"),
        max_connections=flags.max_connections,
        method=flags.method,
        headers=headers,
        tenants=tenant_traffic(flags.tenants, flags.tenant_distribution, flags.api_keys),
    )
    return PerftestOptions(
        load=load,
        reach=reach,
        sla=sla,
        max_error_rate=max_error_rate,
        payload_file=Path(flags.payload.removeprefix("@")) if flags.payload else None,
        template=flags.template,
    )


def component_choice(flags: PerftestFlags) -> tuple[str | None, tuple[str, ...]]:
    """The protocol and models the flags name: ``--inference-component IC`` (m1,m2 or @FILE
    too) is the ``sagemaker-ic`` protocol with the components as its models. Refused beside
    ``--model`` (a multi-model endpoint's TargetModel) or another ``--protocol``."""
    models = parse_models(list(flags.models))
    if not flags.inference_components:
        return flags.protocol, models
    if models:
        raise UsageError(
            "give --model (a multi-model endpoint's TargetModel) or --inference-component, not both"
        )
    if flags.protocol not in (None, "sagemaker-ic"):
        raise UsageError(
            f"--inference-component calls a SageMaker endpoint, not the {flags.protocol} protocol",
            hint="give the endpoint as sagemaker://ENDPOINT and drop --protocol",
        )
    components = parse_models(list(flags.inference_components))
    if not components:
        raise UsageError("--inference-component names no component")
    return "sagemaker-ic", components


def parse_headers(items: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """``--header NAME:VALUE`` values as (name, value) pairs, both stripped."""
    headers = []
    for item in items:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise UsageError(f"--header: {item!r} is not NAME:VALUE")
        headers.append((name.strip(), value.strip()))
    return tuple(headers)


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


MAX_LEVEL = 1_000_000  # connections in flight, or requests per second: beyond any one generator


def parse_levels(text: str, *, option: str, integer: bool) -> tuple[float, ...]:
    """``1,4,16`` as numbers, each above zero and at most :data:`MAX_LEVEL`."""
    levels = []
    for part in text.split(","):
        try:
            value = int(part) if integer else float(part)
        except ValueError:
            value = 0
        if not (0 < value <= MAX_LEVEL):  # NaN and inf fail it too
            kind = "positive whole numbers" if integer else "positive numbers"
            raise UsageError(
                f"{option}: {part.strip()!r} is not valid",
                hint=f"give {kind} up to {MAX_LEVEL:,}, e.g. 1,4,16",
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
