"""The on-demand loading simulator (pure): deterministic, LRU order, warm-up, failures."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops_cli.placement.records import PlacementInputError
from mlops_cli.placement.simulate import (
    FleetModel,
    Trace,
    Workload,
    generate_trace,
    lru_hit_rate,
    simulate,
    trace_from_rows,
)


def _trace(models: list[int], sizes: list[float], *, gap: float = 10.0) -> Trace:
    return Trace(
        names=tuple(f"m{i}@1" for i in range(len(sizes))),
        sizes_mb=tuple(sizes),
        times=[gap * (k + 1) for k in range(len(models))],
        models=models,
    )


def test_the_same_seed_gives_the_same_simulation_and_another_seed_another() -> None:
    workload = Workload(models=300, requests=5000, size_median_mb=800, zipf=1.1, seed=7)
    fleet = FleetModel(server_memory_mb=4096, servers=4, fail_servers=1, seed=3)
    first = simulate(generate_trace(workload, max_size_mb=4096), fleet).to_dict()
    again = simulate(generate_trace(workload, max_size_mb=4096), fleet).to_dict()
    other = Workload(models=300, requests=5000, size_median_mb=800, zipf=1.1, seed=8)
    different = simulate(generate_trace(other, max_size_mb=4096), fleet).to_dict()
    assert first == again
    assert first != different


def test_a_cache_larger_than_the_model_set_only_misses_each_models_first_request() -> None:
    trace = generate_trace(Workload(models=50, requests=20000, size_median_mb=100, seed=1))
    big = sum(trace.sizes_mb) + 1
    result = simulate(trace, FleetModel(server_memory_mb=big, servers=1, load_time_s=0.0))
    for outcome in result.outcomes:
        assert outcome.evictions == 0
        assert outcome.loads == outcome.first_loads == len(set(trace.models))
        assert outcome.hit_rate_after_warmup == 1.0
    assert lru_hit_rate(trace.models, trace.sizes_mb, big) == pytest.approx(
        1 - len(set(trace.models)) / len(trace.models)
    )


def test_lru_evicts_the_least_recently_used_model() -> None:
    # room for two of three equal models: 0 1 0 2 evicts 1 (not 0), so 0 hits and 1 misses
    sizes = [100.0, 100.0, 100.0]
    assert lru_hit_rate([0, 1, 0, 2, 0], sizes, 200) == pytest.approx(2 / 5)
    assert lru_hit_rate([0, 1, 0, 2, 1], sizes, 200) == pytest.approx(1 / 5)
    result = simulate(
        _trace([0, 1, 0, 2, 0, 1], sizes),
        FleetModel(server_memory_mb=200, servers=1, load_time_s=0.0),
        policies=("round-robin",),
    )
    outcome = result.outcome("round-robin")
    assert (outcome.hits, outcome.loads, outcome.evictions) == (2, 4, 2)


def test_requests_during_a_load_wait_for_that_one_load() -> None:
    trace = Trace(names=("a@1",), sizes_mb=(10.0,), times=[0.0, 0.5, 1.5, 3.0], models=[0] * 4)
    outcome = simulate(
        trace, FleetModel(server_memory_mb=100, servers=1, load_time_s=2.0), policies=("random",)
    ).outcome("random")
    assert (outcome.loads, outcome.cold, outcome.hits) == (1, 3, 1)
    assert outcome.cold_wait_p99_ms == pytest.approx(2000.0)


def test_a_failed_servers_models_are_placed_again_and_load_there() -> None:
    workload = Workload(models=40, requests=4000, size_median_mb=100, size_sigma=0.2, seed=2)
    trace = generate_trace(workload)
    roomy = sum(trace.sizes_mb)
    healthy = simulate(trace, FleetModel(server_memory_mb=roomy, servers=3, load_time_s=0.0))
    failing = simulate(
        trace, FleetModel(server_memory_mb=roomy, servers=3, load_time_s=0.0, fail_servers=1)
    )
    assert len(failing.failed) == 1
    for policy in ("planner", "random", "round-robin"):
        before, after = healthy.outcome(policy), failing.outcome(policy)
        assert after.requests == before.requests
        # the dead server's models load once more on their new home, and nothing else changes
        assert after.loads > before.loads
        assert after.evictions == 0


def test_the_planner_spreads_requests_more_evenly_than_the_baselines() -> None:
    trace = generate_trace(
        Workload(models=2000, requests=40000, zipf=1.1, seed=4), max_size_mb=8192
    )
    result = simulate(trace, FleetModel(server_memory_mb=24576, servers=10))
    planner = result.outcome("planner").max_load_ratio
    assert planner < result.outcome("random").max_load_ratio
    assert planner < result.outcome("round-robin").max_load_ratio


def test_without_a_server_count_the_fleet_holds_every_model() -> None:
    trace = generate_trace(Workload(models=500, requests=2000, seed=5), max_size_mb=24576)
    result = simulate(trace, FleetModel(server_memory_mb=24576))
    assert result.servers == result.servers_needed >= result.lower_bound
    assert result.outcome("planner").evictions == 0


def test_bad_input_is_refused() -> None:
    with pytest.raises(PlacementInputError, match="larger than a server"):
        simulate(_trace([0], [500.0]), FleetModel(server_memory_mb=100, servers=1))
    with pytest.raises(PlacementInputError, match="cannot lose"):
        simulate(_trace([0], [50.0]), FleetModel(server_memory_mb=100, servers=2, fail_servers=2))
    with pytest.raises(PlacementInputError, match="header"):
        trace_from_rows([["time", "name"]], default_size_mb=1)


def test_a_recorded_trace_is_read_in_time_order_with_sizes() -> None:
    rows = [["t", "model", "memory_mb"], ["2.0", "b@1", ""], ["1.0", "a@1", "300"], ["3", "a@1"]]
    trace = trace_from_rows(rows, default_size_mb=50)
    assert trace.names == ("b@1", "a@1")
    assert trace.sizes_mb == (50, 300)
    assert list(trace.times) == [1.0, 2.0, 3.0]
    assert list(trace.models) == [1, 0, 1]


def test_the_command_simulates_a_generated_trace_and_replays_a_recorded_one(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from mlops_cli.cli import app
    from tests.cli import error_line, run
    from tests.cli.test_placement_cli import ENTRY

    monkeypatch.setitem(app.COMMANDS, "placement", ENTRY)
    args = [
        "placement",
        "simulate",
        "--models",
        "200",
        "--requests",
        "3000",
        "--seed",
        "1",
        "--rate",
        "50",
    ]
    found = run(capsys, *args, "--servers", "2", "--server-memory", "40GiB", "--fail-servers", "1")
    assert (found["models"], found["requests"], found["servers"]) == (200, 3000, 2)
    assert found["failed_servers"] == 1
    assert set(found["policies"]) == {"planner", "random", "round-robin"}
    assert 0 < found["policies"]["planner"]["hit_rate"] < 1
    trace = tmp_path / "trace.csv"
    trace.write_text("t,model,memory_mb\n0.1,a@1,100\n0.2,b@1,100\n5,a@1,\n")
    replayed = run(capsys, "placement", "simulate", "--trace", str(trace), "--load-time", "1")
    assert (replayed["models"], replayed["requests"]) == (2, 3)
    assert replayed["policies"]["planner"]["hit_rate"] == pytest.approx(1 / 3)
    line = error_line(capsys, *args, "--servers", "1", "--fail-servers", "1", code=2)
    assert "cannot lose" in line
