"""Test-harness manager for a real multi-model-server (MMS) process.

``MMSServer`` writes its own properties file, gives the server its own ``TMPDIR``
(pid file and worker Unix sockets), starts ``multi-model-server --start`` from the
venv, waits for ``GET /ping`` and exposes the SageMaker multi-model container
contract (``POST /models``, ``GET /models``, ``POST /models/<m>/invoke``,
``DELETE /models/<m>``). ``stop()`` leaves no java or python worker behind.

Gotchas handled here:

* ``multi-model-server --start`` returns at once; the java server is a detached
  grandchild. Its pid lands in ``$TMPDIR/.model_server.pid``.
* The java side takes its temp dir (worker Unix sockets ``.mms.sock.9000`` ...)
  from ``$TEMP``, not ``$TMPDIR``; without it every server shares ``/tmp`` and two
  servers collide. Both are set, to a short directory (Unix socket paths are
  limited to 107 bytes).
* ``tests/servers`` itself must not go on the server's ``PYTHONPATH``: this file is
  called ``mms.py`` and would shadow the real ``mms`` package in the launcher and
  in the workers. Handler modules from ``tests/servers`` are symlinked into a
  private directory that goes on ``PYTHONPATH`` instead.
* A plain exception in a handler makes MMS answer 503 "Prediction failed"; the
  bundled handler sets status 500 itself (as the SageMaker toolkit does).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import psutil

SERVERS_DIR = Path(__file__).resolve().parent
PID_FILE_NAME = ".model_server.pid"
# sun_path is 108 bytes; MMS appends "/.mms.sock.<port>" to its temp dir.
_MAX_TMPDIR_LEN = 80
# MMS refuses ports >= 32767; stay below Linux's ephemeral range (32768-60999).
_PORT_LOW, _PORT_HIGH = 20000, 32766
_JAVA_MAIN = "com.amazonaws.ml.mms.ModelServer"


def mms_executable() -> Path:
    """The ``multi-model-server`` launcher next to the running interpreter."""
    return Path(sys.executable).parent / "multi-model-server"


def java_executable() -> str | None:
    """The java binary MMS will use (``$JAVA_HOME/bin/java`` or ``java`` on PATH)."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        return str(candidate) if os.access(candidate, os.X_OK) else None
    return shutil.which("java")


def mms_unavailable_reason() -> str | None:
    """Why a real MMS cannot be started here, or ``None`` when it can."""
    exe = mms_executable()
    if not os.access(exe, os.X_OK):
        return f"multi-model-server not found at {exe}"
    if java_executable() is None:
        return "java not found (set JAVA_HOME or put java on PATH)"
    return None


def free_port(host: str = "127.0.0.1") -> int:
    """A currently free TCP port that MMS accepts.

    MMS rejects ports >= 32767 ("Invalid port number"), and Linux hands out
    ephemeral ports from 32768 up, so binding port 0 is no use: probe random
    ports below the ephemeral range instead.
    """
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randint(_PORT_LOW, _PORT_HIGH)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {_PORT_LOW}-{_PORT_HIGH} on {host}")


def _tail(path: Path, max_bytes: int = 8000) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            return f.read().decode("utf-8", errors="replace")
    except OSError as e:
        return f"<no log: {e}>"


