"""The tune search as pure logic: a server whose latency follows a known formula (a Bench that
computes instead of measuring), a clock that only moves when the bench works. The same search
runs on the real local Triton in tests/integration/test_tune_triton.py."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pytest

from mlops_cli.perf.sla import parse_sla
from mlops_cli.spec.modelspec import ModelSpec
from mlops_cli.tune.measurement import (
    CandidateLoadError,
    Figures,
    Measurement,
    judge,
    term_slack,
)
from mlops_cli.tune.search import Objective, Search, SearchLog, saturable
from mlops_cli.tune.space import LoadPlan, SearchSpace, ServingConfig, SpaceChoices, build_space

pytestmark = pytest.mark.unit

BASE_MS, PER_ITEM_MS = 20.0, 1.0


def spec(**changes: Any) -> ModelSpec:
    document: dict[str, Any] = {
        "name": "bs",
        "runtime": "triton-python",
        "entrypoint": "model.py",
        "inputs": [{"name": "x", "dtype": "FP32", "shape": [4]}],
        "outputs": [{"name": "y", "dtype": "FP32", "shape": [4]}],
        "batching": {"max_batch_size": 8, "dynamic": True},
    }
    document.update(changes)
    return ModelSpec.from_dict(document)


def formula(config: ServingConfig, users: float) -> tuple[float, float]:
    """(throughput req/s, p99 ms) of a closed loop: each instance runs batches of up to
    max_batch_size, each taking BASE + PER_ITEM * batch; a batch that cannot fill waits the
    queue delay."""
    per_instance = max(1.0, users / config.instances)
    batch = min(max(1, config.max_batch_size), per_instance)
    service = BASE_MS + PER_ITEM_MS * batch
    if config.dynamic and per_instance < config.max_batch_size:
        service += config.queue_delay_us / 1000
    capacity = config.instances * batch / service * 1000
    throughput = min(users / service * 1000, capacity)
    return throughput, users / throughput * 1000 * 1.2


@dataclass
class FormulaBench:
    """A Bench that computes; loading takes 1.5 s and measuring 1 s of the fake clock."""

    refuse: set[int] = field(default_factory=set)  # instance counts the server will not load
    fatal: bool = False
    now: float = 0.0
    loaded: list[ServingConfig] = field(default_factory=list)

    def clock(self) -> float:
        return self.now

    def load(self, config: ServingConfig) -> None:
        self.now += 1.5
        if config.instances in self.refuse:
            raise CandidateLoadError("three instances refused on purpose", fatal=self.fatal)
        self.loaded.append(config)

    def measure(self, config: ServingConfig, load: LoadPlan, level: float) -> Figures:
        self.now += 1.0
        if load.mode == "open":  # as many users as the rate keeps busy (Little's law)
            capacity, _ = formula(config, 1e6)
            throughput, p99 = formula(config, max(1.0, level * BASE_MS / 1000))
            throughput = min(level, capacity)
            p99 *= 1 if level < capacity else 10
        else:
            throughput, p99 = formula(config, level)
        return Figures(
            throughput_rps=throughput,
            latency_ms={"p50": p99 / 1.5, "p99": p99},
            error_rate=0.0,
            stable=True,
        )


def search(
    space: SearchSpace,
    sla: str,
    *,
    strategy: str = "coordinate",
    bench: FormulaBench | None = None,
    budget_s: float = 1e6,
    objective: Objective | None = None,
) -> SearchLog:
    bench = bench or FormulaBench()
    return Search(
        space=space,
        bench=bench,
        sla=parse_sla(sla),
        objective=objective or Objective("throughput", space.load.mode),
        budget_s=budget_s,
        first_load_s=1.5,
        first_measure_s=1.0,
        clock=bench.clock,
    ).run(strategy)  # type: ignore[arg-type]


WIDE = SpaceChoices(max_concurrency=128)  # the defaults: 4 x 41 configurations x 8 levels


def test_coordinate_search_finds_the_grids_best_with_a_fraction_of_its_measurements() -> None:
    space = build_space(spec(), WIDE)
    grid = search(space, "p99<80ms", strategy="grid")
    tuned = search(space, "p99<80ms")
    assert grid.measured == space.grid_measurements == 4 * 41 * 8
    assert grid.best is not None and tuned.best is not None
    assert tuned.best.figures.throughput_rps >= 0.9 * grid.best.figures.throughput_rps
    assert tuned.measured * 3 <= grid.measured
    assert tuned.elapsed_s * 3 <= grid.elapsed_s
    assert tuned.best.met and tuned.best.p99_ms is not None and tuned.best.p99_ms < 80
    # every configuration was measured at most once per level, and loaded once
    seen = [(m.config, m.level) for m in tuned.measurements]
    assert len(seen) == len(set(seen)) and tuned.loads == len(tuned.trials)


def test_the_version_own_configuration_is_measured_first_and_kept_as_the_start() -> None:
    space = build_space(spec(instances=2), WIDE)
    log = search(space, "p99<80ms")
    assert log.measurements[0].config == ServingConfig(2, 8, 0, False) == space.start
    assert log.start is not None and log.start.config == space.start


def test_an_unreachable_sla_ends_quickly_with_the_closest_candidate() -> None:
    space = build_space(spec(), WIDE)
    log = search(space, "p99<5ms")
    assert log.best is None and log.closest is not None
    assert log.closest.missed and "over)" in log.closest.missed[0]
    assert log.measured <= 12
    # nothing measured came closer than the one reported
    assert all(m.slack <= log.closest.slack for m in log.measurements)


def test_a_candidate_that_fails_to_load_is_recorded_and_the_search_goes_on() -> None:
    space = build_space(spec(), SpaceChoices(instances=(1, 2, 3, 4), max_concurrency=64))
    bench = FormulaBench(refuse={3})
    log = search(space, "p99<80ms", bench=bench)
    failed = [m for m in log.measurements if m.status == "failed"]
    assert failed and {m.config.instances for m in failed} == {3}
    assert all(m.level is None and "refused on purpose" in m.reason for m in failed)
    # the search stepped over it to 4 instances, which the best has
    after = log.measurements[failed[0].index + 1]
    assert after.config.instances == 4 and after.level is not None
    assert log.best is not None and log.best.config.instances == 4
    assert log.stopped is None


def test_a_load_the_server_never_finishes_stops_the_search_and_says_why() -> None:
    space = build_space(spec(), SpaceChoices(instances=(1, 3), max_concurrency=8))
    log = search(space, "p99<80ms", bench=FormulaBench(refuse={3}, fatal=True))
    assert log.stopped is not None and "cannot load candidates any more" in log.stopped
    assert log.best is not None and log.best.config.instances == 1


def test_the_budget_stops_the_search_before_it_runs_over() -> None:
    space = build_space(spec(), WIDE)
    log = search(space, "p99<80ms", strategy="grid", budget_s=30)
    assert log.stopped == "the time budget ran out"
    assert 0 < log.measured < space.grid_measurements
    assert log.elapsed_s <= 30


def test_a_flat_curve_stops_the_climb_only_once_every_batch_slot_can_fill() -> None:
    config = ServingConfig(2, 8, 0, False)
    figures = Figures(throughput_rps=1.0, latency_ms={"p99": 1.0})
    low = _measurement(config, 8, figures)
    full = _measurement(config, 16, figures)
    assert not saturable(config, low) and saturable(config, full)


def _measurement(config: ServingConfig, level: float, figures: Figures) -> Measurement:
    return Measurement(0, config, level, "met", figures)


def test_a_model_without_batching_keeps_only_instances_and_says_so() -> None:
    plain = spec(batching={"max_batch_size": 0})
    space = build_space(plain, SpaceChoices(batch_sizes=(1, 8), queue_delays_us=(0, 500)))
    assert space.searched == ("instances",)
    assert space.values["max_batch_size"] == (0,)
    [note] = space.skipped
    assert "does not batch" in note and "--batch-sizes, --queue-delays ignored" in note
    assert {c.max_batch_size for c in space.configs()} == {0}


def test_the_batchers_settings_exist_only_where_the_server_batches() -> None:
    space = build_space(spec(), SpaceChoices(batch_sizes=(1, 8), queue_delays_us=(0, 2000)))
    unbatched = ServingConfig(1, 1)
    assert space.step(unbatched, "queue_delay_us", 1) is None
    assert space.step(unbatched, "max_batch_size", 1) == ServingConfig(1, 8, 0, False)
    # 2 instance counts... x (no batching + batch 8 with 2 delays x 2 preferred)
    assert len(space.configs()) == len(space.values["instances"]) * (1 + 2 * 2)
    assert ServingConfig(1, 8, 2000, True).applied_to(spec()).batching.preferred_batch_sizes == (8,)


def test_the_start_is_the_version_own_values_snapped_to_the_space() -> None:
    own = spec(instances=3, batching={"max_batch_size": 6, "dynamic": True})
    space = build_space(own, SpaceChoices(instances=(1, 2, 4), batch_sizes=(4, 8)))
    assert space.start == ServingConfig(2, 4, 0, False)  # 3 -> 2 (the lower of equals), 6 -> 4
    static = spec(batching={"max_batch_size": 8, "dynamic": False})
    assert ServingConfig.of_spec(static) == ServingConfig(1, 1)


def test_fixed_rate_and_fixed_concurrency_are_one_level() -> None:
    assert build_space(spec(), SpaceChoices(rate=250.0)).load == LoadPlan("open", (250.0,))
    fixed = build_space(spec(), SpaceChoices(concurrency=12))
    assert fixed.load == LoadPlan("closed", (12.0,)) and "fixed at 12" in fixed.skipped[0]


def test_slack_and_the_verdict_of_one_measurement() -> None:
    assert term_slack("<", 100, 80) == pytest.approx(0.2)
    assert term_slack("<", 100, 250) == pytest.approx(-1.5)
    assert term_slack(">", 500, 600) == pytest.approx(0.2)
    assert term_slack(">", 500, 250) == pytest.approx(-1.0)
    assert term_slack("<", 100, None) == -math.inf
    sla = parse_sla("p99<100ms,throughput>500")
    good = Figures(throughput_rps=600, latency_ms={"p99": 80.0}, stable=True)
    met, missed, slack = judge(sla, good, 0.0)
    assert met and missed == () and slack == pytest.approx(0.2)
    met, missed, slack = judge(sla, Figures(throughput_rps=250, latency_ms={"p99": 130.0}), 0.0)
    assert not met and slack == pytest.approx(-1.0)
    assert missed == (
        "p99<100ms (measured 130.00 ms, 30.00 ms over)",
        "throughput>500 (measured 250.0/s, 250.0/s under)",
    )
    erring = Figures(throughput_rps=600, latency_ms={"p99": 80.0}, error_rate=0.02)
    met, missed, _ = judge(sla, erring, 0.01)
    assert not met and missed == ("failed requests 2.00% (allowed 1.00%)",)
    assert judge(sla, Figures(failure="every request failed"), 0.0)[:2] == (
        False,
        ("every request failed",),
    )


def test_the_cost_objective_prefers_the_cheaper_then_fewer_instances() -> None:
    from mlops_cli.tune.cost import InstancePrice, cost_of

    price = InstancePrice("ml.c5.xlarge", 0.204)
    objective = Objective("cost", "closed", lambda rps: cost_of(rps, price, 2000).per_million)
    figures = {n: Figures(throughput_rps=n, latency_ms={"p99": 10.0}) for n in (1000, 1100, 700)}
    two_big = _measurement(ServingConfig(4, 8), 32, figures[1100])  # 2 servers
    two_small = _measurement(ServingConfig(2, 8), 32, figures[1000])  # 2 servers, 2 instances
    three = _measurement(ServingConfig(1, 8), 32, figures[700])  # 3 servers
    ranked = sorted([two_big, three, two_small], key=objective.rank, reverse=True)
    assert ranked == [two_small, two_big, three]


def test_at_a_fixed_rate_the_best_has_the_most_headroom_or_the_fewest_instances() -> None:
    space = build_space(spec(), SpaceChoices(rate=300.0, instances=(1, 2, 4), batch_sizes=(1, 8)))
    log = search(space, "p99<80ms")
    assert {m.level for m in log.measurements} == {300.0}
    met = [m for m in log.measurements if m.met]
    assert log.best is not None and log.best.slack == max(m.slack for m in met)
    cheapest = search(space, "p99<80ms", objective=Objective("cost", "open", lambda rps: 1.0))
    assert cheapest.best is not None
    assert cheapest.best.config.instances == min(m.config.instances for m in met)
