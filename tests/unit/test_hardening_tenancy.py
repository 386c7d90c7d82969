"""A deploy never drains for less than a Router's cache TTL (issue 12, item 22): a client resolving
through the library's Router during a cut-over with ``--drain 0`` never gets a version that has
already been unloaded."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from mlops_cli.deploy.engine import deploy, effective_drain
from mlops_cli.registry import open_registry
from mlops_cli.registry.base import NewVersion, Registry
from mlops_cli.registry.routing import ROUTER_CACHE_TTL_S, Router
from tests.unit.test_deploy_engine import MemoryTarget, desired

pytestmark = pytest.mark.unit


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    backend = open_registry(f"sqlite:///{tmp_path / 'r.db'}")
    backend.init()
    for i in range(2):
        backend.register_version("m", NewVersion(f"{i:064x}", f"file:///p/{i}"))
    return backend


class LockedTarget(MemoryTarget):
    """The in-memory target, safe to read from another thread while it loads and unloads."""

    def __init__(self) -> None:
        super().__init__()
        self.guard = threading.Lock()

    def apply(self, plan: Any, **options: Any) -> dict[str, Any]:
        with self.guard:
            return super().apply(plan, **options)

    def retire(self, *args: Any, **options: Any) -> None:
        with self.guard:
            super().retire(*args, **options)

    def serves(self, version: int) -> bool:
        with self.guard:
            return version in self.loaded


def test_the_drain_is_never_shorter_than_the_router_cache_ttl() -> None:
    assert effective_drain(0) == ROUTER_CACHE_TTL_S == Router.__init__.__kwdefaults__["ttl"]
    assert effective_drain(0.5) == ROUTER_CACHE_TTL_S
    assert effective_drain(30) == 30


def test_plan_and_result_say_the_effective_drain(registry: Registry) -> None:
    target = LockedTarget()
    deploy(registry, target, desired(1), alias="production", drain_seconds=0)

    planned = deploy(
        registry, target, desired(2), alias="production", drain_seconds=0, dry_run=True
    )

    [unload] = [a for a in planned.plan.actions if a.op == "unload"]
    assert f"(at most {ROUTER_CACHE_TTL_S:g}s)" in unload.describe()
    assert planned.to_dict()["drain_seconds"] == ROUTER_CACHE_TTL_S


def test_a_router_client_loses_no_request_during_a_cut_over_with_drain_0(
    registry: Registry,
) -> None:
    target = LockedTarget()
    deploy(registry, target, desired(1), alias="production", drain_seconds=0)
    router = Router(registry)  # the library's client-side cache, default TTL
    assert router.resolve("acme", "m").version == 1  # cached from now on

    failures: list[int] = []
    answered = 0
    cut_over = threading.Thread(
        target=deploy,
        args=(registry, target, desired(2)),
        kwargs={"alias": "production", "drain_seconds": 0},
    )
    time.sleep(0.3)  # the cached answer is older than the switch, as in a running client
    cut_over.start()
    deadline = time.monotonic() + 60  # bounds the loop, not a figure under test
    while time.monotonic() < deadline:
        version = router.resolve("acme", "m").version
        if not target.serves(version):
            failures.append(version)
        answered += 1
        if version == 2 and not cut_over.is_alive():
            break
        time.sleep(0.005)
    cut_over.join(timeout=60)

    assert registry.get_alias("m", "production").version == 2
    assert target.log == ["load 1", "load 2", "unload 1"]
    assert answered > 0 and failures == []
