"""Turning ``mlops tune`` flags into typed options, refusing bad ones before anything is loaded.

:func:`tune_options` takes the flag words as given (:class:`TuneFlags`) and returns
:class:`TuneOptions`: the SLA (:func:`mlops_cli.perf.sla.parse_sla`), the objective, the time
budget (refused when it cannot hold one measurement), the client load (searched concurrency, a
fixed ``--concurrency`` or an open-loop ``--rate``), the values of each dimension, the traffic
level to cost, and how each candidate is measured (warmup, windows, the stability rule). One pure
function, unit-tested; the command stays parse -> call -> render.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mlops_cli.errors import UsageError
from mlops_cli.perf.load_options import LoadOptions
from mlops_cli.perf.options import MAX_LEVEL, parse_duration, parse_percentage
from mlops_cli.perf.sla import Sla, parse_sla
from mlops_cli.perf.windows import StabilityRule
from mlops_cli.tune.search import ObjectiveName, Strategy
from mlops_cli.tune.space import (
    DEFAULT_MAX_CONCURRENCY,
    MAX_BATCH_SIZE,
    MAX_INSTANCES,
    MAX_QUEUE_DELAY_US,
    SpaceChoices,
)

# Loading a python-backend candidate takes ~1.5 s (its stub process starts): the least a
# measurement can cost on top of warmup and the windows the stability rule needs.
LOAD_ALLOWANCE_S = 1.5
OBJECTIVES: tuple[ObjectiveName, ...] = ("throughput", "cost")
STRATEGIES: tuple[Strategy, ...] = ("coordinate", "grid")


@dataclass(frozen=True)
class TuneFlags:
    """The flag words of ``mlops tune`` as given (None: not given)."""

    sla: str
    objective: str = "throughput"
    strategy: str = "coordinate"
    budget: str = "10m"
    rate: str | None = None
    concurrency: int | None = None
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    instances: str | None = None
    batch_sizes: str | None = None
    queue_delays: str | None = None
    preferred: str | None = None
    traffic: str | None = None
    instance_type: str | None = None
    max_error_rate: str = "0%"
    warmup: str = "0.5s"
    window: str = "0.5s"
    max_windows: int = 8
    stable_windows: int = 3
    stable_tolerance: float = 0.10
    timeout: str = "30s"


@dataclass(frozen=True)
class TuneOptions:
    sla: Sla
    space: SpaceChoices
    objective: ObjectiveName = "throughput"
    strategy: Strategy = "coordinate"
    budget_s: float = 600.0
    traffic_rps: float | None = None
    instance_type: str | None = None
    max_error_rate: float = 0.0
    measure: LoadOptions = field(
        default_factory=LoadOptions
    )  # warmup, window, window cap, stability rule
    timeout_s: float = 30.0

    @property
    def least_measurement_s(self) -> float:
        """The shortest a measurement can be: warmup and the windows stability needs."""
        m = self.measure
        return m.warmup_s + m.stability.windows * m.window_s


def tune_options(flags: TuneFlags) -> TuneOptions:
    """Typed options from ``flags``; UsageError (exit 2) naming the flag for anything wrong."""
    sla = parse_sla(flags.sla)
    objective = _objective(flags.objective)
    strategy = _strategy(flags.strategy)
    if flags.rate is not None and flags.concurrency is not None:
        raise UsageError(
            "--rate and --concurrency both fix the client load: give one",
            hint="--rate for an open loop at that many requests/s, --concurrency for that many "
            "users; neither searches the concurrency",
        )
    rate = None
    if flags.rate is not None:
        rate = parse_rate(flags.rate, option="--rate")
    if flags.concurrency is not None and not 1 <= flags.concurrency <= MAX_LEVEL:
        raise UsageError(f"--concurrency must be from 1 to {MAX_LEVEL:,}")
    if not 1 <= flags.max_concurrency <= MAX_LEVEL:
        raise UsageError(f"--max-concurrency must be from 1 to {MAX_LEVEL:,}")
    measure = LoadOptions(
        mode="open" if rate is not None else "closed",
        warmup_s=parse_duration(flags.warmup, option="--warmup"),
        window_s=parse_duration(flags.window, option="--window"),
        max_windows=flags.max_windows,
        stability=StabilityRule(windows=flags.stable_windows, tolerance=flags.stable_tolerance),
    )
    if measure.window_s <= 0:
        raise UsageError("--window must be above zero")
    if flags.max_windows < flags.stable_windows:
        raise UsageError(
            f"--max-windows {flags.max_windows} is fewer than the {flags.stable_windows} windows "
            "the stability rule needs",
            hint="raise --max-windows or lower --stable-windows",
        )
    options = TuneOptions(
        sla=sla,
        space=SpaceChoices(
            instances=_integers(flags.instances, "--instances", 1, MAX_INSTANCES),
            batch_sizes=_integers(flags.batch_sizes, "--batch-sizes", 1, MAX_BATCH_SIZE),
            queue_delays_us=_delays(flags.queue_delays),
            preferred=_preferred(flags.preferred),
            concurrency=flags.concurrency,
            rate=rate,
            max_concurrency=flags.max_concurrency,
        ),
        objective=objective,
        strategy=strategy,
        budget_s=parse_duration(flags.budget, option="--budget"),
        traffic_rps=(
            parse_rate(flags.traffic, option="--traffic") if flags.traffic is not None else None
        ),
        instance_type=flags.instance_type,
        max_error_rate=parse_percentage(flags.max_error_rate, option="--max-error-rate"),
        measure=measure,
        timeout_s=parse_duration(flags.timeout, option="--timeout"),
    )
    least = LOAD_ALLOWANCE_S + options.least_measurement_s
    if options.budget_s < least:
        raise UsageError(
            f"--budget {flags.budget.strip()} is too small for one measurement: loading a "
            f"candidate and measuring it until stable takes at least {least:.1f} s (load "
            f"~{LOAD_ALLOWANCE_S:g} s, warmup {measure.warmup_s:g} s, "
            f"{measure.stability.windows} windows of {measure.window_s:g} s)",
            hint=f"give --budget {max(60, round(least * 10))}s or more, or shorter --window",
        )
    return options


def _objective(value: str) -> ObjectiveName:
    for name in OBJECTIVES:
        if value == name:
            return name
    raise UsageError(f"--objective: {value!r} is not one of {', '.join(OBJECTIVES)}")


def _strategy(value: str) -> Strategy:
    for name in STRATEGIES:
        if value == name:
            return name
    raise UsageError(f"--strategy: {value!r} is not one of {', '.join(STRATEGIES)}")


_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*(rps|req/s|/s)?\s*$")


def parse_rate(text: str, *, option: str) -> float:
    """Requests per second from ``2000rps``, ``2000/s`` or ``2000``; above zero."""
    match = _RATE.match(text.lower())
    value = float(match[1]) if match else 0.0
    if not 0 < value <= 1e9:
        raise UsageError(
            f"{option}: {text!r} is not a request rate above zero", hint="write e.g. 2000rps"
        )
    return value


def _integers(text: str | None, option: str, low: int, high: int) -> tuple[int, ...] | None:
    if text is None:
        return None
    values = []
    for part in text.split(","):
        try:
            value = int(part)
        except ValueError:
            value = low - 1
        if not low <= value <= high:
            raise UsageError(
                f"{option}: {part.strip()!r} is not a whole number from {low} to {high}",
                hint=f"give a list such as {option} 1,2,4",
            )
        values.append(value)
    return tuple(sorted(set(values)))


_DELAY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(us|ms|s)?\s*$")
_DELAY_UNIT_US = {None: 1, "us": 1, "ms": 1000, "s": 1_000_000}


def _delays(text: str | None) -> tuple[int, ...] | None:
    """Queue delays in microseconds from ``0,500,2ms`` (a bare number is microseconds)."""
    if text is None:
        return None
    values = []
    for part in text.split(","):
        match = _DELAY.match(part.lower())
        value = round(float(match[1]) * _DELAY_UNIT_US[match[2]]) if match else -1
        if not 0 <= value <= MAX_QUEUE_DELAY_US:
            raise UsageError(
                f"--queue-delays: {part.strip()!r} is not a delay from 0 to 10s",
                hint="give microseconds or a unit, e.g. --queue-delays 0,500us,2ms",
            )
        values.append(value)
    return tuple(sorted(set(values)))


def _preferred(text: str | None) -> tuple[bool, ...] | None:
    if text is None:
        return None
    words = {"none": False, "max": True}
    values = []
    for part in text.split(","):
        word = part.strip().lower()
        if word not in words:
            raise UsageError(
                f"--preferred: {part.strip()!r} is not none or max",
                hint="none: no preferred batch size; max: prefer full batches",
            )
        values.append(words[word])
    return tuple(sorted(set(values)))


__all__ = ["LOAD_ALLOWANCE_S", "TuneFlags", "TuneOptions", "parse_rate", "tune_options"]
