"""SLA expressions: the grammar, units, clear errors, and verdicts against a step summary."""

from __future__ import annotations

import pytest

from mlops_cli.errors import EXIT_USAGE
from mlops_cli.perf.sla import SlaSyntaxError, parse_sla

pytestmark = pytest.mark.unit

STEP = {
    "label": "concurrency=4",
    "throughput_rps": 480.0,
    "error_rate": 0.002,
    "latency_ms": {
        "p50": 2.0,
        "p90": 3.0,
        "p95": 4.0,
        "p99": 240.0,
        "p99.9": 300.0,
        "max": 400.0,
        "mean": 2.5,
    },
    "stream": {
        "ttft_ms": {"p50": 10.0, "p99": 30.0},
        "itl_ms": {"p50": 2.0, "p99": 5.0},
        "tokens_per_s": 900.0,
    },
}


def test_terms_are_parsed_into_the_summary_units() -> None:
    sla = parse_sla(
        "p99<250ms, error_rate<0.1%,throughput>500, p99.9<=0.5s, ttft_p99<40ms, tokens_per_s>=800/s"
    )
    assert [(t.metric, t.op, t.threshold) for t in sla.terms] == [
        ("p99", "<", 250.0),
        ("error_rate", "<", 0.001),
        ("throughput", ">", 500.0),
        ("p99.9", "<=", 500.0),
        ("ttft_p99", "<", 40.0),
        ("tokens_per_s", ">=", 800.0),
    ]
    assert parse_sla("max<900us").terms[0].threshold == pytest.approx(0.9)


def test_failures_name_each_term_with_its_measured_value() -> None:
    failures = parse_sla("p99<250ms,error_rate<0.1%,throughput>500,ttft_p99<40ms").failures(STEP)
    assert [(f["term"], f["actual"]) for f in failures] == [
        ("error_rate<0.1%", 0.002),
        ("throughput>500", 480.0),
    ]
    assert parse_sla("p99<=240ms").failures(STEP) == []


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        ("p99 250ms", "expected METRIC OP NUMBER"),
        ("p98<250ms", "unknown metric 'p98'"),
        ("latency<3ms", "unknown metric"),
        ("p99<250rps", "a latency takes us, ms or s"),
        ("error_rate<2ms", "error_rate takes %"),
        ("throughput>5ms", "throughput takes rps"),
        ("p99<250ms,,", "expected METRIC"),
        ("error_rate<150%", "above 100%"),
        ("p99<250", "a latency needs a unit: 250ms, us or s"),
        ("ttft_p99<40", "a latency needs a unit"),
    ],
)
def test_an_expression_that_does_not_parse_is_a_usage_error_naming_the_part(
    text: str, fragment: str
) -> None:
    with pytest.raises(SlaSyntaxError) as caught:
        parse_sla(text)
    assert fragment in caught.value.message
    assert caught.value.exit_code == EXIT_USAGE
    assert "p99<250ms" in (caught.value.hint or "")
