"""The embedded local Triton server: the :class:`~mlops_cli.local.manager.ManagedServer` that
runs the workspace's tritonserver (up, down, status, logs).

The server runs with explicit model control, its python backend stubs in its process group (so
``down`` ends them and the shared-memory regions they leave); its state lives in
``<workspace>/local/server.json``. The state file is the one answer to "where is the local server
now": deployments on the local target are found through it (:func:`running_server`), never through
a port recorded at deploy time, so a server restarted on other ports keeps serving them.

A python-backend load can wedge the server: when the backend's stub process dies before its first
handshake (Triton 2.51 logs "Failed to preinitialize Python stub", e.g. for a missing model.py) the
load call never returns, and the server can no longer stop by itself (its HTTP thread stays
blocked). :meth:`LocalTriton.load_failure_watch` reads the server log so a load can fail within
seconds with Triton's own line instead of waiting out its timeout.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from mlops_cli.config import LocalServerSettings
from mlops_cli.errors import MlopsError, PortInUseError, ServerError
from mlops_cli.local.install import TritonInstallation
from mlops_cli.local.manager import Launch, LocalModel, LocalServerStatus, ManagedServer, UpResult
from mlops_cli.local.processes import ProcessInfo
from mlops_cli.local.state import LOOPBACK, ServerState, read_running
from mlops_cli.progress import SILENT, Reporter
from mlops_cli.triton.client import RepositoryEntry, TritonClient
from mlops_cli.workspace import Workspace

STATE_FILE = "server.json"
LOG_FILE = "tritonserver.log"
_PORT_ROLES = ("http", "grpc", "metrics")  # settings key: local.<role>_port
# Log lines that end a load which Triton itself never ends (see the module docstring).
_STUB_FAILURE = "Failed to preinitialize Python stub"
_LOG_WATCH_LIMIT = 1 << 20  # bytes of new log read per look


class TritonState(ServerState):
    """The recorded state of a local tritonserver: its three ports and model repository."""

    @property
    def http_port(self) -> int:
        return self.ports["http"]

    @property
    def grpc_port(self) -> int:
        return self.ports["grpc"]

    @property
    def metrics_port(self) -> int:
        return self.ports["metrics"]

    @property
    def model_repository(self) -> str:
        return self.extra["model_repository"]


def running_server(local_dir: Path) -> TritonState | None:
    """The local server that runs now under ``local_dir`` (a workspace's ``local`` folder), from
    its state file; None when none runs. Reads only: a dead server's state is left for
    :class:`LocalTriton` to clean."""
    return read_running(local_dir / STATE_FILE, TritonState)


class LocalTriton(ManagedServer[TritonState]):
    """Manage the workspace's local tritonserver."""

    label = "local Triton"
    state_file = STATE_FILE
    log_file = LOG_FILE
    lock_file = ".lock"
    state_type = TritonState

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
        super().__init__(
            workspace,
            startup_timeout=settings.startup_timeout,
            stop_timeout=settings.stop_timeout,
            reporter=reporter,
        )
        self.settings = settings
        self.model_repository: str | Path = (
            self.dir / "models" if model_repository is None else model_repository
        )

    def up(self) -> UpResult:
        """Start the server unless it already runs; return once it answers ready."""
        install = TritonInstallation.locate()
        return self._start(lambda: self._launch(install))

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

    # -- the specialisation ------------------------------------------------------------------

    def _launch(self, install: TritonInstallation) -> Launch:
        ports = self._choose_ports()
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
            *(f"--{role}-address={LOOPBACK}" for role in _PORT_ROLES),
            *(f"--{role}-port={ports[role]}" for role in _PORT_ROLES),
            "--exit-timeout-secs=5",
            "--strict-readiness=true",
            f"--log-verbose={self.settings.log_verbose}",
        ]
        return Launch(
            argv=argv,
            env=install.environment(dict(os.environ)),
            ports=ports,
            extra={"model_repository": str(self.model_repository)},
        )

    def _choose_ports(self) -> dict[str, int]:
        """The configured ports (0: a free one), each checked free on 127.0.0.1."""
        chosen: dict[str, int] = {}
        holders: list[socket.socket] = []
        try:
            for role in _PORT_ROLES:
                key = f"{role}_port"
                port = int(getattr(self.settings, key))
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                holders.append(sock)
                try:
                    sock.bind((LOOPBACK, port))
                except OSError:
                    raise PortInUseError(port=port, key=f"local.{key}") from None
                chosen[role] = sock.getsockname()[1]
        finally:
            for sock in holders:
                sock.close()
        return chosen

    def _healthy(self, state: TritonState) -> TritonState | None:
        return state if TritonClient(state.http_url, timeout=0.5).ready() else None

    def _startup_exit_error(self, returncode: int) -> ServerError:
        return ServerError(
            f"local Triton exited during startup: {self._last_error_line()}",
            hint="see `mlops local logs`",
        )

    def _startup_timeout_error(self) -> ServerError:
        return ServerError(
            f"local Triton was not ready within {self.startup_timeout:g} s",
            hint="raise local.startup_timeout, or see `mlops local logs`",
        )

    def _last_error_line(self) -> str:
        lines = self.log_lines(40)
        errors = [line for line in lines if line.startswith("E") or "error" in line.lower()]
        chosen = (errors or lines or ["no output"])[-1]
        return chosen.strip()[:300]

    def _inspect(
        self, state: TritonState, observed: LocalServerStatus, members: list[ProcessInfo]
    ) -> LocalServerStatus:
        stub_rss: dict[str, int] = {}
        for member in members:
            if member.pid != state.pid and len(member.argv) > 1:
                # argv[1] is <repository>/<model>/<version>/model.py
                model = Path(member.argv[1]).parent.parent.name
                stub_rss[model] = stub_rss.get(model, 0) + member.rss_bytes
        observed = replace(
            observed,
            grpc_url=f"{LOOPBACK}:{state.grpc_port}",
            metrics_url=f"http://{LOOPBACK}:{state.metrics_port}/metrics",
            model_repository=state.model_repository,
        )
        index = _repository_index(state.http_url)
        if index is None:
            return replace(
                observed, state="unresponsive", note="the process runs but does not answer HTTP"
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
        return replace(observed, models=models)

    def _leftovers(self, members: list[ProcessInfo]) -> list[Path]:
        # the python stubs' shared-memory regions outlive a killed stub
        return [
            Path("/dev/shm", arg)
            for member in members
            for arg in member.argv
            if arg.startswith("triton_python_backend_shm_region")
        ]


def _repository_index(url: str) -> list[RepositoryEntry] | None:
    """The server's repository index; None when it does not answer with one."""
    try:
        return TritonClient(url, timeout=5.0).index()
    except MlopsError:
        return None


__all__ = ["LocalTriton", "TritonState", "running_server"]
