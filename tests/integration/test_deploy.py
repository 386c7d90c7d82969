"""`mlops deploy / undeploy / status / invoke / profile` on a REAL tritonserver (the local target,
and a fleet of real servers sharing a repository)."""

from __future__ import annotations

import http.client
import json
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlops_cli.cli.main import main
from tests.cli import error_line, run
from tests.conftest import FIXTURES, triton_request

pytestmark = pytest.mark.integration


@pytest.fixture
def env(local_triton: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The session's local Triton as this test's local target; a registry and store of its own."""
    monkeypatch.setenv("MLOPS_WORKSPACE", str(local_triton.workspace.root))
    monkeypatch.setenv("MLOPS_REGISTRY", f"sqlite:///{tmp_path / 'registry.db'}")
    monkeypatch.setenv("MLOPS_STORE", f"file://{tmp_path / 'store'}")
    return local_triton


def register_answer(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, answer: int, *, alias: str | None = None
) -> int:
    folder = tmp_path / f"answer-{answer}"
    if not folder.exists():
        shutil.copytree(FIXTURES / "models" / "answer", folder)
        (folder / "weights" / "answer.txt").write_text(f"{answer}\n")
    args = ["register", str(folder)] + (["--alias", alias] if alias else [])
    return int(run(capsys, *args)["version"])


def ready_models(server: Any) -> set[str]:
    url = server.read_state().http_url
    index = triton_request(url, "/v2/repository/index", {}) or []
    return {e["name"] for e in index if e.get("state") == "READY"}  # type: ignore[union-attr]


def infer_answer(url: str, name: str) -> float:
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [0.0]}]}
    reply = triton_request(url, f"/v2/models/{name}/infer", body)
    return float(reply["outputs"][0]["data"][0])  # type: ignore[index]


def test_deploy_is_idempotent_and_undeploy_redeploy(
    env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    register_answer(capsys, tmp_path, 1)
    plan = run(capsys, "deploy", "answer@1", "--dry-run")
    assert [a["op"] for a in plan["actions"]] == ["load", "switch"]
    assert ready_models(env) == set()  # the dry run changed nothing
    assert run(capsys, "status")["deployments"] == []

    first = run(capsys, "deploy", "answer@1")
    assert first["applied"] and ready_models(env) == {"answer-v1"}
    second = run(capsys, "deploy", "answer@1")
    assert second["changes"] is False and second["applied"] is False
    [row] = run(capsys, "status")["deployments"]
    assert (row["model"], row["version"], row["state"], row["target"]) == (
        "answer",
        1,
        "READY",
        "local",
    )

    out = run(capsys, "invoke", "answer", "--input", '{"x": [5, 6]}')
    assert out["outputs"]["y"] == [1.0, 1.0] and out["source"] == "alias"

    run(capsys, "undeploy", "answer")
    assert ready_models(env) == set()
    assert run(capsys, "status")["deployments"] == []
    assert not (Path(env.read_state().model_repository) / "answer-v1").exists()
    run(capsys, "deploy", "answer@1")
    assert ready_models(env) == {"answer-v1"}


def test_config_pbtxt_written_for_the_server_parses_back(
    env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as pb

    register_answer(capsys, tmp_path, 1)
    run(capsys, "deploy", "answer")
    text = (Path(env.read_state().model_repository) / "answer-v1" / "config.pbtxt").read_text()
    config = text_format.Parse(text, pb.ModelConfig())
    assert config.name == "answer-v1" and config.backend == "python"
    assert [g.kind for g in config.instance_group] == [pb.ModelInstanceGroup.KIND_CPU]
    assert config.parameters["mlops.memory_mb"].string_value == "64"
    served = triton_request(env.read_state().http_url, "/v2/models/answer-v1/config")
    assert served["instance_group"][0]["kind"] == "KIND_CPU"  # type: ignore[index]


def test_cut_over_under_load_fails_no_request(
    env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A fixed-rate stream of requests, each routed like the router would (resolve, then call
    that version), across the v1 -> v2 switch: none fails, and after the switch all get v2."""
    from mlops_cli.registry import open_registry
    from mlops_cli.registry.routing import resolve

    register_answer(capsys, tmp_path, 1, alias="production")
    run(capsys, "deploy", "answer@1")
    register_answer(capsys, tmp_path, 2)
    registry = open_registry(f"sqlite:///{tmp_path / 'registry.db'}")
    port = env.read_state().http_port
    results: list[tuple[float, int, float | None]] = []  # (sent, resolved version, answer)
    stop = threading.Event()

    def load() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        body = json.dumps(
            {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [0.0]}]}
        )
        interval, start = 0.01, time.monotonic()  # 100 requests/s
        for i in range(2000):  # bounded in count (and in time by `stop`)
            due = start + i * interval
            time.sleep(max(0.0, due - time.monotonic()))
            if stop.is_set():
                break
            sent = time.monotonic()
            version = resolve(registry, "acme", "answer").version
            answer: float | None = None
            try:
                connection.request("POST", f"/v2/models/answer-v{version}/infer", body)
                response = connection.getresponse()
                payload = response.read()
                if response.status == 200:
                    answer = float(json.loads(payload)["outputs"][0]["data"][0])
            except (OSError, http.client.HTTPException):
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            results.append((sent, version, answer))
        connection.close()

    worker = threading.Thread(target=load)
    worker.start()
    try:
        time.sleep(0.5)
        result = run(capsys, "deploy", "answer@2", "--drain", "1")
        switched = time.monotonic()
        time.sleep(0.5)
    finally:
        stop.set()
        worker.join(30)
    assert result["retired"] == [1] and ready_models(env) == {"answer-v2"}
    failed = [r for r in results if r[2] is None]
    assert not failed, f"{len(failed)} of {len(results)} requests failed"
    assert all(answer == version for _, version, answer in results)
    assert {1, 2} <= {version for _, version, _ in results}
    assert all(answer == 2 for sent, _, answer in results if sent > switched)
    assert len(results) > 150


