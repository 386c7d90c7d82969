"""What `mlops profile` measures for placement: GPU memory from Triton's metrics page, and a
registry made before `gpu_memory_mb` existed gets the column when opened."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from mlops_cli.deploy.profile import parse_gpu_memory_used
from mlops_cli.registry import open_registry
from tests.conformance.conftest import register

pytestmark = pytest.mark.unit

PAGE = """# HELP nv_gpu_memory_used_bytes GPU used memory, in bytes
# TYPE nv_gpu_memory_used_bytes gauge
nv_gpu_memory_used_bytes{gpu_uuid="GPU-1"} 1048576
nv_gpu_memory_used_bytes{gpu_uuid="GPU-2"} 2097152
nv_gpu_memory_total_bytes{gpu_uuid="GPU-1"} 9e+10
nv_cpu_memory_used_bytes 123
"""


def test_gpu_memory_is_the_sum_over_the_gpus_and_none_without_any() -> None:
    assert parse_gpu_memory_used(PAGE) == 3 * 2**20
    assert parse_gpu_memory_used("nv_cpu_memory_used_bytes 123\n") is None
    assert parse_gpu_memory_used('nv_gpu_memory_used_bytes{gpu_uuid="x"} nope\n') is None


def test_a_registry_from_before_gpu_memory_gets_the_column(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    registry = open_registry(f"sqlite:///{path}")
    registry.init()
    [version] = register(registry, "m", "p1")
    with sqlite3.connect(path) as db:  # as an earlier release left it
        db.execute("ALTER TABLE versions DROP COLUMN gpu_memory_mb")
    reopened = open_registry(f"sqlite:///{path}")
    assert reopened.get_version("m", version).gpu_memory_mb is None
    reopened.set_version_metrics("m", version, memory_mb=10, latency_ms=1, gpu_memory_mb=512)
    stored = reopened.get_version("m", version)
    assert (stored.memory_mb, stored.latency_ms, stored.gpu_memory_mb) == (10, 1, 512)
    reopened.set_version_metrics("m", version, memory_mb=12, latency_ms=None)
    assert reopened.get_version("m", version).gpu_memory_mb == 512  # None leaves it as it is
