"""perftest statistics: the log-linear histogram, window merging and the stability rule."""

from __future__ import annotations

import math
import random

import pytest

from mlops_cli.perf.histogram import BUCKETS, Histogram, bucket_high, bucket_of
from mlops_cli.perf.windows import StabilityRule, WindowStats

pytestmark = pytest.mark.unit


def exact(values: list[int], p: float) -> int:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


def test_percentiles_within_the_bucket_precision_of_the_exact_ones() -> None:
    rng = random.Random(7)
    values = [int(rng.lognormvariate(8, 1.5)) for _ in range(20_000)]  # ~3 ms, long tail
    hist = Histogram()
    for value in values:
        hist.record(value)
    for p in (50, 90, 95, 99, 99.9):
        want = exact(values, p)
        got = hist.percentile(p)
        assert want <= got <= want * 1.008 + 1, (p, want, got)
    assert hist.percentile(100) == hist.max == max(values)
    assert hist.min == min(values)
    assert hist.count == len(values)


def test_every_value_lands_in_a_bucket_whose_top_is_close_above_it() -> None:
    for value in [0, 1, 255, 256, 257, 511, 512, 10**6, 10**9, 2**40 - 1]:
        index = bucket_of(value)
        assert 0 <= index < BUCKETS
        assert value <= bucket_high(index) <= value * 1.008 + 1


def test_histograms_merge_like_one_histogram_and_survive_json() -> None:
    rng = random.Random(1)
    a, b, both = Histogram(), Histogram(), Histogram()
    for n in range(5000):
        value = rng.randint(0, 5_000_000)
        (a if n % 3 else b).record(value)
        both.record(value)
    a.merge(Histogram.from_dict(b.to_dict()))
    assert a.counts == both.counts
    assert (a.count, a.min, a.max, a.total) == (both.count, both.min, both.max, both.total)
    assert a.percentile(99) == both.percentile(99)


def test_window_merge_adds_counts_errors_and_stream_histograms() -> None:
    one, two = WindowStats(0), WindowStats(0)
    one.ok, one.errors = 3, {"timeout": 1}
    two.ok, two.errors = 2, {"timeout": 2, "http_503": 1}
    two.ttft = Histogram()
    two.ttft.record(1500)
    one.merge(WindowStats.from_dict(two.to_dict()))
    assert one.ok == 5
    assert one.errors == {"timeout": 3, "http_503": 1}
    assert one.ttft is not None and one.ttft.count == 1


def test_stability_needs_the_last_windows_close_in_throughput_and_p99() -> None:
    rule = StabilityRule(windows=3, tolerance=0.10)
    assert not rule.holds([100, 100], [5, 5])  # too few windows
    assert rule.holds([50, 100, 101, 99], [9, 5.0, 5.2, 5.1])  # only the last three count
    assert not rule.holds([100, 130, 100], [5, 5, 5])  # throughput moved 30%
    assert not rule.holds([100, 100, 100], [5, 9, 5])  # p99 moved
