"""One candidate measured: what a :class:`Bench` (where candidates run) gives back
(:class:`Figures`), the record of it (:class:`Measurement`), and the verdict of the SLA on it
(:func:`judge`): met or not, the terms missed with what was measured and how far off, and the
tightest margin (:func:`term_slack`), which the search climbs while nothing meets the SLA."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from mlops_cli.errors import MlopsError
from mlops_cli.perf.sla import Sla
from mlops_cli.tune.space import LoadPlan, ServingConfig


class CandidateLoadError(MlopsError):
    """The server would not load a candidate configuration. ``fatal``: the server cannot load
    anything more (a load it never finishes), so the search stops."""

    def __init__(self, message: str, *, fatal: bool = False) -> None:
        super().__init__(message)
        self.fatal = fatal


@dataclass(frozen=True)
class Figures:
    """What one measurement gave: the perf engine's step figures, or why the run failed."""

    throughput_rps: float = 0.0
    latency_ms: Mapping[str, float] | None = None
    error_rate: float = 0.0
    stable: bool = False
    stream: Mapping[str, Any] | None = None
    failure: str | None = None  # every request failed, or the target went away

    def summary(self) -> dict[str, Any]:
        """The fields an SLA term reads (as in a perftest step)."""
        return {
            "throughput_rps": self.throughput_rps,
            "latency_ms": dict(self.latency_ms) if self.latency_ms is not None else None,
            "error_rate": self.error_rate,
            "stream": dict(self.stream) if self.stream is not None else None,
        }


class Bench(Protocol):
    """Where candidates run."""

    def load(self, config: ServingConfig) -> None:
        """Serve ``config`` (replacing the previous candidate); CandidateLoadError when the
        server refuses it."""

    def measure(self, config: ServingConfig, load: LoadPlan, level: float) -> Figures:
        """Measure the loaded candidate at one load level until stable (bounded)."""


@dataclass(frozen=True)
class Measurement:
    """One candidate measured: a configuration at one load level (``level`` None: it did not
    load). ``slack`` is the SLA's tightest margin, relative (0.2: 20% inside the limit; -1.5: 2.5x
    over it); -inf when nothing could be measured."""

    index: int
    config: ServingConfig
    level: float | None
    status: Literal["met", "missed", "failed"]
    figures: Figures
    missed: tuple[str, ...] = ()
    slack: float = -math.inf
    seconds: float = 0.0
    reason: str = ""

    @property
    def met(self) -> bool:
        return self.status == "met"

    @property
    def p99_ms(self) -> float | None:
        latency = self.figures.latency_ms
        return None if latency is None else float(latency["p99"])

    def to_dict(self, load: LoadPlan) -> dict[str, Any]:
        figures = self.figures
        return {
            "index": self.index,
            "config": self.config.to_dict(),
            "describe": self.config.describe(),
            "mode": load.mode,
            "level": self.level,
            "status": self.status,
            "throughput_rps": round(figures.throughput_rps, 2),
            "latency_ms": dict(figures.latency_ms) if figures.latency_ms is not None else None,
            "error_rate": figures.error_rate,
            "stable": figures.stable,
            "missed": list(self.missed),
            "slack": None if math.isinf(self.slack) else round(self.slack, 4),
            "seconds": round(self.seconds, 3),
            "reason": self.reason,
        }


def term_slack(op: str, threshold: float, actual: float | None) -> float:
    """How far inside (positive) or outside (negative) a limit ``actual`` lies, relative."""
    if actual is None:
        return -math.inf
    if op in ("<", "<="):
        if threshold <= 0:
            return 0.0 if actual <= threshold else -math.inf
        return (threshold - actual) / threshold
    if threshold <= 0:
        return math.inf if actual > threshold else 0.0
    if actual <= 0:
        return -math.inf
    return (actual - threshold) / threshold if actual >= threshold else 1 - threshold / actual


def judge(sla: Sla, figures: Figures, max_error_rate: float) -> tuple[bool, tuple[str, ...], float]:
    """(met, the terms missed with what was measured, slack) of one measurement."""
    if figures.failure is not None:
        return False, (figures.failure,), -math.inf
    summary = figures.summary()
    missed = [
        f"{term.text} (measured {_measured(term.metric, actual)}{_by(term.metric, term.threshold, actual)})"
        for term in sla.terms
        if not term.holds(summary)
        for actual in (term.actual(summary),)
    ]
    slack = min(
        (term_slack(t.op, t.threshold, t.actual(summary)) for t in sla.terms), default=math.inf
    )
    if figures.error_rate > max_error_rate:
        missed.append(f"failed requests {figures.error_rate:.2%} (allowed {max_error_rate:.2%})")
        slack = min(slack, -figures.error_rate)
    return not missed, tuple(missed), slack


def _by(metric: str, threshold: float, actual: float | None) -> str:
    """``, 16.20 ms over``: how far a measured value lies from its limit."""
    if actual is None:
        return ""
    gap = abs(actual - threshold)
    side = "over" if actual > threshold else "under"
    if metric == "error_rate":
        return f", {gap:.2%} {side}"
    if metric in ("throughput", "tokens_per_s"):
        return f", {gap:,.1f}/s {side}"
    return f", {gap:.2f} ms {side}"


def _measured(metric: str, actual: float | None) -> str:
    if actual is None:
        return "n/a"
    if metric == "error_rate":
        return f"{actual:.2%}"
    if metric in ("throughput", "tokens_per_s"):
        return f"{actual:,.1f}/s"
    return f"{actual:.2f} ms"


__all__ = ["Bench", "CandidateLoadError", "Figures", "Measurement", "judge", "term_slack"]
