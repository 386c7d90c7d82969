"""examples/multi-tenant/run.sh with 12 tenants: per-tenant versions of one stable name on a
dynamic fleet server (the session's local Triton), a route each and a canary, served through the
router, under a Zipf perftest over the tenants. Every request answered by its tenant's version."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RUN = REPO_ROOT / "examples" / "multi-tenant" / "run.sh"
COUNT = 12


def test_many_tenants_through_the_router(local_triton: Any, tmp_path: Path) -> None:
    environ = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "MLOPS_WORKSPACE": str(local_triton.workspace.root),
        "MLOPS_REGISTRY": f"sqlite:///{tmp_path / 'registry.db'}",
        "MLOPS_STORE": f"file://{tmp_path / 'store'}",
        "WORK": str(tmp_path / "work"),
        "REQUESTS": "300",
    }
    done = subprocess.run(
        ["bash", str(RUN), str(COUNT)],
        env=environ,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "work" / "perf" / "report.json").read_text())
    [step] = report["steps"]
    tenants = step["per_tenant"]
    assert sum(t["requests"] for t in tenants.values()) == 300
    assert all(t["errors"] == 0 for t in tenants.values())
    # Zipf: the first tenant is the hottest; each tenant is served by its own version (t0001 is
    # also the canary's: 10% of its requests go to the newest version).
    hottest = max(tenants, key=lambda t: tenants[t]["requests"])
    assert hottest == "t0001"
    for tenant, counts in tenants.items():
        own = f"tenant-head@{int(tenant[1:])}"
        allowed = {own, f"tenant-head@{COUNT}"} if tenant == "t0001" else {own}
        assert set(counts["versions"]) <= allowed, (tenant, counts)
    # The shared extractor is stored once: 12 heads, one extractor, the shared code and spec.
    blobs = list((tmp_path / "store" / "blobs" / "sha256").rglob("*"))
    assert len([b for b in blobs if b.is_file()]) == COUNT + 3