def _alive(proc: psutil.Process) -> bool:
    """True while ``proc`` is running (a zombie counts as gone)."""
    try:
        return bool(proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def _is_mms_java(pid: int) -> bool:
    """True if ``pid`` is a live MMS java frontend (not a recycled pid)."""
    try:
        proc = psutil.Process(pid)
        return _alive(proc) and _JAVA_MAIN in proc.cmdline()
    except psutil.Error:
        return False


def _wait_gone(procs: Iterable[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait until every process is gone; return those still alive at ``timeout``."""
    deadline = time.monotonic() + timeout
    remaining = [p for p in procs if _alive(p)]
    while remaining and time.monotonic() < deadline:
        time.sleep(0.05)
        remaining = [p for p in remaining if _alive(p)]
    return remaining


def _signal_all(procs: Iterable[psutil.Process], sig: signal.Signals) -> None:
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.send_signal(sig)


class MMSServer:
    """A real multi-model-server on 127.0.0.1, owned by a test."""

    def __init__(
        self,
        *,
        port: int | None = None,
        workdir: Path,
        handler: str = "mms_handler:handle",
        extra_properties: Mapping[str, str] | None = None,
    ) -> None:
        self.workdir = Path(workdir).resolve()
        self.handler = handler
        self.extra_properties = dict(extra_properties or {})
        self._requested_port = port
        self.port = port if port is not None else 0
        self.config_path = self.workdir / "config.properties"
        self.log_path = self.workdir / "mms.log"
        self.logs_dir = self.workdir / "logs"
        self.pythonpath_dir = self.workdir / "pythonpath"
        self.tmpdir = self.workdir / "tmp"
        self._own_short_tmpdir = False
        self._pid: int | None = None
        self._java: psutil.Process | None = None
        self._pgid: int | None = None
        self._http = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    # ------------------------------------------------------------------ basics

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        """The java server's pid (from ``$TMPDIR/.model_server.pid``)."""
        if self._pid is None:
            self._pid = self._read_pid()
        if self._pid is None:
            raise RuntimeError("multi-model-server is not running (no pid file)")
        return self._pid

    @property
    def pid_file(self) -> Path:
        return self.tmpdir / PID_FILE_NAME

    def _read_pid(self) -> int | None:
        try:
            text = self.pid_file.read_text().strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None

    def log_tail(self, max_bytes: int = 8000) -> str:
        return _tail(self.log_path, max_bytes)

    # --------------------------------------------------------------- lifecycle

    def _properties(self) -> dict[str, str]:
        address = self.url
        props = {
            "inference_address": address,
            "management_address": address,
            "model_store": "/",
            "default_service_handler": self.handler,
            "default_workers_per_model": "1",
            "decode_input_request": "false",
            "number_of_gpu": "0",
            "number_of_netty_threads": "2",
            "netty_client_threads": "2",
            "default_response_timeout": "60",
            "unregister_model_timeout": "60",
            # The metric collector is a python process spawned at start and then
            # every interval; once at start is enough for tests.
            "metric_time_interval": "3600",
            "async_logging": "false",
        }
        props.update(self.extra_properties)
        return props

    def _prepare_dirs(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(exist_ok=True)
        if len(str(self.workdir / "tmp")) > _MAX_TMPDIR_LEN:
            self.tmpdir = Path(tempfile.mkdtemp(prefix="mms-"))
            self._own_short_tmpdir = True
        else:
            self.tmpdir = self.workdir / "tmp"
            self.tmpdir.mkdir(exist_ok=True)
        stale = self._read_pid()
        if stale is not None:
            if _is_mms_java(stale):
                raise RuntimeError(f"an MMS (pid {stale}) already runs with TMPDIR {self.tmpdir}")
            self.pid_file.unlink(missing_ok=True)  # else `--start` refuses to start
        # Handler modules: symlink, never put tests/servers (holding mms.py) on the path.
        self.pythonpath_dir.mkdir(exist_ok=True)
        module = self.handler.split(":", 1)[0].removesuffix(".py").split("/")[-1]
        source = SERVERS_DIR / f"{module}.py"
        if source.is_file() and module != "mms":
            link = self.pythonpath_dir / source.name
            link.unlink(missing_ok=True)
            link.symlink_to(source)

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["TMPDIR"] = str(self.tmpdir)
        env["TEMP"] = str(self.tmpdir)  # java.io.tmpdir: worker Unix sockets
        env["LOG_LOCATION"] = str(self.logs_dir)
        env["METRICS_LOCATION"] = str(self.logs_dir)
        # Drop tests/servers if the caller's PYTHONPATH has it: its mms.py shadows `mms`.
        inherited = [
            p
            for p in env.get("PYTHONPATH", "").split(os.pathsep)
            if p and Path(p).resolve() != SERVERS_DIR
        ]
        env["PYTHONPATH"] = os.pathsep.join([str(self.pythonpath_dir), *inherited])
        env.pop("PYTHONSTARTUP", None)
        return env

    def start(self, timeout: float = 60.0) -> MMSServer:
        """Start the server and wait for ``GET /ping`` to answer 200.

        Raises ``RuntimeError`` with the tail of the server log on failure (after
        cleaning up whatever was started). A port picked here that turns out to be
        taken is replaced by another one, at most three times.
        """
        if self._pid is not None:
            raise RuntimeError(f"MMSServer already started (pid {self._pid})")
        reason = mms_unavailable_reason()
        if reason is not None:
            raise RuntimeError(reason)
        deadline = time.monotonic() + timeout
        attempts = 1 if self._requested_port is not None else 3
        for attempt in range(1, attempts + 1):
            self.port = self._requested_port if self._requested_port is not None else free_port()
            log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
            failure = self._start_once(deadline)
            if failure is None:
                return self
            new_log = self._log_since(log_offset)
            tail = new_log[-8000:]
            with contextlib.suppress(Exception):
                self.stop()
            if attempt < attempts and "Address already in use" in new_log:
                continue
            raise RuntimeError(
                f"{failure} ({self.url}, workdir {self.workdir})\n--- log tail ---\n{tail}"
            )
        raise AssertionError("unreachable")

    def _log_since(self, offset: int) -> str:
        try:
            with self.log_path.open("rb") as f:
                f.seek(offset)
                return f.read().decode("utf-8", errors="replace")
        except OSError as e:
            return f"<no log: {e}>"

    def _start_once(self, deadline: float) -> str | None:
        """One start attempt; returns a failure message or ``None`` once healthy."""
        self._prepare_dirs()
        self.config_path.write_text(
            "".join(f"{k}={v}\n" for k, v in self._properties().items()), encoding="utf-8"
        )
        with self.log_path.open("ab") as log:
            # The launcher spawns java (inheriting this log as stdout) and exits.
            try:
                launcher = subprocess.run(
                    [str(mms_executable()), "--start", "--mms-config", str(self.config_path)],
                    cwd=self.workdir,
                    env=self._env(),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # java and its workers share this process group
                    timeout=max(1.0, deadline - time.monotonic()),
                    check=False,
                )
            except subprocess.TimeoutExpired:
                return "multi-model-server --start did not return"
        pid = self._read_pid()
        if pid is None:
            return f"multi-model-server --start exited {launcher.returncode} and wrote no pid file"
        self._pid = pid
        with contextlib.suppress(OSError):
            # == the launcher's pid: java and every worker share this process group.
            self._pgid = os.getpgid(pid)
        try:
            java = self._java = psutil.Process(pid)
        except psutil.Error:
            return f"multi-model-server (java pid {pid}) exited during startup"
        while True:
            if not _alive(java):
                return f"multi-model-server (java pid {pid}) exited during startup"
            with contextlib.suppress(OSError):
                # Make sure the 200 comes from our java, not from whoever holds the port.
                if self._request("GET", "/ping", timeout=2.0)[0] == 200 and self._listening(java):
                    return None
            if time.monotonic() > deadline:
                return "multi-model-server did not answer /ping with 200 in time"
            time.sleep(0.1)

    def _listening(self, java: psutil.Process) -> bool:
        try:
            conns = java.net_connections(kind="tcp")
        except psutil.Error:
            return False
        return any(
            c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == self.port for c in conns
        )

    def _processes(self) -> list[psutil.Process]:
        """The java server, its descendants and anything left in its process group."""
        procs: dict[int, psutil.Process] = {}
        java = self._java
        if java is not None and _alive(java):
            procs[java.pid] = java
            with contextlib.suppress(psutil.Error):
                for child in java.children(recursive=True):
                    procs[child.pid] = child
        if self._pgid is not None:
            me = os.getpid()
            for p in psutil.process_iter():
                if p.pid in procs or p.pid == me:
                    continue
                with contextlib.suppress(OSError, psutil.Error):
                    if os.getpgid(p.pid) == self._pgid:
                        procs[p.pid] = p
        return [p for p in procs.values() if _alive(p)]

    def _adopt_from_pid_file(self) -> None:
        """Take over a server started by another ``MMSServer`` on the same workdir."""
        pid = self._read_pid()
        if pid is None:
            return
        if _is_mms_java(pid):
            with contextlib.suppress(psutil.Error, OSError):
                self._java = psutil.Process(pid)
                self._pid, self._pgid = pid, os.getpgid(pid)

    def worker_pids(self) -> list[int]:
        """Pids of the python worker processes (all descendants of java)."""
        return sorted(p.pid for p in self._processes() if p.pid != self._pid)

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the server; afterwards no java or worker process of it is left."""
        if self._java is None:
            self._adopt_from_pid_file()
        if self._java is None and self._pgid is None:
            self.pid_file.unlink(missing_ok=True)
            self._pid = None
            self._cleanup_tmpdir()
            return
        deadline = time.monotonic() + timeout
        procs = self._processes()
        if self._java is not None and _alive(self._java) and self.pid_file.exists():
            # `--stop` signals whatever pid the file names: only run it for our java.
            with (
                contextlib.suppress(subprocess.SubprocessError, OSError),
                self.log_path.open("ab") as log,
            ):
                subprocess.run(
                    [str(mms_executable()), "--stop"],
                    cwd=self.workdir,
                    env=self._env(),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=max(1.0, deadline - time.monotonic()),
                    check=False,
                )
        # Anything spawned meanwhile (or orphaned by java's death) is in the group.
        procs = list({p.pid: p for p in procs + self._processes()}.values())
        remaining = _wait_gone(procs, max(0.5, (deadline - time.monotonic()) / 2))
        if remaining:
            _signal_all(remaining, signal.SIGTERM)
            remaining = _wait_gone(remaining, max(0.5, deadline - time.monotonic()))
        remaining = list({p.pid: p for p in remaining + self._processes()}.values())
        if remaining:
            _signal_all(remaining, signal.SIGKILL)
            remaining = _wait_gone(remaining, 5.0)
        self.pid_file.unlink(missing_ok=True)
        self._pid = None
        self._java = None
        self._pgid = None
        self._cleanup_tmpdir()
        if remaining:
            raise RuntimeError(f"MMS processes survived SIGKILL: {[p.pid for p in remaining]}")

    def _cleanup_tmpdir(self) -> None:
        # Workers killed by `--stop` (SIGKILL) leave their Unix sockets behind.
        for sock in self.tmpdir.glob(".mms.sock.*"):
            sock.unlink(missing_ok=True)
        if self._own_short_tmpdir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self._own_short_tmpdir = False

    def __enter__(self) -> MMSServer:
        if self._pid is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -------------------------------------------------------------------- HTTP

    def _request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        *,
        content_type: str | None = None,
        timeout: float = 60.0,
    ) -> tuple[int, bytes]:
        headers = {"Content-Type": content_type} if content_type else {}
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=headers)
        try:
            with self._http.open(req, timeout=timeout) as resp:
                return int(resp.status), bytes(resp.read())
        except urllib.error.HTTPError as e:
            with e:
                return int(e.code), bytes(e.read())

    def _json(self, method: str, path: str, body: Any = None, timeout: float = 60.0) -> Any:
        data = None if body is None else json.dumps(body).encode("utf-8")
        status, payload = self._request(
            method, path, data, content_type="application/json", timeout=timeout
        )
        if status != 200:
            raise RuntimeError(
                f"{method} {path} -> HTTP {status}: {payload.decode('utf-8', 'replace')}"
            )
        return json.loads(payload) if payload.strip() else None

    @staticmethod
    def _quote(name: str) -> str:
        return urllib.parse.quote(name, safe="")

    def ping(self) -> int:
        return self._request("GET", "/ping", timeout=5.0)[0]

    def register(self, name: str, model_dir: Path) -> None:
        """Load an extracted model directory as model ``name`` (SageMaker MME style)."""
        self._json("POST", "/models", {"model_name": name, "url": str(Path(model_dir).resolve())})

    def invoke(
        self, name: str, body: bytes, *, content_type: str = "application/json"
    ) -> tuple[int, bytes]:
        return self._request(
            "POST", f"/models/{self._quote(name)}/invoke", body, content_type=content_type
        )

    def models(self) -> list[str]:
        names: list[str] = []
        token: str | None = None
        while True:
            query = "?limit=100" + (f"&next_page_token={self._quote(token)}" if token else "")
            page = self._json("GET", "/models" + query) or {}
            names.extend(str(m["modelName"]) for m in page.get("models", []))
            token = page.get("nextPageToken")
            if not token:
                return names

    def describe(self, name: str) -> Any:
        return self._json("GET", f"/models/{self._quote(name)}")

    def unregister(self, name: str) -> None:
        self._json("DELETE", f"/models/{self._quote(name)}")

    def reset(self) -> None:
        """Unregister every model."""
        for name in self.models():
            self.unregister(name)
