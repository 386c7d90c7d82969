"""`mlops tune` flags, the price table and the cost arithmetic: everything refused before any
candidate is loaded, with one line that names the flag (or the file and key)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops_cli.errors import EXIT_USAGE, UsageError
from mlops_cli.perf.sla import SlaSyntaxError
from mlops_cli.tune.cost import PriceTableError, cost_of, load_prices
from mlops_cli.tune.options import TuneFlags, parse_rate, tune_options

pytestmark = pytest.mark.unit


def options(**flags: object) -> object:
    return tune_options(TuneFlags(**{"sla": "p99<100ms", **flags}))  # type: ignore[arg-type]


def refused(**flags: object) -> str:
    with pytest.raises(UsageError) as caught:
        options(**flags)
    assert caught.value.exit_code == EXIT_USAGE
    return caught.value.message


def test_the_defaults_search_concurrency_within_ten_minutes() -> None:
    parsed = tune_options(TuneFlags(sla="p99<100ms"))
    assert parsed.budget_s == 600 and parsed.objective == "throughput"
    assert parsed.strategy == "coordinate" and parsed.space.rate is None
    assert parsed.space.instances is None  # the defaults, plus the version's own value
    assert parsed.least_measurement_s == pytest.approx(0.5 + 3 * 0.5)


def test_values_of_each_dimension() -> None:
    parsed = tune_options(
        TuneFlags(
            sla="p99<100ms",
            instances="4,1,2,2",
            batch_sizes="8,1",
            queue_delays="0,500us,2ms,100",
            preferred="max,none",
            traffic="2000rps",
            rate="300/s",
        )
    )
    space = parsed.space
    assert space.instances == (1, 2, 4) and space.batch_sizes == (1, 8)
    assert space.queue_delays_us == (0, 100, 500, 2000)
    assert space.preferred == (False, True)
    assert space.rate == 300 and parsed.traffic_rps == 2000
    assert parsed.measure.mode == "open"


def test_an_sla_that_does_not_parse_is_refused() -> None:
    with pytest.raises(SlaSyntaxError, match="does not parse at 'p99<100'"):
        options(sla="p99<100")
    with pytest.raises(SlaSyntaxError, match=r"did you mean 'p99\.9'"):
        options(sla="p999<1s")


def test_a_budget_too_small_for_one_measurement_is_refused() -> None:
    message = refused(budget="2s")
    assert "--budget 2s is too small for one measurement" in message
    assert "at least 3.5 s" in message  # load ~1.5 s + warmup 0.5 s + 3 windows of 0.5 s
    tune_options(TuneFlags(sla="p99<1s", budget="4s"))  # enough for one
    assert "is not a duration" in refused(budget="ten minutes")


@pytest.mark.parametrize("text", ["fast", "0rps", "-5rps", "2000 rpm", ""])
def test_a_traffic_level_that_is_not_a_rate_is_refused(text: str) -> None:
    assert "--traffic" in refused(traffic=text) and "is not a request rate" in refused(traffic=text)


def test_rates_read_like_people_write_them() -> None:
    assert parse_rate("2000rps", option="--traffic") == 2000
    assert parse_rate(" 2.5 req/s", option="--traffic") == 2.5
    assert parse_rate("150", option="--traffic") == 150


def test_contradictory_or_malformed_flags_are_refused() -> None:
    assert "give one" in refused(rate="100", concurrency=4)
    assert "--instances: '0'" in refused(instances="1,0")
    assert "--instances: '65'" in refused(instances="65")
    assert "--batch-sizes: 'big'" in refused(batch_sizes="1,big")
    assert "--queue-delays: '2 weeks'" in refused(queue_delays="2 weeks")
    assert "--preferred: 'maybe'" in refused(preferred="maybe")
    assert "--objective: 'latency'" in refused(objective="latency")
    assert "--strategy: 'random'" in refused(strategy="random")
    assert "--concurrency must be" in refused(concurrency=0)
    assert "fewer than the 3 windows" in refused(max_windows=2)
    assert "--max-error-rate" in refused(max_error_rate="5")


# -- the price table -----------------------------------------------------------------------


def test_the_shipped_table_is_dated_and_has_cpu_and_gpu_defaults() -> None:
    table = load_prices()
    assert table.as_of and table.currency == "USD"
    assert table.choose(None, gpu=False).gpus == 0
    assert table.choose(None, gpu=True).gpus >= 1
    assert table.choose("ml.g5.xlarge", gpu=False).price_per_hour > 0


def test_an_unknown_instance_type_names_the_nearest() -> None:
    with pytest.raises(UsageError, match=r"'ml\.g5\.xlarg' is not in the price table") as caught:
        load_prices().choose("ml.g5.xlarg", gpu=False)
    assert caught.value.hint is not None and "did you mean 'ml.g5.xlarge'" in caught.value.hint


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "prices.yaml"
    path.write_text(text)
    return path


def test_the_users_own_table(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "as_of: 2025-02-01\ncurrency: EUR\ndefault_cpu: box\n"
        "instances:\n  box: {price_per_hour: 0.5}\n",
    )
    table = load_prices(path)
    assert table.as_of == "2025-02-01" and table.currency == "EUR"  # an unquoted date too
    assert table.choose(None, gpu=False).price_per_hour == 0.5
    with pytest.raises(UsageError, match="has no default_gpu"):
        table.choose(None, gpu=True)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("as_of: '2025-01-01'\ncurrency: USD\ninstances:\n  box: {price_per_hour: cheap}\n",
         "instances.box.price_per_hour"),
        ("as_of: '2025-01-01'\ncurrency: USD\ninstances:\n  box: {price: 1}\n",
         "instances.box"),
        ("as_of: '2025-01-01'\ncurrency: USD\ndefault_cpu: nope\n"
         "instances:\n  box: {price_per_hour: 1}\n", "default_cpu"),
        ("as_of: soon\ncurrency: USD\ninstances:\n  box: {price_per_hour: 1}\n", "as_of"),
        ("as_of: '2025-01-01'\ninstances: [1, 2\n", ":3:1: malformed YAML"),
    ],
)  # fmt: skip
def test_a_price_table_that_does_not_validate_names_the_file_and_key(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(PriceTableError) as caught:
        load_prices(path)
    assert caught.value.exit_code == EXIT_USAGE
    assert str(path) in caught.value.message and expected in caught.value.message


def test_a_missing_price_table_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PriceTableError, match="does not exist"):
        load_prices(tmp_path / "none.yaml")


def test_servers_are_paid_whole_and_cost_per_million_follows() -> None:
    price = load_prices().choose("ml.c5.xlarge", gpu=False)
    cost = cost_of(500.0, price, 2001.0)
    assert cost.servers == 5  # 2001 / 500 rounds up
    assert cost.per_hour == pytest.approx(5 * price.price_per_hour)
    assert cost.per_million == pytest.approx(cost.per_hour / (2001 * 3600) * 1e6)
    busy = cost_of(500.0, price, None)
    assert busy.servers is None
    assert busy.per_million == pytest.approx(price.price_per_hour / (500 * 3600) * 1e6)
    assert cost_of(2000.0, price, 2000.0).servers == 1
    assert cost_of(0.0, price, 10.0).to_dict()["per_million"] is None