def test_a_failed_v2_load_leaves_v1_serving(
    env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    register_answer(capsys, tmp_path, 1, alias="production")
    run(capsys, "deploy", "answer@1")
    run(capsys, "register", str(FIXTURES / "models" / "broken"), "--model", "answer")
    before = run(capsys, "models", "show", "answer")
    line = error_line(capsys, "deploy", "answer@2", code=1)
    assert "could not load answer-v2" in line and "broken on purpose" in line
    assert run(capsys, "models", "show", "answer") == before  # alias still at 1
    assert ready_models(env) == {"answer-v1"}
    assert infer_answer(env.read_state().http_url, "answer-v1") == 1.0
    index = triton_request(env.read_state().http_url, "/v2/repository/index", {})
    assert "answer-v2" not in {e["name"] for e in index if e.get("state") != "UNAVAILABLE"}  # type: ignore[union-attr]
    assert not (Path(env.read_state().model_repository) / "answer-v2").exists()
    assert [d["version"] for d in run(capsys, "status")["deployments"]] == [1]


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_stream_arrives_in_order_and_before_the_end(
    env: Any, capsys: pytest.CaptureFixture[str], protocol: str
) -> None:
    run(capsys, "register", str(FIXTURES / "models" / "ticker"))
    run(capsys, "deploy", "ticker")
    out = run(
        capsys, "invoke", "ticker", "--stream", "--protocol", protocol, "--input", '{"count": 5}'
    )
    tokens = [chunk["outputs"]["token"] for chunk in out["chunks"]]
    tokens = [t[0] if isinstance(t, list) else t for t in tokens]
    assert [int(t.split("@")[0]) for t in tokens] == [0, 1, 2, 3, 4]
    # the first chunk was received (ms after sending) before the last one was produced
    produced_last = float(tokens[-1].split("@")[1])
    first_received = out["chunks"][0]["ms"]
    last_received = out["chunks"][-1]["ms"]
    assert last_received - first_received >= 150  # 4 gaps of 50 ms, seen as they happened
    assert produced_last - float(tokens[0].split("@")[1]) >= 0.15
    line = error_line(capsys, "invoke", "ticker", "--input", '{"count": 1}', code=2)
    assert "streams" in line and "--stream" in line


def test_tenant_routes_pick_the_version_invoked(
    env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    register_answer(capsys, tmp_path, 1, alias="production")
    run(capsys, "deploy", "answer@1")
    register_answer(capsys, tmp_path, 2)
    run(capsys, "route", "set", "acme", "answer", "1")  # acme stays pinned to v1
    result = run(capsys, "deploy", "answer@2", "--drain", "0")
    assert result["retired"] == []  # v1 is still routed to: it keeps serving
    assert ready_models(env) == {"answer-v1", "answer-v2"}
    pinned = run(capsys, "invoke", "answer", "--tenant", "acme", "--input", '{"x": [0]}')
    other = run(capsys, "invoke", "answer", "--tenant", "globex", "--input", '{"x": [0]}')
    assert (pinned["version"], pinned["outputs"]["y"]) == (1, [1.0])
    assert (other["version"], other["outputs"]["y"]) == (2, [2.0])


def test_profile_measures_and_stores_memory_and_latency(
    env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    register_answer(capsys, tmp_path, 1)
    result = run(capsys, "profile", "answer@1", "--requests", "20")
    assert result["memory_mb"] > 5 and 0 < result["latency_ms"] < 1000
    assert result["loaded_for_profile"] is True
    assert ready_models(env) == set()  # loaded for the measurement only
    [version] = run(capsys, "models", "versions", "answer")
    assert version["memory_mb"] == result["memory_mb"]
    assert version["latency_ms"] == result["latency_ms"]


# -- bad input ---------------------------------------------------------------------------------


def test_bad_input_changes_nothing(
    env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert "model ghost" in error_line(capsys, "deploy", "ghost@1", code=1)
    register_answer(capsys, tmp_path, 1, alias="production")
    assert "version 7" in error_line(capsys, "deploy", "answer@7", code=1)
    assert "nope" in error_line(capsys, "deploy", "answer@nope", code=1)
    assert "--input" in error_line(capsys, "invoke", "answer", "--input", "{oops", code=2)
    assert "not deployed" in error_line(capsys, "invoke", "answer", "--input", '{"x": [1]}', code=1)
    run(capsys, "deploy", "answer")
    line = error_line(capsys, "invoke", "answer", "--input", '{"q": [1]}', code=2)
    assert "'q' is not an input" in line
    assert "is not deployed" in error_line(capsys, "undeploy", "answer@5", code=1)
    assert "--drain" in error_line(capsys, "deploy", "answer", "--drain", "-1", code=2)
    assert "--timeout" in error_line(
        capsys, "invoke", "answer", "--input", '{"x": [1]}', "--timeout", "0", code=2
    )
    assert "invalid alias" in error_line(capsys, "deploy", "answer", "--alias", "BAD NAME", code=2)
    assert "cannot read missing.json" in error_line(
        capsys, "invoke", "answer", "--input", "@missing.json", code=2
    )
    assert ready_models(env) == {"answer-v1"}
    assert [d["version"] for d in run(capsys, "status")["deployments"]] == [1]


def test_gpu_model_refused_on_cpu_target_unless_allowed(
    env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "gpu"
    shutil.copytree(FIXTURES / "models" / "answer", folder)
    spec = folder / "mlops.yaml"
    spec.write_text(spec.read_text().replace("memory_mb: 64", "memory_mb: 64\n  gpu: {count: 1}"))
    run(capsys, "register", str(folder))
    line = error_line(capsys, "deploy", "answer", code=2)
    assert "asks for a GPU" in line and "--allow-cpu" in line
    assert ready_models(env) == set() and run(capsys, "status")["deployments"] == []
    run(capsys, "deploy", "answer", "--allow-cpu")
    assert ready_models(env) == {"answer-v1"}


# -- a fleet of real servers -------------------------------------------------------------------


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, list[Any]]]:
    """Two more tritonservers sharing one repository folder, and a fleet file naming them with
    room for one 64 MB model on the first and plenty on the second."""
    from mlops_cli.config import resolve_settings
    from mlops_cli.local import LocalTriton
    from mlops_cli.workspace import Workspace

    monkeypatch.setenv("MLOPS_REGISTRY", f"sqlite:///{tmp_path / 'registry.db'}")
    monkeypatch.setenv("MLOPS_STORE", f"file://{tmp_path / 'store'}")
    repository = tmp_path / "shared-repository"
    repository.mkdir()
    servers = []
    try:
        for name in ("a", "b"):
            root = tmp_path / f"server-{name}"
            settings = resolve_settings(cwd=tmp_path, environ={}, set_pairs=[f"workspace={root}"])
            server = LocalTriton(Workspace(root), settings.local, model_repository=repository)
            server.up()
            servers.append(server)
        entries = [
            {
                "name": name,
                "url": server.read_state().http_url,
                "grpc_url": f"127.0.0.1:{server.read_state().grpc_port}",
                "memory_mb": memory,
            }
            for name, server, memory in zip(("a", "b"), servers, (100, 4000), strict=True)
        ]
        fleet_file = tmp_path / "fleet.yaml"
        fleet_file.write_text(
            json.dumps({"name": "cpu-fleet", "repository": "shared-repository", "servers": entries})
        )
        yield fleet_file, servers
    finally:
        for server in servers:
            server.down()


@pytest.mark.slow
def test_fleet_places_first_fit_by_memory(
    fleet: tuple[Path, list[Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet_file, (a, b) = fleet
    target = ["--target", "triton", "--fleet", str(fleet_file)]
    register_answer(capsys, tmp_path, 1)
    run(capsys, "register", str(FIXTURES / "models" / "tiny"))
    first = run(capsys, "deploy", "answer", *target)
    assert first["detail"]["where"] == "a"
    second = run(capsys, "deploy", "tiny", *target)
    assert second["detail"]["where"] == "b"  # a has 36 MB left
    assert ready_models(a) == {"answer-v1"} and ready_models(b) == {"tiny-v1"}
    rows = run(capsys, "status", "--fleet", str(fleet_file))["deployments"]
    assert {(r["model"], r["where"], r["state"]) for r in rows} == {
        ("answer", "a", "READY"),
        ("tiny", "b", "READY"),
    }
    out = run(capsys, "invoke", "tiny", "--input", '{"x": [1, 2]}', "--protocol", "grpc")
    assert out["outputs"]["y"] == [2.0, 4.0] and out["target"] == "triton:cpu-fleet"
    assert run(capsys, "deploy", "tiny", *target)["changes"] is False
    # a model loaded behind mlops' back is drift
    triton_request(b.read_state().http_url, "/v2/repository/models/answer-v1/load", {})
    rows = run(capsys, "status", "--fleet", str(fleet_file), code=1)["deployments"]
    assert ("answer", "b", "DRIFT") in {(r["model"], r["where"], r["state"]) for r in rows}
    run(capsys, "undeploy", "tiny", *target)
    assert ready_models(b) == {"answer-v1"}


def test_invalid_fleet_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "fleet.yaml"
    bad.write_text(
        "name: f\nrepository: r\nservers:\n  - {url: 'http://127.0.0.1:1', memroy_mb: 5}\n"
    )
    run(capsys, "register", str(FIXTURES / "models" / "tiny"))
    line = error_line(capsys, "deploy", "tiny", "--target", "triton", "--fleet", str(bad), code=2)
    assert "fleet.yaml" in line and "memroy_mb" in line
    missing = error_line(capsys, "deploy", "tiny", "--target", "triton", code=2)
    assert "--fleet" in missing


def test_unreachable_fleet_server_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    fleet_file = tmp_path / "fleet.yaml"
    fleet_file.write_text(
        f"name: f\nrepository: repo\nservers:\n  - {{name: gone, url: 'http://127.0.0.1:{port}', memory_mb: 500}}\n"
    )
    run(capsys, "register", str(FIXTURES / "models" / "tiny"), "--alias", "production")
    line = error_line(
        capsys, "deploy", "tiny@1", "--target", "triton", "--fleet", str(fleet_file), code=1
    )
    assert "gone: unreachable" in line
    assert run(capsys, "status")["deployments"] == []
    assert not (tmp_path / "repo" / "tiny-v1").exists()


@pytest.mark.slow
def test_drift_reported_after_the_server_is_killed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Its own local server (this test kills it), in the test's own workspace."""
    import importlib.util
    import os
    import signal

    from tests.conftest import require

    require(importlib.util.find_spec("pytriton") is not None, "the 'triton' extra is not installed")
    run(capsys, "register", str(FIXTURES / "models" / "tiny"))
    try:
        run(capsys, "deploy", "tiny")  # starts the workspace's server
        [row] = run(capsys, "status")["deployments"]
        assert row["state"] == "READY"
        state = json.loads((tmp_path / "project" / ".mlops" / "local" / "server.json").read_text())
        os.kill(state["pid"], signal.SIGKILL)
        time.sleep(0.2)
        [row] = run(capsys, "status", code=1)["deployments"]
        assert row["state"] == "DRIFT" and "died" in row["note"]
        run(capsys, "deploy", "tiny")  # a redeploy restarts the server and heals the drift
        [row] = run(capsys, "status")["deployments"]
        assert row["state"] == "READY"
    finally:
        main(["local", "down"])


@pytest.mark.slow
def test_fleet_with_its_repository_on_s3(
    aws: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A tritonserver started on an S3 model repository (moto); deploy writes the model there."""
    import importlib.util

    from mlops_cli.aws import client
    from mlops_cli.config import resolve_settings
    from mlops_cli.local import LocalTriton
    from mlops_cli.workspace import Workspace
    from tests.conftest import require

    require(importlib.util.find_spec("pytriton") is not None, "the 'triton' extra is not installed")
    monkeypatch.setenv("MLOPS_REGISTRY", f"sqlite:///{tmp_path / 'registry.db'}")
    monkeypatch.setenv("MLOPS_STORE", f"file://{tmp_path / 'store'}")
    s3 = client("s3")
    s3.create_bucket(Bucket="models")
    s3.put_object(
        Bucket="models", Key="triton/README", Body=b"the fleet's repository"
    )  # Triton wants it to exist
    endpoint = aws.endpoint.removeprefix("http://")  # type: ignore[attr-defined]
    root = tmp_path / "server"
    settings = resolve_settings(cwd=tmp_path, environ={}, set_pairs=[f"workspace={root}"])
    server = LocalTriton(
        Workspace(root), settings.local, model_repository=f"s3://http://{endpoint}/models/triton"
    )
    server.up()
    try:
        fleet_file = tmp_path / "fleet.yaml"
        fleet_file.write_text(
            "name: s3-fleet\nrepository: s3://models/triton\nservers:\n"
            f"  - {{name: s, url: '{server.read_state().http_url}', memory_mb: 1000}}\n"
        )
        run(capsys, "register", str(FIXTURES / "models" / "tiny"), "--alias", "production")
        run(capsys, "deploy", "tiny", "--target", "triton", "--fleet", str(fleet_file))
        keys = {o["Key"] for o in s3.list_objects_v2(Bucket="models")["Contents"]}
        assert {"triton/tiny-v1/config.pbtxt", "triton/tiny-v1/1/model.py"} <= keys
        out = run(capsys, "invoke", "tiny", "--input", '{"x": [3]}')
        assert out["outputs"]["y"] == [6.0]
        run(capsys, "undeploy", "tiny", "--target", "triton", "--fleet", str(fleet_file))
        keys = {o["Key"] for o in s3.list_objects_v2(Bucket="models")["Contents"]}
        assert keys == {"triton/README"}
        assert ready_models(server) == set()
    finally:
        server.down()


@pytest.mark.slow
def test_gpu_model_goes_to_the_gpu_server_with_gpu_instance_groups(
    fleet: tuple[Path, list[Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Server b claims a GPU in the fleet file. The plan puts the GPU model there; the config
    written for it asks for KIND_GPU; this machine has no GPU, so Triton refuses the load, and
    its message is surfaced with nothing left behind."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as pb

    fleet_file, (a, b) = fleet
    document = json.loads(fleet_file.read_text())
    document["servers"][1]["gpu"] = {"kind": "nvidia-a10g", "count": 1}
    fleet_file.write_text(json.dumps(document))
    folder = tmp_path / "gpu"
    shutil.copytree(FIXTURES / "models" / "answer", folder)
    spec = folder / "mlops.yaml"
    spec.write_text(
        spec.read_text().replace(
            "memory_mb: 64", "memory_mb: 64\n  gpu: {count: 1, kind: nvidia-a10g}"
        )
    )
    run(capsys, "register", str(folder))
    target = ["--target", "triton", "--fleet", str(fleet_file)]
    plan = run(capsys, "deploy", "answer", *target, "--dry-run")
    [load] = [action for action in plan["actions"] if action["op"] == "load"]
    assert load["where"] == "b" and load["detail"].startswith("GPU")

    from mlops_cli.deploy.engine import desired_state, resolve_version
    from mlops_cli.deploy.fleet import FleetTarget
    from mlops_cli.deploy.fleet_file import load_fleet
    from mlops_cli.deploy.repository import Repository
    from mlops_cli.progress import SILENT
    from mlops_cli.registry import open_registry
    from mlops_cli.stores import open_store

    registry = open_registry(f"sqlite:///{tmp_path / 'registry.db'}")
    desired = desired_state(
        resolve_version(registry, "answer"),
        lambda root: open_store(root or f"file://{tmp_path / 'store'}"),
        target=FleetTarget(load_fleet(fleet_file)),
    )
    written = tmp_path / "inspect"  # the renderer the target uses, into a folder to inspect
    Repository(str(written)).write(desired, "answer-v1", reporter=SILENT)
    config = text_format.Parse(
        (written / "answer-v1" / "config.pbtxt").read_text(), pb.ModelConfig()
    )
    assert [g.kind for g in config.instance_group] == [pb.ModelInstanceGroup.KIND_GPU]
    assert list(config.instance_group[0].gpus) == [0]

    line = error_line(capsys, "deploy", "answer", *target, code=1)
    assert "Triton server b could not load answer-v1" in line and "GPU" in line
    assert ready_models(a) == set() and ready_models(b) == set()
    assert not (tmp_path / "shared-repository" / "answer-v1").exists()
    assert run(capsys, "status")["deployments"] == []


def test_perftest_finds_a_deployed_model_by_its_registered_name(
    env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    register_answer(capsys, tmp_path, 1, alias="production")
    run(capsys, "deploy", "answer")
    report = run(
        capsys,
        "perftest",
        "answer",
        "--concurrency",
        "2",
        "--requests",
        "60",
        "--template",
        '{"x": [1]}',
        "--sla",
        "error_rate<1%",
    )
    assert report["errors"] == 0 and report["throughput_rps"] > 0
    stats = triton_request(env.read_state().http_url, "/v2/models/answer-v1/stats")
    served = stats["model_stats"][0]["inference_stats"]["success"]["count"]  # type: ignore[index]
    assert served >= 60
    line = error_line(capsys, "perftest", "answer@7", "--requests", "5", code=1)
    assert "version 7" in line


def test_concurrent_deploys_of_one_version_take_turns(
    env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import os
    import subprocess
    import sys

    register_answer(capsys, tmp_path, 1, alias="production")
    command = [sys.executable, "-m", "mlops_cli", "deploy", "answer@1", "--json"]
    processes = [
        subprocess.Popen(
            command, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    outcomes = [process.communicate(timeout=120) for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outcomes
    applied = sorted(json.loads(out)["applied"] for out, _ in outcomes)
    assert applied == [False, True]  # the second saw the first one's work and did nothing
    assert ready_models(env) == {"answer-v1"}
    assert [d["version"] for d in run(capsys, "status")["deployments"]] == [1]
