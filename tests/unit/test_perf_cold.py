"""Cold loads in perftest: the pool reads both router headers, each model's latency is split
between cold and warm answers (merged across workers), the router's load counters are read from
its real metrics exposition and differenced, and the report says it in every format."""

from __future__ import annotations

import asyncio
from typing import Any

from mlops_cli.perf.engine import StepRecord
from mlops_cli.perf.httpclient import ConnectionPool, build_request
from mlops_cli.perf.load_options import LoadOptions
from mlops_cli.perf.report import to_markdown, validate_report
from mlops_cli.perf.report_text import cold_loads
from mlops_cli.perf.router_loads import LoadCounters, load_difference, parse_load_counters
from mlops_cli.perf.router_wire import LOAD_HEADER, VERSION_HEADER, parse_cold, parse_version
from mlops_cli.perf.runner import build_document
from mlops_cli.perf.summary import summarize_step
from mlops_cli.perf.targets import TargetSpec, TenantTraffic
from mlops_cli.perf.windows import WindowStats
from mlops_cli.router.metrics import RouterMetrics, TenantLabelMode

ANSWERS = (
    b"HTTP/1.1 200 OK\r\nX-Model-Version: 3\r\nX-Model-Load: cold\r\nContent-Length: 2\r\n\r\n{}",
    b"HTTP/1.1 200 OK\r\nx-model-version: 3\r\nContent-Length: 2\r\n\r\n{}",
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\n\r\n{}",
)


def test_a_capturing_pool_hands_both_headers_to_each_completion() -> None:
    async def main() -> list[tuple[Any, ...]]:
        answers = iter(ANSWERS)

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            for answer in answers:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(answer)
                await writer.drain()
            writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        pool = ConnectionPool(
            f"http://127.0.0.1:{port}",
            max_connections=1,
            timeout_s=5,
            capture_header=((VERSION_HEADER, parse_version), (LOAD_HEADER, parse_cold)),
        )
        got: list[tuple[Any, ...]] = []
        for _ in ANSWERS:
            finished = asyncio.Event()

            def done(*args: Any, finished: asyncio.Event = finished) -> None:
                got.append(args)
                finished.set()

            pool.submit(build_request("GET", "h", "/"), done)
            await finished.wait()
        pool.close()
        server.close()
        return got

    assert asyncio.run(main()) == [
        (None, None, 3, True),
        (None, None, 3, None),  # no X-Model-Load: a warm answer
        ("http_503", None, None, None),
    ]


def _window(index: int, cold_us: list[int], warm_us: list[int]) -> WindowStats:
    """A window of model 0 as the engine records it through the router."""
    window = WindowStats(index)
    for cold, values in ((1, cold_us), (0, warm_us)):
        for value in values:
            window.latency.record(value)
            window.ok += 1
            window.completed += 1
            counts = window.per_model.setdefault(0, [0, 0, 0])
            counts[0] += 1
            counts[2] += value
            if (0, cold) not in window.per_load:
                from mlops_cli.perf.histogram import Histogram

                window.per_load[(0, cold)] = Histogram()
            window.per_load[(0, cold)].record(value)
    return window


def _step() -> dict[str, Any]:
    # two workers; the second's window travels as a worker's does (to_dict / from_dict)
    first = _window(0, [2_000_000, 1_500_000], [3_000] * 40)
    second = WindowStats.from_dict(_window(0, [1_800_000], [5_000] * 7).to_dict())
    records = [StepRecord([w], w.ok, 1, 1_000_000_000, None) for w in (first, second)]
    options = LoadOptions(requests=50)
    return summarize_step(
        label="concurrency=2",
        level=2,
        options=options,
        records=records,
        last_window=None,
        models=["answer"],
        stream=False,
        tenants=(),
    )


def test_each_models_latency_is_split_between_cold_and_warm_answers() -> None:
    load = _step()["per_model"]["answer"]["load"]
    assert load["cold"]["requests"] == 3 and load["warm"]["requests"] == 47
    assert load["hit_rate"] == round(47 / 50, 6)
    assert 1790 <= load["cold"]["latency_ms"]["p50"] <= 1810  # the median of 1.5, 1.8, 2.0 s
    assert 1990 <= load["cold"]["latency_ms"]["p99"] <= 2000
    assert 2.9 <= load["warm"]["latency_ms"]["p50"] <= 3.1
    assert 4.9 <= load["warm"]["latency_ms"]["p99"] <= 5.1


def test_a_model_with_no_cold_answer_has_no_cold_latency() -> None:
    records = [StepRecord([_window(0, [], [3_000] * 5)], 5, 1, 10**9, None)]
    step = summarize_step(
        label="c",
        level=1,
        options=LoadOptions(requests=5),
        records=records,
        last_window=None,
        models=["answer"],
        stream=False,
    )
    load = step["per_model"]["answer"]["load"]
    assert load["cold"] == {"requests": 0, "latency_ms": None} and load["hit_rate"] == 1.0


def test_loads_and_evictions_are_the_difference_of_the_routers_counters() -> None:
    metrics = RouterMetrics(TenantLabelMode.parse("all"))
    metrics.loaded("answer-v1", 1.5)
    metrics.evicted("answer-v2")
    before = parse_load_counters(metrics.exposition()[0].decode())
    assert before == LoadCounters({"answer-v1": 1.0}, {"answer-v2": 1.0})
    for name in ("answer-v1", "answer-v3", "answer-v3"):
        metrics.loaded(name, 2.0)
    metrics.evicted("answer-v1")
    metrics.cold_request("answer", "3")  # another family: ignored
    after = parse_load_counters(metrics.exposition()[0].decode())
    assert load_difference(before, after) == {
        "loads": {"answer-v1": 1, "answer-v3": 2},
        "evictions": {"answer-v1": 1},
        "total_loads": 3,
        "total_evictions": 1,
    }


def test_the_report_validates_and_says_it_in_one_line_per_model() -> None:
    from datetime import UTC, datetime

    step = _step()
    step["model_loads"] = {
        "loads": {"answer-v1": 2, "answer-v3": 1},
        "evictions": {"answer-v1": 1},
        "total_loads": 3,
        "total_evictions": 1,
    }
    spec = TargetSpec(
        protocol="router",
        url="router://127.0.0.1:1",
        models=("answer",),
        tenants=TenantTraffic(("t1",)),
    )
    document = build_document(spec, LoadOptions(requests=50), [step], [], None, datetime.now(UTC))
    validate_report(document)
    lines = cold_loads(document)
    assert lines[0].startswith("concurrency=2: answer 3 cold of 50 (hit rate 94.0%), cold p50 18")
    assert "warm p50 3.0" in lines[0]
    assert lines[1] == "concurrency=2: loaded answer-v1 2, answer-v3 1; evicted answer-v1 1"
    assert f"- {lines[0]}" in to_markdown(document)
