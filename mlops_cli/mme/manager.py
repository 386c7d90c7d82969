"""Lifecycle of the workspace's mme-local server: up, down, status.

Like the local Triton, the server runs in a session of its own (the multi-model-server it starts
shares its process group), bound to 127.0.0.1 on a free port; its state (pid and start time,
port, log) lives in ``<workspace>/local/mme.json``. ``down`` stops the whole group.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from mlops_cli.errors import NotFoundError, ServerError
from mlops_cli.local.processes import is_same_process, process_info, signal_group, wait_gone
from mlops_cli.progress import SILENT, Reporter, running
from mlops_cli.workspace import Workspace, write_atomic

STATE_FILE = "mme.json"
LOG_FILE = "mme-local.log"
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class MMEState:
    pid: int
    start_ticks: int
    port: int
    log_path: str
    workdir: str
    started_at: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def http_json(url: str, *, method: str = "GET", body: Any = None, timeout: float = 10) -> Any:
    """A JSON request to mme-local; raises ServerError when it cannot be reached."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with _NO_PROXY.open(request, timeout=timeout) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        with exc:
            text = exc.read().decode("utf-8", errors="replace")
        with contextlib.suppress(ValueError, AttributeError):
            text = json.loads(text).get("Message", text)
        raise ServerError(f"mme-local answered HTTP {exc.code} to {method} {url}: {text}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise ServerError(
            f"mme-local at {url} cannot be reached ({exc})", hint="start it: mlops local up --mme"
        ) from None


class LocalMME:
    """Start, stop and observe the workspace's mme-local server (idempotent, like LocalTriton)."""

    def __init__(
        self,
        workspace: Workspace,
        *,
        startup_timeout: float = 60.0,
        stop_timeout: float = 20.0,
        reporter: Reporter = SILENT,
    ) -> None:
        self.workspace = workspace
        self.dir = workspace.local_dir
        self.state_path = self.dir / STATE_FILE
        self.log_path = self.dir / LOG_FILE
        self.workdir = self.dir / "mme"
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.reporter = reporter

    def read_state(self) -> MMEState | None:
        try:
            return MMEState(**json.loads(self.state_path.read_text()))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError):
            self.state_path.unlink(missing_ok=True)
            return None

    def running_state(self) -> MMEState | None:
        """The state of a live server, or None (cleaning a dead one's state)."""
        state = self.read_state()
        if state is None:
            return None
        if is_same_process(state.pid, state.start_ticks):
            return state
        signal_group(state.pid, signal.SIGKILL)
        self.state_path.unlink(missing_ok=True)
        return None

    def url(self) -> str:
        state = self.running_state()
        if state is None:
            raise NotFoundError(
                "mme-local is not running in this workspace", hint="start it: mlops local up --mme"
            )
        return state.url

    def up(
        self, *, triton_url: str | None = None, environ: Mapping[str, str] | None = None
    ) -> tuple[MMEState, bool]:
        """Start the server unless it runs; return (state, already_running)."""
        state = self.running_state()
        if state is not None:
            return state, True
        self.workspace.ensure_dir(self.dir)
        ready = self.dir / "mme.ready"
        ready.unlink(missing_ok=True)
        argv = [
            sys.executable,
            "-m",
            "mlops_cli.mme",
            "--workdir",
            str(self.workdir),
            "--ready-file",
            str(ready),
        ]
        if triton_url:
            argv += ["--triton-url", triton_url]
        env = dict(os.environ if environ is None else environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        with open(self.log_path, "ab") as log:
            log.write(f"--- mlops local up --mme {datetime.now(UTC).isoformat()}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.dir,
                start_new_session=True,
            )
        info = process_info(proc.pid)
        deadline = time.monotonic() + self.startup_timeout
        with running(self.reporter, "starting mme-local"):
            while not ready.exists():
                if proc.poll() is not None:
                    raise ServerError(
                        f"mme-local exited during startup (code {proc.returncode})",
                        hint=f"see {self.log_path}",
                    )
                if time.monotonic() > deadline:
                    signal_group(proc.pid, signal.SIGKILL)
                    raise ServerError(
                        "mme-local did not start in time", hint=f"see {self.log_path}"
                    )
                time.sleep(0.05)
        port = int(json.loads(ready.read_text())["port"])
        ready.unlink(missing_ok=True)
        state = MMEState(
            pid=proc.pid,
            start_ticks=info.start_ticks if info else 0,
            port=port,
            log_path=str(self.log_path),
            workdir=str(self.workdir),
            started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        write_atomic(self.state_path, json.dumps(asdict(state), indent=2).encode())
        return state, False

    def down(self) -> bool:
        """Stop the server and its container processes; False when it was not running."""
        state = self.running_state()
        if state is None:
            return False
        with running(self.reporter, "stopping mme-local"):
            signal_group(state.pid, signal.SIGTERM)
            if not wait_gone(state.pid, self.stop_timeout):
                signal_group(state.pid, signal.SIGKILL)
                wait_gone(state.pid, 10.0)
        self.state_path.unlink(missing_ok=True)
        return True

    def status(self) -> dict[str, Any]:
        state = self.running_state()
        if state is None:
            return {"state": "stopped"}
        try:
            observed = http_json(state.url + "/mme/status", timeout=5)
        except ServerError as exc:
            return {"state": "unresponsive", "url": state.url, "note": exc.message}
        return {"state": "running", "url": state.url, "log_path": state.log_path, **observed}


__all__ = ["LocalMME", "MMEState", "http_json"]
