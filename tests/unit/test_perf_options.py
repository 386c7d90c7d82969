"""``mlops perftest`` flags -> typed options (:func:`mlops_cli.perf.options.perftest_options`), on
plain inputs: each refusal with its message, a closed and an open loop, and what passes through."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops_cli.errors import UsageError
from mlops_cli.perf.options import PerftestFlags, TargetOptions, perftest_options
from mlops_cli.perf.windows import StabilityRule

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            PerftestFlags(concurrency="1,4", rate="100"),
            "give --concurrency or --rate, not both",
        ),
        (
            PerftestFlags(payload="@bodies.jsonl", template='{"x": {{i}}}'),
            "give --payload or --template, not both",
        ),
        (PerftestFlags(arrival="bursty"), "--arrival: 'bursty' is not constant or poisson"),
        (PerftestFlags(window="0s"), "--window must be above zero"),
        (PerftestFlags(window="soon"), "--window: 'soon' is not a duration"),
        (PerftestFlags(headers=("X-Token",)), "--header: 'X-Token' is not NAME:VALUE"),
        (PerftestFlags(headers=(" :value",)), "--header: ' :value' is not NAME:VALUE"),
        (PerftestFlags(concurrency="1,0"), "--concurrency: '0' is not valid"),
        (PerftestFlags(concurrency="2.5"), "--concurrency: '2.5' is not valid"),
        (PerftestFlags(rate="fast"), "--rate: 'fast' is not valid"),
        (PerftestFlags(duration="10 parsecs"), "--duration: '10 parsecs' is not a duration"),
        (PerftestFlags(timeout="-1s"), "--timeout: '-1s' is not a duration"),
        (
            PerftestFlags(max_error_rate="1"),
            "--max-error-rate: '1' is not a percentage from 0% to 100%",
        ),
    ],
)
def test_contradictory_or_malformed_flags_are_refused_with_their_message(
    flags: PerftestFlags, message: str
) -> None:
    with pytest.raises(UsageError) as refused:
        perftest_options(flags)
    assert str(refused.value) == message


def test_the_first_contradiction_is_the_one_reported() -> None:
    flags = PerftestFlags(concurrency="1", rate="5", payload="@a.jsonl", template="{}")
    with pytest.raises(UsageError, match="--concurrency or --rate"):
        perftest_options(flags)


def test_no_load_flag_is_a_closed_loop_of_one_user_until_stable() -> None:
    options = perftest_options(PerftestFlags())
    assert options.load.mode == "closed"
    assert options.load.levels == (1.0,)
    assert options.load.until_stable
    assert options.load.warmup_s == 1.0 and options.load.window_s == 1.0
    assert options.reach == TargetOptions()
    assert options.sla is None
    assert options.max_error_rate == 0.0
    assert options.payload_file is None and options.template is None


def test_concurrency_steps_are_a_closed_loop() -> None:
    options = perftest_options(
        PerftestFlags(
            concurrency="1,4,16",
            duration="10s",
            warmup="500ms",
            window="2s",
            stable_windows=5,
            stable_tolerance=0.2,
            workers=2,
            distribution="zipf:1.1",
            seed=7,
        )
    )
    load = options.load
    assert load.mode == "closed"
    assert load.levels == (1.0, 4.0, 16.0)
    assert load.duration_s == 10.0 and load.warmup_s == 0.5 and load.window_s == 2.0
    assert load.window_cap() == 5
    assert load.stability == StabilityRule(windows=5, tolerance=0.2)
    assert (load.workers, load.distribution, load.seed) == (2, "zipf:1.1", 7)


def test_a_rate_is_an_open_loop_with_its_arrivals(tmp_path: Path) -> None:
    model_list = tmp_path / "models.txt"
    model_list.write_text("# registered\nm2\n\nm3\n", encoding="utf-8")
    options = perftest_options(
        PerftestFlags(
            rate="100,250.5",
            arrival="poisson",
            requests=1000,
            protocol="http",
            models=("m1", f"@{model_list}"),
            tenant="acme",
            stream=True,
            timeout="2s",
            max_connections=64,
            method="PUT",
            headers=("Authorization: Bearer t:k", "X-Trace:1"),
            payload="@bodies.jsonl",
            sla="p99<250ms,error_rate<0.1%",
            max_error_rate="0.5%",
        )
    )
    assert options.load.mode == "open"
    assert options.load.levels == (100.0, 250.5)
    assert options.load.arrival == "poisson"
    assert options.load.requests == 1000 and not options.load.until_stable
    assert options.reach == TargetOptions(
        protocol="http",
        models=("m1", "m2", "m3"),
        tenant="acme",
        stream=True,
        timeout_s=2.0,
        max_connections=64,
        method="PUT",
        headers=(("Authorization", "Bearer t:k"), ("X-Trace", "1")),
    )
    assert options.sla is not None
    assert [term.metric for term in options.sla.terms] == ["p99", "error_rate"]
    assert options.max_error_rate == pytest.approx(0.005)
    assert options.payload_file == Path("bodies.jsonl")


def test_a_template_passes_through_as_written() -> None:
    options = perftest_options(PerftestFlags(template='{"inputs": [{{i}}]}'))
    assert options.template == '{"inputs": [{{i}}]}'
    assert options.payload_file is None


def test_an_unreadable_model_list_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "none.txt"
    with pytest.raises(UsageError, match=f"cannot read the model list {missing}"):
        perftest_options(PerftestFlags(models=(f"@{missing}",)))


@pytest.mark.parametrize("value", ["nan", "inf", "2000000"])
def test_a_rate_that_is_not_a_finite_number_in_range_is_refused(value: str) -> None:
    from mlops_cli.perf.options import parse_levels

    with pytest.raises(UsageError, match=f"--rate: '{value}' is not valid"):
        parse_levels(value, option="--rate", integer=False)
