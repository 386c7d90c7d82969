"""The deploy engine's rules (which versions retire, when the alias moves, what a failure undoes),
with an in-memory target standing in for the servers and a real SQLite registry."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mlops_cli.deploy.base import (
    Action,
    Capabilities,
    Chunk,
    DeploymentRecord,
    DeploymentStatus,
    DeployTarget,
    Desired,
    InvokeRequest,
    Plan,
)
from mlops_cli.deploy.engine import deploy, parse_model_ref, resolve_version, undeploy
from mlops_cli.errors import ConflictError, NotFoundError, UsageError
from mlops_cli.packages.manifest import PackageManifest
from mlops_cli.registry import open_registry
from mlops_cli.registry.base import NewVersion, Registry
from mlops_cli.spec.modelspec import ModelSpec, TensorSpec

pytestmark = pytest.mark.unit


@dataclass(frozen=True)
class MemoryDetail:
    where: str

    def to_dict(self) -> dict[str, object]:
        return {"where": self.where}


class MemoryTarget(DeployTarget[Plan, MemoryDetail]):
    kind = "memory"
    id = "memory"
    capabilities = Capabilities(streaming=True, multi_model=True, explicit_load=True, gpu=False)

    def __init__(self) -> None:
        self.loaded: set[int] = set()
        self.log: list[str] = []
        self.fail_apply = False

    @classmethod
    def parse_detail(cls, record: DeploymentRecord) -> MemoryDetail:
        return MemoryDetail(str(record.detail.get("where", "")))

    def plan(self, desired: Desired, records: Sequence[DeploymentRecord]) -> Plan:
        plan = Plan(self.id, desired.model, desired.version)
        op = "keep" if desired.version in self.loaded else "load"
        plan.actions.append(Action(op, desired.model, desired.version, "mem"))
        return plan

    def apply(self, plan: Plan, **_: Any) -> MemoryDetail:
        if self.fail_apply:
            raise RuntimeError("load failed")
        assert plan.version is not None
        self.loaded.add(plan.version)
        self.log.append(f"load {plan.version}")
        return MemoryDetail("mem")

    def retire(self, model: str, version: int, detail: MemoryDetail, **_: Any) -> None:
        self.loaded.discard(version)
        self.log.append(f"unload {version}")

    def status(self, records: Sequence[DeploymentRecord]) -> list[DeploymentStatus]:
        return []

    def _invoke(self, record: DeploymentRecord, request: InvokeRequest) -> Iterator[Chunk]:
        return iter(())


SPEC = ModelSpec(
    name="m",
    runtime="triton-python",
    entrypoint="model.py",
    inputs=(TensorSpec("x", "FP32", (1,)),),
    outputs=(TensorSpec("y", "FP32", (1,)),),
)


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    backend = open_registry(f"sqlite:///{tmp_path / 'r.db'}")
    backend.init()
    for i in range(3):
        backend.register_version("m", NewVersion(f"{i:064x}", f"file:///p/{i}"))
    return backend


def desired(version: int) -> Desired:
    manifest = PackageManifest(name="m", files=())
    return Desired("m", version, SPEC, manifest, None, "", "cpu", 64.0)  # type: ignore[arg-type]


def roll(registry: Registry, target: MemoryTarget, version: int, **options: Any) -> Any:
    return deploy(
        registry, target, desired(version), alias="production", drain_seconds=0, **options
    )


def test_cut_over_moves_the_alias_and_retires_the_unused_version(registry: Registry) -> None:
    target = MemoryTarget()
    roll(registry, target, 1)
    result = roll(registry, target, 2)
    assert target.log == ["load 1", "load 2", "unload 1"]
    assert registry.get_alias("m", "production").version == 2
    assert result.previous_version == 1 and result.retired == [1]
    assert [d.version for d in registry.list_deployments("m")] == [2]
    again = roll(registry, target, 2)
    assert not again.applied and target.log[-1] == "unload 1"  # nothing more happened


@pytest.mark.parametrize(
    "pin",
    [
        lambda r: r.set_route("acme", "m", version=1),
        lambda r: r.set_alias("m", "staging", 1),
        lambda r: (
            r.set_alias("m", "staging", 3),
            r.set_route("acme", "m", alias="staging", canary_version=1, canary_percent=5),
        ),
    ],
    ids=["route", "other-alias", "canary"],
)
def test_a_version_something_still_uses_keeps_serving(registry: Registry, pin: Any) -> None:
    target = MemoryTarget()
    roll(registry, target, 1)
    pin(registry)
    result = roll(registry, target, 2)
    assert result.retired == [] and target.loaded == {1, 2}


def test_dry_run_and_no_switch(registry: Registry) -> None:
    target = MemoryTarget()
    roll(registry, target, 1)
    plan = roll(registry, target, 2, dry_run=True)
    assert [a.op for a in plan.plan.actions] == ["load", "switch", "unload"]
    assert not plan.applied and target.loaded == {1}
    assert registry.get_alias("m", "production").version == 1
    kept = deploy(registry, target, desired(2), alias=None, drain_seconds=0)
    assert kept.retired == [] and target.loaded == {1, 2}
    assert registry.get_alias("m", "production").version == 1
    registry.delete_alias("m", "production")  # nothing points at 1 or 2 any more
    beside = deploy(registry, target, desired(3), alias=None, drain_seconds=0)
    assert beside.retired == [] and target.loaded == {1, 2, 3}  # side by side retires nothing


def test_a_lost_alias_race_undoes_the_load(registry: Registry, monkeypatch: Any) -> None:
    target = MemoryTarget()
    roll(registry, target, 1)
    original = registry.set_alias

    def racing(*args: Any, **kwargs: Any) -> Any:
        original("m", "production", 3)  # someone else moved it first
        return original(*args, **kwargs)

    monkeypatch.setattr(registry, "set_alias", racing)
    with pytest.raises(ConflictError):
        roll(registry, target, 2)
    assert target.loaded == {1} and target.log[-1] == "unload 2"
    assert [d.version for d in registry.list_deployments("m")] == [1]


def test_a_failed_apply_changes_nothing(registry: Registry) -> None:
    target = MemoryTarget()
    roll(registry, target, 1)
    target.fail_apply = True
    with pytest.raises(RuntimeError):
        roll(registry, target, 2)
    assert registry.get_alias("m", "production").version == 1
    assert [d.version for d in registry.list_deployments("m")] == [1]


def test_undeploy_and_references(registry: Registry) -> None:
    assert resolve_version(registry, "m").version == 3  # no default alias yet: the latest
    target = MemoryTarget()
    roll(registry, target, 1)
    with pytest.raises(NotFoundError, match="not deployed"):
        undeploy(registry, target, "m", 2)
    assert [a.op for a in undeploy(registry, target, "m", None, dry_run=True).actions] == ["unload"]
    undeploy(registry, target, "m", None)
    assert target.loaded == set() and registry.list_deployments("m") == []
    assert parse_model_ref("m@3") == ("m", "3") and parse_model_ref("m") == ("m", None)
    with pytest.raises(UsageError):
        parse_model_ref("m@")
    registry.set_alias("m", "production", 2)
    assert resolve_version(registry, "m").version == 2
    assert resolve_version(registry, "m@production").version == 2
