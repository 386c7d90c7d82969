"""One process manager for the servers mlops runs on this machine under the workspace.

Both managed local servers (the embedded tritonserver, :mod:`mlops_cli.local.server`, and
mme-local, :mod:`mlops_cli.local.mme`) live the same life, so it is written once here:

- **Spawn** in a session of its own, so that what the server starts (python backend stubs, the
  multi-model-server it runs) shares its process group and is stopped with it; it binds
  127.0.0.1 only, on free ports unless the user asked for given ones; its output goes to a log.
- **State file** ``<workspace>/local/<kind>.json`` (:class:`~mlops_cli.local.state.ServerState`:
  pid and start time, ports, log, what the kind adds), written atomically right after the spawn,
  so a server is never left running untracked; a pid reused by another program is not trusted.
- **Lock**: ``up``, ``down`` and ``status`` of one server hold a lock file, so two ``up`` take
  turns and the second finds the first one's server instead of starting another.
- **Health wait** behind the injected progress protocol (a spinner), failing with the server's
  own reason when it exits, or after the startup timeout; a start that fails leaves no process
  and no state file.
- **Stop**: SIGTERM to the group, SIGKILL after the stop timeout, then wait until every member is
  gone; stopping a stopped server is a no-op.
- **Status** in one typed shape, :class:`LocalServerStatus`, for both servers. A recorded
  server that died is reported once as ``dead`` and its state (and stray group members) cleaned.

A kind of server subclasses :class:`ManagedServer` and says how to launch it, when it is healthy
and what it holds.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Generic, Literal

from mlops_cli.errors import ServerError
from mlops_cli.local.processes import (
    ProcessInfo,
    group_members,
    is_same_process,
    kill_group,
    process_info,
    stop_group,
)
from mlops_cli.local.state import ServerState, StateT, read_running
from mlops_cli.progress import SILENT, Reporter, running
from mlops_cli.workspace import Workspace, write_atomic

_POLL_S = 0.05


@dataclass(frozen=True)
class LocalModel:
    """A model a local server holds."""

    name: str
    version: str
    state: str
    reason: str = ""
    rss_bytes: int = 0


@dataclass(frozen=True)
class LocalServerStatus:
    """A managed local server as observed now; the same shape for every kind."""

    state: Literal["running", "stopped", "dead", "unresponsive"]
    server: str = ""  # which one: "local Triton", "mme-local"
    pid: int | None = None
    http_url: str | None = None
    grpc_url: str | None = None
    metrics_url: str | None = None
    model_repository: str | None = None
    log_path: str | None = None
    started_at: str | None = None
    server_rss_bytes: int = 0
    total_rss_bytes: int = 0  # the whole process group
    models: list[LocalModel] = field(default_factory=list)
    note: str = ""
    # the server's own status document where it has one (mme-local: endpoints, containers),
    # a JSON value passed through to ``--json`` as the server wrote it
    reported: Mapping[str, object] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        document = asdict(self)
        reported = document.pop("reported")
        return {**document, "url": self.http_url, **reported}


@dataclass(frozen=True)
class UpResult:
    status: LocalServerStatus
    already_running: bool
    state: ServerState  # what is recorded about the server that runs now


@dataclass(frozen=True)
class DownResult:
    was_running: bool
    stopped_pids: list[int]
    forced: bool  # killed after the stop timeout


@dataclass(frozen=True)
class Launch:
    """How to start one server: its command line and what to record before it is healthy."""

    argv: list[str]
    env: Mapping[str, str]
    ports: Mapping[str, int] = field(default_factory=dict)  # known before it starts
    extra: Mapping[str, str] = field(default_factory=dict)


class ManagedServer(ABC, Generic[StateT]):
    """One local server under the workspace. ``up``, ``down`` and ``status`` block until the
    server is in the asked state, are idempotent (``up`` on a running server and ``down`` on a
    stopped one change nothing) and are serialised against other mlops processes by a lock."""

    label: ClassVar[str]  # in messages: "local Triton"
    state_file: ClassVar[str]
    log_file: ClassVar[str]
    lock_file: ClassVar[str]
    state_type: type[StateT]

    def __init__(
        self,
        workspace: Workspace,
        *,
        startup_timeout: float,
        stop_timeout: float,
        reporter: Reporter = SILENT,
    ) -> None:
        self.workspace = workspace
        self.dir = workspace.local_dir
        self.state_path = self.dir / self.state_file
        self.log_path = self.dir / self.log_file
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.reporter = reporter

    # -- what a kind of server says ----------------------------------------------------------

    @abstractmethod
    def _healthy(self, state: StateT) -> StateT | None:
        """The state to record once the server serves (with the ports it learned), else None."""

    @abstractmethod
    def _inspect(
        self, state: StateT, observed: LocalServerStatus, members: list[ProcessInfo]
    ) -> LocalServerStatus:
        """``observed`` (the process facts of the group, ``members``) completed with what the
        running server holds."""

    def _startup_exit_error(self, returncode: int) -> ServerError:
        return ServerError(
            f"{self.label} exited during startup (code {returncode})", hint=f"see {self.log_path}"
        )

    def _startup_timeout_error(self) -> ServerError:
        return ServerError(
            f"{self.label} was not ready within {self.startup_timeout:g} s",
            hint=f"see {self.log_path}",
        )

    def _leftovers(self, members: list[ProcessInfo]) -> list[Path]:
        """Files the group leaves behind when it is killed, removed after a stop."""
        return []

    # -- state -------------------------------------------------------------------------------

    def read_state(self) -> StateT | None:
        """The recorded state (alive or not); a state file that cannot be read is removed."""
        try:
            return self.state_type.from_json(self.state_path.read_text())
        except FileNotFoundError:
            return None
        except (ValueError, TypeError, KeyError):
            # A state file we cannot read describes no server we can manage.
            self.state_path.unlink(missing_ok=True)
            return None

    def running_state(self) -> StateT | None:
        """The state of the server running now, or None. Reads only (no lock)."""
        return read_running(self.state_path, self.state_type)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.workspace.ensure_dir(self.dir)
        with open(self.dir / self.lock_file, "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _live_state(self) -> tuple[StateT | None, bool]:
        """The recorded state and whether that process still lives; a dead one's group and
        state file are cleaned. Call under the lock."""
        state = self.read_state()
        if state is None:
            return None, False
        if is_same_process(state.pid, state.start_ticks):
            return state, True
        if process_info(state.pid) is None:
            # What it started may linger for seconds: end its group. (When the pid now names
            # another process, the old group is gone: Linux reuses no pid a group still uses,
            # and the new owner's group is not ours to signal.)
            kill_group(state.pid)
        self.state_path.unlink(missing_ok=True)
        return state, False

    # -- lifecycle ---------------------------------------------------------------------------

    def _start(self, launch: Callable[[], Launch]) -> UpResult:
        """Start the server from ``launch()`` unless it runs; return once it is healthy."""
        with self._locked():
            state, alive = self._live_state()
            if state is not None and alive:
                return UpResult(self._observe(state), already_running=True, state=state)
            started = self._spawn(launch())
            try:
                state = self._wait_healthy(*started)
            except BaseException:
                kill_group(started[0].pid)
                self.state_path.unlink(missing_ok=True)
                raise
            if state != started[0]:
                write_atomic(self.state_path, state.to_json())
            return UpResult(self._observe(state), already_running=False, state=state)

    def down(self) -> DownResult:
        """Stop the server: SIGTERM to its group, SIGKILL after the stop timeout; return once no
        member is left."""
        if not self.dir.is_dir():
            return DownResult(was_running=False, stopped_pids=[], forced=False)
        with self._locked():
            state, alive = self._live_state()
            if state is None or not alive:
                return DownResult(was_running=False, stopped_pids=[], forced=False)
            members = group_members(state.pid)
            leftovers = self._leftovers(members)
            with running(self.reporter, f"stopping {self.label}"):
                forced = not stop_group(state.pid, self.stop_timeout)
            for path in leftovers:
                path.unlink(missing_ok=True)
            self.state_path.unlink(missing_ok=True)
            return DownResult(
                was_running=True, stopped_pids=[m.pid for m in members], forced=forced
            )

    def status(self) -> LocalServerStatus:
        """Observe the server. A recorded server that died is reported once as ``dead``."""
        if not self.dir.is_dir():
            return LocalServerStatus(state="stopped", server=self.label)
        with self._locked():
            state, alive = self._live_state()
            if state is None:
                return LocalServerStatus(state="stopped", server=self.label)
            if not alive:
                return LocalServerStatus(
                    state="dead",
                    server=self.label,
                    pid=state.pid,
                    log_path=state.log_path,
                    note=f"{self.label} (pid {state.pid}) died; its state was cleaned",
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

    # -- internals ---------------------------------------------------------------------------

    def _spawn(self, launch: Launch) -> tuple[StateT, subprocess.Popen[bytes]]:
        with open(self.log_path, "ab") as log:
            log.write(f"--- mlops: {self.label} up {datetime.now(UTC).isoformat()}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                launch.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(launch.env),
                cwd=self.dir,
                start_new_session=True,
            )
        info = process_info(proc.pid)
        state = self.state_type(
            pid=proc.pid,
            start_ticks=info.start_ticks if info else 0,
            started_at=datetime.now(UTC).isoformat(timespec="seconds"),
            log_path=str(self.log_path),
            ports=dict(launch.ports),
            extra=dict(launch.extra),
        )
        write_atomic(self.state_path, state.to_json())
        return state, proc

    def _wait_healthy(self, state: StateT, proc: subprocess.Popen[bytes]) -> StateT:
        deadline = time.monotonic() + self.startup_timeout
        with running(self.reporter, f"starting {self.label}"):
            while True:
                returncode = proc.poll()
                if returncode is not None:
                    raise self._startup_exit_error(returncode)
                healthy = self._healthy(state)
                if healthy is not None:
                    return healthy
                if time.monotonic() >= deadline:
                    raise self._startup_timeout_error()
                time.sleep(_POLL_S)

    def _observe(self, state: StateT) -> LocalServerStatus:
        members = group_members(state.pid)
        facts = LocalServerStatus(
            state="running",
            server=self.label,
            pid=state.pid,
            http_url=state.http_url,
            log_path=state.log_path,
            started_at=state.started_at,
            server_rss_bytes=next((m.rss_bytes for m in members if m.pid == state.pid), 0),
            total_rss_bytes=sum(m.rss_bytes for m in members),
        )
        return self._inspect(state, facts, members)


__all__ = [
    "DownResult",
    "Launch",
    "LocalModel",
    "LocalServerStatus",
    "ManagedServer",
    "UpResult",
]
