"""`mlops placement apply` on a fleet of three real tritonservers sharing one repository: replicas
on different servers, loads before unloads, the plan stored; killing a server keeps every
replicated model answering through the router; a server that refuses a load stops the plan with
the fleet still serving and the lock released."""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli import error_line, run
from tests.integration.test_deploy import register_answer
from tests.servers.router import RouterClient, RouterProcess, answer_body, answer_of

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MEMORY = {"a": 200, "b": 200, "c": 200}  # room for three 64 MB models each


@pytest.fixture
def fleet3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, list[Any]]]:
    from mlops_cli.config import resolve_settings
    from mlops_cli.local import LocalTriton
    from mlops_cli.workspace import Workspace

    monkeypatch.setenv("MLOPS_REGISTRY", f"sqlite:///{tmp_path / 'registry.db'}")
    monkeypatch.setenv("MLOPS_STORE", f"file://{tmp_path / 'store'}")
    repository = tmp_path / "shared-repository"
    repository.mkdir()
    servers: list[Any] = []
    try:
        for name in MEMORY:
            root = tmp_path / f"server-{name}"
            settings = resolve_settings(cwd=tmp_path, environ={}, set_pairs=[f"workspace={root}"])
            server = LocalTriton(Workspace(root), settings.local, model_repository=repository)
            server.up()
            servers.append(server)
        entries = [
            {"name": name, "url": server.read_state().http_url, "memory_mb": memory}
            for (name, memory), server in zip(MEMORY.items(), servers, strict=True)
        ]
        fleet_file = tmp_path / "fleet.yaml"
        fleet_file.write_text(
            json.dumps({"name": "trio", "repository": "shared-repository", "servers": entries})
        )
        yield fleet_file, servers
    finally:
        for server in servers:
            server.down()


def _ready(server: Any) -> set[str]:
    from tests.conftest import triton_request

    index = triton_request(server.read_state().http_url, "/v2/repository/index", {}) or []
    return {e["name"] for e in index if e.get("state") == "READY"}  # type: ignore[union-attr]


def test_apply_places_replicas_apart_and_a_killed_server_loses_no_request(
    fleet3: tuple[Path, list[Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet_file, servers = fleet3
    for answer in (1, 2, 3):
        register_answer(capsys, tmp_path, answer)
    refs = ["answer@1", "answer@2", "answer@3"]
    replicas = ["--replicas", "answer=2"]
    dry = run(
        capsys, "placement", "apply", "--fleet", str(fleet_file), *refs, *replicas, "--dry-run"
    )
    assert dry["dry_run"] and {s["op"] for s in dry["steps"]} == {"load"}
    assert all(_ready(server) == set() for server in servers)  # the dry run changed nothing

    applied = run(capsys, "placement", "apply", "--fleet", str(fleet_file), *refs, *replicas)
    placed = applied["assignments"]
    assert all(len(set(placed[ref])) == 2 for ref in refs)  # two replicas, on two servers
    by_server = {name: _ready(server) for name, server in zip(MEMORY, servers, strict=True)}
    for ref in refs:
        name = ref.replace("@", "-v")
        assert {s for s, ready in by_server.items() if name in ready} == set(placed[ref])
    assert applied["placement_revision"] >= 1
    again = run(capsys, "placement", "apply", "--fleet", str(fleet_file), *refs, *replicas)
    assert again["steps"] == []  # applied already: nothing moves

    for version in (1, 2, 3):
        run(capsys, "route", "set", f"t{version}", "answer", str(version))
    registry = f"sqlite:///{tmp_path / 'registry.db'}"
    statuses: list[tuple[int, float, int]] = []
    with RouterProcess(registry, "--trust-tenant-header", "--refresh", "0.1") as router:

        def load(seed: int) -> None:
            client = RouterClient(router.url)
            for number in range(300):
                version = (number + seed) % 3 + 1
                try:
                    status, _, data = client.infer(
                        "answer", answer_body(), {"X-Tenant-Id": f"t{version}"}
                    )
                    statuses.append((status, answer_of(data) if status == 200 else -1, version))
                except OSError:
                    statuses.append((0, -1, version))

        threads = [threading.Thread(target=load, args=(seed,)) for seed in range(3)]
        for thread in threads:
            thread.start()
        while len(statuses) < 200:
            threading.Event().wait(0.01)
        victim = servers[0].read_state()
        os.kill(victim.pid, signal.SIGKILL)
        for thread in threads:
            thread.join(timeout=120)
    assert len(statuses) == 900
    assert [s for s in statuses if s[0] != 200 or s[1] != s[2]] == []


def test_a_server_that_refuses_a_load_stops_the_plan_and_the_fleet_keeps_serving(
    fleet3: tuple[Path, list[Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlops_cli.registry import open_registry

    fleet_file, servers = fleet3
    register_answer(capsys, tmp_path, 1)
    run(capsys, "placement", "apply", "--fleet", str(fleet_file), "answer@1")
    before = {name: _ready(server) for name, server in zip(MEMORY, servers, strict=True)}
    assert sum("answer-v1" in ready for ready in before.values()) == 1
    # break the repository entry: every further load of answer-v1 fails on every server
    entry = tmp_path / "shared-repository" / "answer-v1"
    model_py = next(entry.rglob("model.py"))
    model_py.write_text("raise RuntimeError('refused on purpose')\n")
    line = error_line(
        capsys,
        "placement",
        "apply",
        "--fleet",
        str(fleet_file),
        "answer@1",
        "--replicas",
        "answer=2",
        code=1,
    )
    assert "did not load answer-v1" in line and "nothing was unloaded" in line
    after = {name: _ready(server) for name, server in zip(MEMORY, servers, strict=True)}
    assert after == before  # still served where it was
    registry = open_registry(f"sqlite:///{tmp_path / 'registry.db'}")
    assert (
        registry.get_lease("target:triton:trio") is None
        or not registry.get_lease("target:triton:trio").holder
    )  # released
