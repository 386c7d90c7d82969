"""SLA expressions: a small grammar, parsed once, evaluated against each step's summary.

    sla     := term ("," term)*
    term    := metric op number [unit]
    metric  := p50 | p90 | p95 | p99 | p99.9 | max | mean          latency of a request
             | ttft_p50 | ttft_p99 | itl_p50 | itl_p99            streams: first token, between tokens
             | error_rate | throughput | tokens_per_s
    op      := "<" | "<=" | ">" | ">="
    unit    := us | ms | s   (latencies: required)  |   %   (error_rate; without it a fraction)
             | rps | /s      (throughput, tokens_per_s; optional)

Example: ``p99<250ms, error_rate<0.1%, throughput>500``. A latency without a unit (``p99<250``) is
refused rather than guessed. A latency that could not be measured (no request of the step
succeeded) meets no term: its value is None.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mlops_cli.errors import UsageError

LATENCY_METRICS = ("p50", "p90", "p95", "p99", "p99.9", "max", "mean")
STREAM_METRICS = ("ttft_p50", "ttft_p99", "itl_p50", "itl_p99")
RATE_METRICS = ("throughput", "tokens_per_s")
METRICS = (*LATENCY_METRICS, *STREAM_METRICS, "error_rate", *RATE_METRICS)

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
}
_TERM = re.compile(
    r"\s*(?P<metric>[a-z_]+(?:\d+(?:\.\d+)?)?)\s*(?P<op><=|>=|<|>)\s*"
    r"(?P<number>\d+(?:\.\d+)?|\.\d+)\s*(?P<unit>us|ms|s|%|rps|/s)?\s*$"
)
_LATENCY_UNITS = {"ms": 1.0, "s": 1000.0, "us": 0.001}


class SlaSyntaxError(UsageError):
    """An SLA expression does not parse; exit code 2."""


@dataclass(frozen=True)
class SlaTerm:
    """One condition: ``metric op threshold``, the threshold in the summary's own units
    (milliseconds for latencies, a fraction for error_rate, per second for rates)."""

    text: str
    metric: str
    op: str
    threshold: float

    def actual(self, summary: Mapping[str, Any]) -> float | None:
        """The measured value this term compares, from a step summary (None: not measured)."""
        if self.metric in LATENCY_METRICS:
            latency = summary["latency_ms"]
            return None if latency is None else float(latency[self.metric])
        if self.metric in STREAM_METRICS:
            kind, pct = self.metric.split("_")
            stream = summary.get("stream") or {}
            block = stream.get("ttft_ms" if kind == "ttft" else "itl_ms")
            return None if block is None else float(block[pct])
        if self.metric == "tokens_per_s":
            return float((summary.get("stream") or {}).get("tokens_per_s", 0.0))
        if self.metric == "throughput":
            return float(summary["throughput_rps"])
        return float(summary["error_rate"])

    def holds(self, summary: Mapping[str, Any]) -> bool:
        actual = self.actual(summary)
        return actual is not None and _OPS[self.op](actual, self.threshold)


@dataclass(frozen=True)
class Sla:
    text: str
    terms: tuple[SlaTerm, ...]

    def failures(self, summary: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The terms a step summary does not meet, each with the measured value."""
        return [
            {"term": term.text, "metric": term.metric, "actual": term.actual(summary)}
            for term in self.terms
            if not term.holds(summary)
        ]


def _fail(text: str, part: str, why: str) -> SlaSyntaxError:
    return SlaSyntaxError(
        f"SLA expression {text!r} does not parse at {part.strip()!r}: {why}",
        hint="write terms like 'p99<250ms,error_rate<0.1%,throughput>500' "
        f"(metrics: {', '.join(METRICS)})",
    )


def parse_sla(text: str) -> Sla:
    """Parse an SLA expression; raise :class:`SlaSyntaxError` naming the part that is wrong."""
    if not text.strip():
        raise _fail(text, text, "it is empty")
    terms: list[SlaTerm] = []
    for part in text.split(","):
        match = _TERM.match(part.lower())
        if match is None:
            raise _fail(text, part, "expected METRIC OP NUMBER[UNIT]")
        metric, op, unit = match["metric"], match["op"], match["unit"]
        value = float(match["number"])
        if metric not in METRICS:
            from mlops_cli.validation import closest

            near = closest(metric, METRICS)
            hint = f" (did you mean {near!r}?)" if near else ""
            raise _fail(text, part, f"unknown metric {metric!r}{hint}")
        if metric in LATENCY_METRICS or metric in STREAM_METRICS:
            if unit is None:
                raise _fail(text, part, f"a latency needs a unit: {match['number']}ms, us or s")
            if unit not in _LATENCY_UNITS:
                raise _fail(text, part, f"a latency takes us, ms or s, not {unit!r}")
            value *= _LATENCY_UNITS[unit]
        elif metric == "error_rate":
            if unit not in (None, "%"):
                raise _fail(text, part, f"error_rate takes % or a fraction, not {unit!r}")
            value = value / 100 if unit == "%" else value
            if value > 1:
                raise _fail(text, part, "an error rate above 100% is never reached")
        elif unit not in (None, "rps", "/s"):
            raise _fail(text, part, f"{metric} takes rps or /s, not {unit!r}")
        terms.append(SlaTerm(text=part.strip(), metric=metric, op=op, threshold=value))
    return Sla(text=text, terms=tuple(terms))
