"""The embedded local Triton: a real tritonserver process managed through `mlops local`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from mlops_cli.local.processes import group_members, process_info
from tests.conftest import install_fixture_model, require, triton_request

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _needs_triton() -> None:
    import importlib.util

    require(importlib.util.find_spec("pytriton") is not None, "the 'triton' extra is not installed")


def mlops(workspace: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "mlops_cli", "--set", f"workspace={workspace}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def as_json(result: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(result.stdout)


def alive(pid: int) -> bool:
    return process_info(pid) is not None


@pytest.fixture
def workspace(tmp_path: Path) -> Any:
    ws = tmp_path / "ws"
    yield ws
    # Never leave a server behind, whatever the test did.
    mlops(ws, "local", "down", check=False)


def test_up_ready_idempotent_status_and_down_leaves_nothing(workspace: Path) -> None:
    first = as_json(mlops(workspace, "local", "up", "--json"))
    assert first["state"] == "running" and first["already_running"] is False
    pid = first["pid"]
    assert triton_request(first["http_url"], "/v2/health/ready") is None  # 200, empty body

    second = as_json(mlops(workspace, "local", "up", "--json"))
    assert second["already_running"] is True and second["pid"] == pid
    assert [m.pid for m in group_members(pid)] == [pid], "up twice started a second server"

    install_fixture_model(Path(first["model_repository"]))
    triton_request(first["http_url"], "/v2/repository/models/echo/load", {})
    answer = triton_request(
        first["http_url"],
        "/v2/models/echo/infer",
        {"inputs": [{"name": "x", "datatype": "FP32", "shape": [3], "data": [1, 2, 3]}]},
    )
    assert answer["outputs"][0]["data"] == [2.0, 4.0, 6.0]  # type: ignore[index]

    status = as_json(mlops(workspace, "local", "status", "--json"))
    assert status["state"] == "running"
    assert [(m["name"], m["state"]) for m in status["models"]] == [("echo", "READY")]
    assert status["models"][0]["rss_bytes"] > 1_000_000, "the model's stub memory is measured"
    assert status["total_rss_bytes"] > status["server_rss_bytes"] > 1_000_000

    members = [m.pid for m in group_members(pid)]
    assert len(members) == 2, "server plus one python backend stub"
    down = as_json(mlops(workspace, "local", "down", "--json"))
    assert down["was_running"] is True and sorted(down["stopped_pids"]) == sorted(members)
    assert not any(alive(p) for p in members), "a process of the server outlived `down`"
    assert not (workspace / "local" / "server.json").exists()

    again = as_json(mlops(workspace, "local", "down", "--json"))
    assert again["was_running"] is False
    stopped = mlops(workspace, "local", "status", "--json", check=False)
    assert stopped.returncode == 1 and as_json(stopped)["state"] == "stopped"


def test_killed_server_is_detected_and_cleaned(workspace: Path) -> None:
    up = as_json(mlops(workspace, "local", "up", "--json"))
    install_fixture_model(Path(up["model_repository"]))
    triton_request(up["http_url"], "/v2/repository/models/echo/load", {})
    members = [m.pid for m in group_members(up["pid"])]
    os.kill(up["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while alive(up["pid"]) and time.monotonic() < deadline:
        time.sleep(0.05)

    dead = mlops(workspace, "local", "status", "--json", check=False)
    assert dead.returncode == 1
    report = as_json(dead)
    assert report["state"] == "dead" and report["pid"] == up["pid"]
    assert "died" in dead.stderr
    assert not (workspace / "local" / "server.json").exists()
    assert not any(alive(p) for p in members), "the dead server's stub was left running"

    after = mlops(workspace, "local", "status", "--json", check=False)
    assert as_json(after)["state"] == "stopped"
    # and it can be started again
    assert as_json(mlops(workspace, "local", "up", "--json"))["already_running"] is False


def test_configured_port_in_use_fails_cleanly(workspace: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = mlops(workspace, "local", "up", "--http-port", str(port), check=False)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"port {port} (local.http_port) is already in use" in lines[0]
    assert not (workspace / "local" / "server.json").exists()


def test_session_fixture_serves_and_resets(local_triton: Any) -> None:
    state = local_triton.read_state()
    install_fixture_model(Path(state.model_repository))
    triton_request(state.http_url, "/v2/repository/models/echo/load", {})
    status = local_triton.status()
    assert [m.name for m in status.models if m.state == "READY"] == ["echo"]


def test_session_fixture_was_reset(local_triton: Any) -> None:
    assert [m for m in local_triton.status().models if m.state == "READY"] == []


def test_logs_show_the_server_output(workspace: Path) -> None:
    mlops(workspace, "local", "up")
    logs = as_json(mlops(workspace, "local", "logs", "-n", "200", "--json"))
    assert any("Started HTTPService" in line for line in logs["lines"]), logs["lines"][-5:]
