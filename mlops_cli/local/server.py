"""Lifecycle of the embedded local Triton server: up, down, status, logs.

The server runs as a background process in a session of its own (so its python backend stubs share
its process group), bound to 127.0.0.1, with explicit model control. Its state (pid and start time,
ports, model repository, log) lives in ``<workspace>/local/server.json``; a server that died is
detected by pid and start time and its state is cleaned.

The state file is the one answer to "where is the local server now": deployments on the local
target are found through it (:func:`running_server`), never through a port recorded at deploy time,
so a server restarted on other ports keeps serving them.

A python-backend load can wedge the server: when the backend's stub process dies before its first
handshake (Triton 2.51 logs "Failed to preinitialize Python stub", e.g. for a missing model.py) the
load call never returns, and the server can no longer stop by itself (its HTTP thread stays
blocked). :meth:`LocalTriton.load_failure_watch` reads the server log so a load can fail within
seconds with Triton's own line instead of waiting out its timeout.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from mlops_cli.config import LocalServerSettings
from mlops_cli.errors import MlopsError, PortInUseError, ServerError
from mlops_cli.local.install import TritonInstallation
from mlops_cli.local.processes import (
    group_members,
    is_same_process,
    process_info,
    signal_group,
    wait_gone,
)
from mlops_cli.progress import SILENT, Reporter, running
from mlops_cli.triton.client import RepositoryEntry, TritonClient
from mlops_cli.workspace import Workspace, write_atomic

STATE_FILE = "server.json"
LOG_FILE = "tritonserver.log"
_PORT_KEYS = ("http_port", "grpc_port", "metrics_port")
# Log lines that end a load which Triton itself never ends (see the module docstring).
_STUB_FAILURE = "Failed to preinitialize Python stub"
_LOG_WATCH_LIMIT = 1 << 20  # bytes of new log read per look


@dataclass(frozen=True)
class ServerState:
    """What mlops records about a running local server."""

    pid: int
    start_ticks: int
    http_port: int
    grpc_port: int
    metrics_port: int
    model_repository: str
    log_path: str
    started_at: str

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"


@dataclass(frozen=True)
class LocalModel:
    name: str
    version: str
    state: str
    reason: str = ""
    rss_bytes: int = 0


@dataclass(frozen=True)
class LocalServerStatus:
    """The local server as observed now."""

    state: Literal["running", "stopped", "dead", "unresponsive"]
    pid: int | None = None
    http_url: str | None = None
    grpc_url: str | None = None
    metrics_url: str | None = None
    model_repository: str | None = None
    log_path: str | None = None
    started_at: str | None = None
    server_rss_bytes: int = 0
    total_rss_bytes: int = 0
    models: list[LocalModel] = field(default_factory=list)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class UpResult:
    status: LocalServerStatus
    already_running: bool


@dataclass(frozen=True)
class DownResult:
    was_running: bool
    stopped_pids: list[int]
    forced: bool


class LocalTriton:
    """Manage the workspace's local tritonserver. Methods block until the server is in the
    asked state; each is idempotent (``up`` on a running server and ``down`` on a stopped one
    change nothing) and serialised against other mlops processes by a lock file."""

    def __init__(
        self,
        workspace: Workspace,
        settings: LocalServerSettings,
        *,
        reporter: Reporter = SILENT,
        model_repository: str | Path | None = None,
    ) -> None:
        """``model_repository``: another repository than the workspace's (a shared folder, or
        ``s3://...`` as tritonserver spells it), for servers of a fleet."""
        self.workspace = workspace
        self.settings = settings
        self.reporter = reporter
        self.dir = workspace.local_dir
        self.state_path = self.dir / STATE_FILE
        self.log_path = self.dir / LOG_FILE
        self.model_repository: str | Path = (
            self.dir / "models" if model_repository is None else model_repository
        )

    # -- state -----------------------------------------------------------------------------

    def read_state(self) -> ServerState | None:
        try:
            data = json.loads(self.state_path.read_text())
            return ServerState(**data)
        except FileNotFoundError:
            return None
        except (ValueError, TypeError):
            # A state file we cannot read describes no server we can manage.
            self.state_path.unlink(missing_ok=True)
            return None

    def load_failure_watch(self, name: str) -> Callable[[], str | None]:
        """A check to call while ``name`` loads: it returns the server's own log line once the
        load has failed in a way that Triton never reports to the caller, else None. Only lines
        written after this call are read."""
        try:
            offset = self.log_path.stat().st_size
        except FileNotFoundError:
            offset = 0
        marker = f"/{name}/"

        def failed() -> str | None:
            nonlocal offset
            try:
                with open(self.log_path, "rb") as handle:
                    handle.seek(offset)
                    chunk = handle.read(_LOG_WATCH_LIMIT)
            except FileNotFoundError:
                return None
            complete = chunk[: chunk.rfind(b"\n") + 1]
            offset += len(complete)
            for line in complete.decode(errors="replace").splitlines():
                if _STUB_FAILURE in line and marker in line:
                    return line.split("]", 1)[-1].strip()[:300]
            return None

        return failed

    def _write_state(self, state: ServerState) -> None:
        write_atomic(self.state_path, json.dumps(asdict(state), indent=2).encode())

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.workspace.ensure_dir(self.dir)
        with open(self.dir / ".lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _live_state(self) -> tuple[ServerState | None, bool]:
        """The recorded state and whether that process is still alive (cleaning a dead one)."""
        state = self.read_state()
        if state is None:
            return None, False
        if is_same_process(state.pid, state.start_ticks):
            return state, True
        self._cleanup_dead(state)
        return state, False

    def _cleanup_dead(self, state: ServerState) -> None:
        # The server is gone; stubs it left may linger for seconds: end them too.
        self._kill_group(state.pid)
        self.state_path.unlink(missing_ok=True)

    # -- commands --------------------------------------------------------------------------

    def up(self) -> UpResult:
        """Start the server unless it already runs; return once it answers ready."""
        install = TritonInstallation.locate()
        with self._locked():
            state, alive = self._live_state()
            if state is not None and alive:
                return UpResult(status=self._observe(state), already_running=True)
            ports = self._choose_ports()
            state = self._spawn(install, ports)
            try:
                self._wait_ready(state)
            except BaseException:
                self._kill_group(state.pid)
                self.state_path.unlink(missing_ok=True)
                raise
            return UpResult(status=self._observe(state), already_running=False)

    def down(self) -> DownResult:
        """Stop the server: SIGTERM, then SIGKILL after ``stop_timeout``; no stub survives."""
        if not self.dir.is_dir():
            return DownResult(was_running=False, stopped_pids=[], forced=False)
        with self._locked():
            state, alive = self._live_state()
            if state is None or not alive:
                return DownResult(was_running=False, stopped_pids=[], forced=False)
            pids = [member.pid for member in group_members(state.pid)]
            shm = self._stub_shm_regions(state.pid)
            with running(self.reporter, "stopping local Triton"):
                signal_group(state.pid, signal.SIGTERM)
                forced = not wait_gone(state.pid, self.settings.stop_timeout)
                if forced:
                    self._kill_group(state.pid)
            for name in shm:
                Path("/dev/shm", name).unlink(missing_ok=True)
            self.state_path.unlink(missing_ok=True)
            return DownResult(was_running=True, stopped_pids=pids, forced=forced)

    def status(self) -> LocalServerStatus:
        """Observe the server. A recorded server that died is reported once as ``dead``."""
        if not self.dir.is_dir():
            return LocalServerStatus(state="stopped")
        with self._locked():
            state, alive = self._live_state()
            if state is None:
                return LocalServerStatus(state="stopped")
            if not alive:
                return LocalServerStatus(
                    state="dead",
                    pid=state.pid,
                    log_path=state.log_path,
                    note=f"local Triton (pid {state.pid}) died; its state was cleaned",
                )
            return self._observe(state)

    def log_lines(self, count: int) -> list[str]:
        """The last ``count`` lines of the server log (empty when there is none)."""
        try:
            with open(self.log_path, "rb") as handle:
                handle.seek(0, os.SEEK_END)
                size = handle.tell()
                handle.seek(max(0, size - 256 * count - 4096))
                lines = handle.read().decode(errors="replace").splitlines()
        except FileNotFoundError:
            return []
        return lines[-count:] if count > 0 else []

    # -- internals -------------------------------------------------------------------------

    def _choose_ports(self) -> dict[str, int]:
        chosen: dict[str, int] = {}
        holders: list[socket.socket] = []
        try:
            for key in _PORT_KEYS:
                port = int(getattr(self.settings, key))
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                holders.append(sock)
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    raise PortInUseError(port=port, key=f"local.{key}") from None
                chosen[key] = sock.getsockname()[1]
        finally:
            for sock in holders:
                sock.close()
        return chosen

    def _spawn(self, install: TritonInstallation, ports: dict[str, int]) -> ServerState:
        backends = install.link_backends(self.workspace.ensure_dir(self.dir / "backends"))
        if isinstance(self.model_repository, Path):
            self.workspace.ensure_dir(self.model_repository)
        cache = self.workspace.ensure_dir(self.dir / "cache")
        argv = [
            str(install.binary),
            f"--model-repository={self.model_repository}",
            "--model-control-mode=explicit",
            f"--backend-directory={backends}",
            f"--cache-directory={cache}",
            "--http-address=127.0.0.1",
            f"--http-port={ports['http_port']}",
            "--grpc-address=127.0.0.1",
            f"--grpc-port={ports['grpc_port']}",
            "--metrics-address=127.0.0.1",
            f"--metrics-port={ports['metrics_port']}",
            "--exit-timeout-secs=5",
            "--strict-readiness=true",
            f"--log-verbose={self.settings.log_verbose}",
        ]
        with open(self.log_path, "ab") as log:
            log.write(f"--- mlops local up {datetime.now(UTC).isoformat()}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=install.environment(dict(os.environ)),
                cwd=self.dir,
                start_new_session=True,
            )
        info = process_info(proc.pid)
        state = ServerState(
            pid=proc.pid,
            start_ticks=info.start_ticks if info else 0,
            model_repository=str(self.model_repository),
            log_path=str(self.log_path),
            started_at=datetime.now(UTC).isoformat(timespec="seconds"),
            **ports,
        )
        self._write_state(state)
        return state

    def _wait_ready(self, state: ServerState) -> None:
        deadline = time.monotonic() + self.settings.startup_timeout
        with running(self.reporter, "starting local Triton"):
            while True:
                if not is_same_process(state.pid, state.start_ticks):
                    raise ServerError(
                        f"local Triton exited during startup: {self._last_error_line()}",
                        hint="see `mlops local logs`",
                    )
                if TritonClient(state.http_url, timeout=0.5).ready():
                    return
                if time.monotonic() >= deadline:
                    raise ServerError(
                        f"local Triton was not ready within {self.settings.startup_timeout:g} s",
                        hint="raise local.startup_timeout, or see `mlops local logs`",
                    )
                time.sleep(0.05)

    def _last_error_line(self) -> str:
        lines = self.log_lines(40)
        errors = [line for line in lines if line.startswith("E") or "error" in line.lower()]
        chosen = (errors or lines or ["no output"])[-1]
        return chosen.strip()[:300]

    def _observe(self, state: ServerState) -> LocalServerStatus:
        members = group_members(state.pid)
        server_rss = next((m.rss_bytes for m in members if m.pid == state.pid), 0)
        stub_rss: dict[str, int] = {}
        for member in members:
            if member.pid != state.pid and len(member.argv) > 1:
                # argv[1] is <repository>/<model>/<version>/model.py
                model = Path(member.argv[1]).parent.parent.name
                stub_rss[model] = stub_rss.get(model, 0) + member.rss_bytes
        common: dict[str, Any] = {
            "pid": state.pid,
            "http_url": state.http_url,
            "grpc_url": f"127.0.0.1:{state.grpc_port}",
            "metrics_url": f"http://127.0.0.1:{state.metrics_port}/metrics",
            "model_repository": state.model_repository,
            "log_path": state.log_path,
            "started_at": state.started_at,
            "server_rss_bytes": server_rss,
            "total_rss_bytes": sum(m.rss_bytes for m in members),
        }
        index = _repository_index(state.http_url)
        if index is None:
            return LocalServerStatus(
                state="unresponsive", note="the process runs but does not answer HTTP", **common
            )
        models = [
            LocalModel(
                name=entry.name,
                version=entry.version,
                state=entry.state or "UNKNOWN",
                reason=entry.reason,
                rss_bytes=stub_rss.get(entry.name, 0),
            )
            for entry in index
        ]
        return LocalServerStatus(state="running", models=models, **common)

    def _stub_shm_regions(self, pgid: int) -> list[str]:
        names: list[str] = []
        for member in group_members(pgid):
            names.extend(
                arg for arg in member.argv if arg.startswith("triton_python_backend_shm_region")
            )
        return names

    @staticmethod
    def _kill_group(pgid: int) -> None:
        signal_group(pgid, signal.SIGKILL)
        wait_gone(pgid, 10.0)


def running_server(local_dir: Path) -> ServerState | None:
    """The local server that runs now under ``local_dir`` (a workspace's ``local`` folder), from
    its state file; None when none runs. Reads only: a dead server's state is left for
    :class:`LocalTriton` to clean."""
    try:
        state = ServerState(**json.loads((local_dir / STATE_FILE).read_text()))
    except (FileNotFoundError, ValueError, TypeError):
        return None
    return state if is_same_process(state.pid, state.start_ticks) else None


def _repository_index(url: str) -> list[RepositoryEntry] | None:
    """The server's repository index; None when it does not answer with one."""
    try:
        return TritonClient(url, timeout=5.0).index()
    except MlopsError:
        return None
