"""The process manager shared by the local servers (mlops_cli.local.manager), without a real
server: the state file, the lock, startup failures and the stop logic, with a small Python
program as the managed server (it names its port in a ready file, as mme-local does)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from mlops_cli.errors import ServerError
from mlops_cli.local.manager import Launch, LocalServerStatus, ManagedServer, UpResult
from mlops_cli.local.processes import ProcessInfo, group_members, process_info
from mlops_cli.local.server import TritonState, running_server
from mlops_cli.local.state import ServerState, read_running
from mlops_cli.workspace import Workspace

# The managed program: a group leader with one child in its group, like tritonserver and its
# python stubs. ``mode``: "serve", "stubborn" (ignores SIGTERM), "exit" (fails at startup),
# "mute" (never says it is ready).
PROGRAM = """
import json, signal, subprocess, sys, time
ready, mode = sys.argv[1], sys.argv[2]
if mode == "exit":
    sys.exit(3)
if mode == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
if mode != "mute":
    with open(ready + ".tmp", "w") as f:
        json.dump({"port": 4321}, f)
    import os; os.replace(ready + ".tmp", ready)
time.sleep(120)
"""


class FakeServer(ManagedServer[ServerState]):
    label = "fake server"
    state_file = "fake.json"
    log_file = "fake.log"
    lock_file = ".fake.lock"
    state_type = ServerState

    def __init__(self, root: Path, *, mode: str = "serve", stop_timeout: float = 5.0) -> None:
        super().__init__(Workspace(root), startup_timeout=10.0, stop_timeout=stop_timeout)
        self.mode = mode
        self.ready = self.dir / "fake.ready"
        self.spawned = 0

    def up(self) -> UpResult:
        return self._start(self._launch)

    def _launch(self) -> Launch:
        self.spawned += 1
        self.ready.unlink(missing_ok=True)
        argv = [sys.executable, "-c", PROGRAM, str(self.ready), self.mode]
        return Launch(argv=argv, env={}, extra={"mode": self.mode})

    def _healthy(self, state: ServerState) -> ServerState | None:
        if not self.ready.exists():
            return None
        return replace(state, ports={"http": json.loads(self.ready.read_text())["port"]})

    def _inspect(
        self, state: ServerState, observed: LocalServerStatus, members: list[ProcessInfo]
    ) -> LocalServerStatus:
        return observed


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    workspace = tmp_path / ".mlops"
    yield workspace
    FakeServer(workspace, stop_timeout=0.5).down()  # never leave a process behind


def ended_process(*, new_session: bool = True) -> tuple[int, int]:
    """(pid, start ticks) of a process that ran and is gone."""
    proc = subprocess.Popen(["true"], start_new_session=new_session)
    info = process_info(proc.pid)
    proc.wait()
    return proc.pid, info.start_ticks if info else 0


def write_state(path: Path, state: ServerState) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(state.to_json())


def a_state(pid: int, start_ticks: int, **ports: int) -> ServerState:
    return ServerState(
        pid=pid,
        start_ticks=start_ticks,
        started_at="2024-01-01T00:00:00+00:00",
        log_path="/dev/null",
        ports=ports or {"http": 1, "grpc": 2, "metrics": 3},
        extra={"model_repository": "/models"},
    )


# -- the state file ---------------------------------------------------------------------------


def test_a_stale_state_file_whose_pid_is_gone_reads_as_not_running(root: Path) -> None:
    pid, ticks = ended_process()
    write_state(root / "local" / "server.json", a_state(pid, ticks))
    assert running_server(root / "local") is None

    server = FakeServer(root)
    write_state(server.state_path, a_state(pid, ticks))
    assert server.running_state() is None
    dead = server.status()
    assert dead.state == "dead" and dead.pid == pid and "died" in dead.note
    assert not server.state_path.exists(), "a dead server's state is cleaned"
    assert server.status().state == "stopped"


def test_a_reused_pid_with_another_start_time_is_not_trusted_nor_signalled(root: Path) -> None:
    other = subprocess.Popen(["sleep", "30"], start_new_session=True)  # owns the pid now
    try:
        info = process_info(other.pid)
        assert info is not None
        recorded = a_state(other.pid, info.start_ticks - 1)
        write_state(root / "local" / "server.json", recorded)
        assert running_server(root / "local") is None

        server = FakeServer(root)
        write_state(server.state_path, recorded)
        assert server.running_state() is None
        assert server.status().state == "dead"
        assert server.down().was_running is False
        assert other.poll() is None, "the process that reuses the pid was signalled"
    finally:
        other.kill()
        other.wait()
        other.wait()


def test_an_unreadable_state_file_describes_no_server_and_is_removed(root: Path) -> None:
    server = FakeServer(root)
    server.state_path.parent.mkdir(parents=True)
    server.state_path.write_text("{not json")
    assert server.read_state() is None
    assert not server.state_path.exists()


def test_state_round_trips_and_the_flat_form_of_earlier_versions_is_read() -> None:
    state = a_state(10, 20)
    assert ServerState.from_json(state.to_json()) == state
    flat = {
        "pid": 10,
        "start_ticks": 20,
        "http_port": 8000,
        "grpc_port": 8001,
        "metrics_port": 8002,
        "model_repository": "/models",
        "log_path": "/tmp/log",
        "started_at": "2024-01-01T00:00:00+00:00",
    }
    triton = TritonState.from_json(json.dumps(flat))
    assert (triton.http_port, triton.grpc_port, triton.metrics_port) == (8000, 8001, 8002)
    assert triton.model_repository == "/models" and triton.http_url == "http://127.0.0.1:8000"
    common = {key: flat[key] for key in ("pid", "start_ticks", "log_path", "started_at")}
    mme = ServerState.from_json(json.dumps({**common, "port": 9000, "workdir": "/w"}))
    assert mme.ports["http"] == 9000 and mme.extra["workdir"] == "/w"


# -- up, down, status -------------------------------------------------------------------------


def test_down_with_nothing_running_is_a_clean_no_op(tmp_path: Path) -> None:
    root = tmp_path / ".mlops"
    result = FakeServer(root).down()
    assert (result.was_running, result.stopped_pids, result.forced) == (False, [], False)
    assert not root.exists(), "down created the workspace"
    (root / "local").mkdir(parents=True)
    assert FakeServer(root).down().was_running is False
    assert FakeServer(root).status().state == "stopped"


def test_up_records_the_server_and_down_stops_its_whole_group(root: Path) -> None:
    server = FakeServer(root)
    started = server.up()
    state = read_running(server.state_path, ServerState)
    assert state is not None and state.ports == {"http": 4321}
    assert state.extra == {"mode": "serve"}
    status = server.status()
    assert status.state == "running" and status.pid == state.pid
    assert status.http_url == "http://127.0.0.1:4321" and status.to_dict()["url"] == status.http_url
    assert started.already_running is False and started.state == state
    assert server.up().already_running is True
    members = [m.pid for m in group_members(state.pid)]
    assert len(members) == 2, "the program and its child, in the program's group"

    stopped = server.down()
    assert stopped.was_running and not stopped.forced
    assert sorted(stopped.stopped_pids) == sorted(members)
    assert not any(process_info(pid) for pid in members)
    assert not server.state_path.exists()


def test_two_ups_take_turns_and_start_one_server(root: Path) -> None:
    servers = [FakeServer(root), FakeServer(root)]
    threads = [threading.Thread(target=s.up) for s in servers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sum(s.spawned for s in servers) == 1
    state = servers[0].running_state()
    assert state is not None and len(group_members(state.pid)) == 2


def test_a_server_that_ignores_sigterm_is_killed_after_the_stop_timeout(root: Path) -> None:
    server = FakeServer(root, mode="stubborn", stop_timeout=0.5)
    server.up()
    state = server.running_state()
    assert state is not None
    stopped = server.down()
    assert stopped.was_running and stopped.forced
    assert not group_members(state.pid)


def test_a_server_that_exits_during_startup_leaves_no_state(root: Path) -> None:
    server = FakeServer(root, mode="exit")
    with pytest.raises(ServerError, match=r"fake server exited during startup \(code 3\)"):
        server.up()
    assert not server.state_path.exists()


def test_a_server_that_never_gets_ready_is_stopped_after_the_startup_timeout(root: Path) -> None:
    server = FakeServer(root, mode="mute")
    server.startup_timeout = 1.0
    with pytest.raises(ServerError, match="not ready within 1 s"):
        server.up()
    assert not server.state_path.exists()
    leftovers = [
        info
        for info in (process_info(int(p.name)) for p in Path("/proc").iterdir() if p.name.isdigit())
        if info is not None and str(server.ready) in info.argv
    ]
    assert leftovers == []
