"""Start and stop a patched moto server (``moto_launcher.py``) for pytest fixtures.

Standard library only. The server runs in a process of its own (own session), bound to
127.0.0.1 on a free port; see ``moto_launcher.py`` for the SageMaker patches and the
failure-injection tag.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import IO

LAUNCHER = Path(__file__).resolve().with_name("moto_launcher.py")
HOST = "127.0.0.1"
REGION = "us-east-1"
_LOG_TAIL_CHARS = 4000
_PORT_ATTEMPTS = 3


def free_port(host: str = HOST) -> int:
    """Return a TCP port that was free on host a moment ago (bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class MotoServer:
    """A moto server subprocess with the mlops SageMaker test patches."""

    def __init__(
        self,
        *,
        port: int | None = None,
        creating_describes: int = 2,
        log_path: Path | None = None,
    ) -> None:
        if creating_describes < 0:
            raise ValueError("creating_describes must be >= 0")
        self._requested_port = port
        self._port: int | None = port
        self.creating_describes = creating_describes
        self._log_path = log_path
        self._own_log = False
        self._log_file: IO[bytes] | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("MotoServer has no port yet; call start() first")
        return self._port

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def log_path(self) -> Path | None:
        return self._log_path

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 20.0) -> MotoServer:
        """Launch the server and wait until it answers HTTP; RuntimeError if it cannot."""
        if self._proc is not None:
            raise RuntimeError("MotoServer already started")
        if self._log_path is None:
            fd, name = tempfile.mkstemp(prefix="moto-server-", suffix=".log")
            os.close(fd)
            self._log_path = Path(name)
            self._own_log = True
        deadline = time.monotonic() + timeout
        attempts = 1 if self._requested_port is not None else _PORT_ATTEMPTS
        while True:
            attempts -= 1
            self._port = self._requested_port if self._requested_port is not None else free_port()
            self._spawn()
            error = self._wait_ready(deadline)
            if error is None:
                return self
            exited = self._proc is not None and self._proc.poll() is not None
            self._terminate(timeout=5.0)
            # A picked port can be taken between bind(0) and the launcher's own bind:
            # if the launcher exited early, try another port while attempts and time last.
            if not exited or attempts <= 0 or time.monotonic() >= deadline:
                tail = self.log_tail()
                self.stop()
                raise RuntimeError(f"moto server {error}; log tail:\n{tail}")

    def _spawn(self) -> None:
        assert self._log_path is not None
        self._close_log()
        self._log_file = self._log_path.open("ab")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self._proc = subprocess.Popen(
            [
                sys.executable,
                str(LAUNCHER),
                "--host",
                HOST,
                "--port",
                str(self.port),
                "--creating-describes",
                str(self.creating_describes),
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )

    def _wait_ready(self, deadline: float) -> str | None:
        """None once the server answers HTTP, else a description of what went wrong."""
        proc = self._proc
        assert proc is not None
        while True:
            code = proc.poll()
            if code is not None:
                return f"exited with code {code} before answering on {self.endpoint}"
            try:
                with urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=1.0):
                    return None
            except urllib.error.HTTPError:
                return None  # any HTTP status means it is serving
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() >= deadline:
                return f"did not answer on {self.endpoint} in time"
            time.sleep(0.05)

    def reset(self) -> None:
        """Drop all moto state (every service, account and region)."""
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=10.0) as response:
            if response.status != 200:
                raise RuntimeError(f"moto reset answered HTTP {response.status}")

    def calls(self) -> list[dict[str, object]]:
        """Every AWS request since the last reset (see 5. in ``moto_launcher.py``)."""
        import json

        with urllib.request.urlopen(f"{self.endpoint}/mlops-test/calls", timeout=10.0) as response:
            calls: list[dict[str, object]] = json.loads(response.read())
        return calls

    def mutating_calls(self) -> list[str]:
        """The operations of the mutating requests since the last reset, in order."""
        return [str(call["operation"]) for call in self.calls() if call["mutating"]]

    def env(self) -> dict[str, str]:
        """Environment for boto3 clients (and subprocesses) to talk to this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
        }

    def log_tail(self, chars: int = _LOG_TAIL_CHARS) -> str:
        if self._log_path is None or not self._log_path.exists():
            return "<no log>"
        data = self._log_path.read_bytes()[-chars:]
        return data.decode("utf-8", errors="replace")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the server by its pid, SIGKILL it if it lingers; wait for it."""
        self._terminate(timeout)
        self._close_log()
        if self._own_log and self._log_path is not None:
            self._log_path.unlink(missing_ok=True)
            self._log_path = None
            self._own_log = False

    def _terminate(self, timeout: float) -> None:
        proc = self._proc
        if proc is None:
            return
        self._proc = None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> MotoServer:
        if self._proc is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
