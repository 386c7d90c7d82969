"""Measured metrics of a version (memory, latency, GPU memory) on every registry backend."""

from __future__ import annotations

import math

import pytest

from mlops_cli.errors import UsageError
from mlops_cli.registry import Registry
from tests.conformance.conftest import register, snapshot


def test_gpu_memory_is_stored_and_none_leaves_each_metric_as_it_is(registry: Registry) -> None:
    [version] = register(registry, "m", "p1")
    registry.set_version_metrics("m", version, memory_mb=100, latency_ms=2, gpu_memory_mb=900)
    registry.set_version_metrics("m", version, memory_mb=None, latency_ms=3)
    stored = registry.get_version("m", version)
    assert (stored.memory_mb, stored.latency_ms, stored.gpu_memory_mb) == (100, 3, 900)
    assert stored.to_dict()["gpu_memory_mb"] == 900


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf])
def test_a_gpu_memory_that_is_not_a_size_is_refused_and_stores_nothing(
    registry: Registry, bad: float
) -> None:
    [version] = register(registry, "m", "p1")
    before = snapshot(registry)
    with pytest.raises(UsageError):
        registry.set_version_metrics("m", version, memory_mb=1, latency_ms=1, gpu_memory_mb=bad)
    assert snapshot(registry) == before
