"""The container API the SageMaker MME agent drives: load a model folder, invoke it, unload it.

:class:`MMSContainer` runs a real multi-model-server (what the SageMaker framework containers run
for multi-model endpoints) under the mme-local server: its own properties file, its own
``TMPDIR``/``TEMP`` (pid file and worker sockets), loopback only, in multi-model mode
(``SAGEMAKER_MULTI_MODEL=true``) with the SageMaker inference toolkit's handler service as its
default service (:mod:`mlops_cli.mme.framework_handler_service`): a model folder with its own
``MAR-INF/MANIFEST.json`` runs the handler that manifest names, any other the toolkit's
``code/inference.py`` conventions, exactly as in the framework containers. Calls go over keep-alive HTTP connections, one per
thread, with Nagle disabled (``http.client`` sets ``TCP_NODELAY``).

A container also builds the head of its invoke request as bytes (:meth:`Container.invoke_head`)
and says where it goes (:attr:`Container.address`): mme-local's event loop sends the request on its
own non-blocking connections (:mod:`mlops_cli.mme.upstream`), so a warm invocation never blocks.
"""

from __future__ import annotations

import contextlib
import http.client
import importlib.util
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from mlops_cli.errors import ExtraNotInstalledError, ServerError

_MMS_PORTS = (20000, 32766)  # MMS refuses ports >= 32767; stay below the ephemeral range
_MAX_TMPDIR = 80  # MMS appends "/.mms.sock.<port>" and sun_path holds 108 bytes


class ContainerError(ServerError):
    """The container refused a load, or could not be reached."""

    def __init__(self, message: str, *, status: int = 500) -> None:
        super().__init__(message)
        self.status = status


@dataclass(slots=True)
class ContainerReply:
    status: int
    body: bytes
    content_type: str


class Container(Protocol):
    kind: str
    reply_type: str  # the Content-Type of an answer that names none

    @property
    def url(self) -> str: ...

    @property
    def address(self) -> tuple[str, int]:
        """Where invoke requests are sent (a keep-alive HTTP/1.1 server)."""
        ...

    def load(self, name: str, model_dir: Path) -> None:
        """Load ``model_dir`` as ``name``; :class:`ContainerError` when refused (status 409:
        the container already holds a model of that name)."""
        ...

    def unload(self, name: str) -> None: ...
    def invoke(self, name: str, body: bytes, content_type: str, accept: str) -> ContainerReply: ...

    def invoke_head(self, name: str, content_type: str, accept: str) -> bytes:
        """The request line and headers that :meth:`invoke` sends, as bytes, without
        ``Content-Length`` and the blank line (:func:`with_body` adds them). No I/O."""
        ...

    def stop(self) -> None: ...


def post_head(host: str, port: int, path: str, headers: dict[str, str]) -> bytes:
    """The head of a keep-alive ``POST``, to be completed by :func:`with_body`."""
    head = f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
    return (head + "".join(f"{k}: {v}\r\n" for k, v in headers.items())).encode("latin-1")


def with_body(head: bytes, body: bytes) -> bytes:
    """A complete request: ``head`` (from :func:`post_head`), ``Content-Length``, ``body``."""
    return b"%sContent-Length: %d\r\n\r\n%s" % (head, len(body), body)


class HttpPool:
    """One keep-alive HTTP connection per thread to ``host:port``."""

    def __init__(self, host: str, port: int, timeout: float = 120.0) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self._local = threading.local()

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes, str]:
        for attempt in (1, 2):
            conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
            if conn is None:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
                self._local.conn = conn
            try:
                conn.request(method, path, body=body, headers=headers or {})
                response = conn.getresponse()
                data = response.read()
                return response.status, data, response.getheader("Content-Type", "")
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # A keep-alive connection the server had closed: the request never ran.
                self._drop(conn)
                if attempt == 2:
                    raise
            except (OSError, http.client.HTTPException):
                self._drop(conn)
                raise
        raise AssertionError("unreachable")

    def _drop(self, conn: http.client.HTTPConnection) -> None:
        conn.close()
        self._local.conn = None


class FastHttp:
    """A minimal HTTP/1.1 keep-alive client for the hot path (one request bytes write, a
    hand-parsed response): ``http.client`` parses every response's headers with the email
    parser, which costs more than the rest of a proxied call. One connection per thread."""

    def __init__(self, host: str, port: int, timeout: float = 120.0) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self._local = threading.local()

    def _connect(self) -> tuple[socket.socket, Any]:
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pair = (sock, sock.makefile("rb"))
        self._local.pair = pair
        return pair

    def _drop(self) -> None:
        pair = getattr(self._local, "pair", None)
        self._local.pair = None
        if pair is not None:
            with contextlib.suppress(OSError):
                pair[1].close()
                pair[0].close()

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, str]:
        return self.send(with_body(post_head(self.host, self.port, path, headers), body))

    def send(self, request: bytes) -> tuple[int, bytes, str]:
        """Send one complete request; (status, body, content type) of the response."""
        for attempt in (1, 2):
            pair = getattr(self._local, "pair", None)
            fresh = pair is None
            sock, reader = pair if pair is not None else self._connect()
            try:
                sock.sendall(request)
                return self._response(reader)
            except (ConnectionError, http.client.HTTPException, OSError):
                self._drop()
                # A reused connection the server had closed: the request never ran; retry once.
                if fresh or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _response(self, reader: Any) -> tuple[int, bytes, str]:
        status_line = reader.readline(65537)
        if not status_line:
            raise http.client.RemoteDisconnected("the container closed the connection")
        status = int(status_line.split(b" ", 2)[1])
        length, chunked, content_type, close = -1, False, "", False
        while True:
            line = reader.readline(65537)
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.partition(b":")
            key = name.strip().lower()
            if key == b"content-length":
                length = int(value)
            elif key == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif key == b"content-type":
                content_type = value.strip().decode("latin-1")
            elif key == b"connection":
                close = value.strip().lower() == b"close"
        if chunked:
            parts = []
            while (size := int(reader.readline(65537).split(b";")[0], 16)) > 0:
                parts.append(reader.read(size))
                reader.readline(65537)
            while reader.readline(65537) not in (b"\r\n", b"\n", b""):
                pass
            data = b"".join(parts)
        elif length >= 0:
            data = reader.read(length)
        else:
            data, close = reader.read(), True
        if close:
            self._drop()
        return status, data, content_type


def _free_mms_port() -> int:
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randint(*_MMS_PORTS)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise ServerError("no free port for multi-model-server below 32767")


HANDLER_SERVICE = "sagemaker_mme_handler_service"


def mms_executable() -> Path:
    return Path(sys.executable).parent / "multi-model-server"


def mme_extra_missing() -> str | None:
    """What of the ``mme`` extra is missing (multi-model-server, the SageMaker inference
    toolkit), or None when both are installed."""
    if not os.access(mms_executable(), os.X_OK):
        return "multi-model-server"
    if importlib.util.find_spec("sagemaker_inference") is None:
        return "sagemaker-inference"
    return None


class MMSContainer:
    """A multi-model-server process in ``workdir`` (started by :meth:`start`)."""

    kind = "mms"
    reply_type = "application/octet-stream"

    def __init__(self, workdir: Path, *, workers_per_model: int = 1) -> None:
        self.workdir = workdir
        self.workers_per_model = workers_per_model
        self.port = 0
        self.tmpdir = workdir / "tmp"
        self._own_tmpdir = False
        self._http: HttpPool | None = None
        self._fast: FastHttp | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            TMPDIR=str(self.tmpdir),
            TEMP=str(self.tmpdir),  # java.io.tmpdir: the worker sockets
            LOG_LOCATION=str(self.workdir / "logs"),
            METRICS_LOCATION=str(self.workdir / "logs"),
            PYTHONPATH=str(self.workdir / "pythonpath"),
            SAGEMAKER_MULTI_MODEL="true",  # the toolkit's multi-model mode, as the container sets
        )
        env.pop("SAGEMAKER_PROGRAM", None)  # the toolkit's default: code/inference.py
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        return env

    def start(self, timeout: float = 90.0) -> MMSContainer:
        """Start the server and wait until ``GET /ping`` answers 200."""
        missing = mme_extra_missing()
        if missing is not None:
            raise ExtraNotInstalledError(feature=f"mme-local's container ({missing})", extra="mme")
        if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
            raise ServerError("multi-model-server needs a Java runtime (java on PATH)")
        (self.workdir / "logs").mkdir(parents=True, exist_ok=True)
        handler_dir = self.workdir / "pythonpath"
        handler_dir.mkdir(exist_ok=True)
        shutil.copyfile(
            Path(__file__).with_name("framework_handler_service.py"),
            handler_dir / f"{HANDLER_SERVICE}.py",
        )
        if len(str(self.tmpdir)) > _MAX_TMPDIR:
            self.tmpdir = Path(tempfile.mkdtemp(prefix="mlops-mms-"))
            self._own_tmpdir = True
        self.tmpdir.mkdir(exist_ok=True)
        self.port = _free_mms_port()
        config = self.workdir / "config.properties"
        properties = {
            "inference_address": self.url,
            "management_address": self.url,
            "model_store": "/",
            "default_service_handler": HANDLER_SERVICE,  # a module with one handler class
            "default_workers_per_model": str(self.workers_per_model),
            "decode_input_request": "false",
            "number_of_gpu": "0",
            "number_of_netty_threads": "4",
            "netty_client_threads": "4",
            "default_response_timeout": "120",
            "unregister_model_timeout": "60",
            "metric_time_interval": "3600",
            "async_logging": "false",
        }
        config.write_text("".join(f"{k}={v}\n" for k, v in properties.items()))
        with open(self.workdir / "mms.log", "ab") as log:
            subprocess.run(
                [str(mms_executable()), "--start", "--mms-config", str(config)],
                cwd=self.workdir,
                env=self._env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
        self._http = HttpPool("127.0.0.1", self.port)
        self._fast = FastHttp("127.0.0.1", self.port)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, http.client.HTTPException):
                if self._http.request("GET", "/ping")[0] == 200:
                    return self
            if self._java_pid() is None and time.monotonic() > deadline - timeout + 5:
                break
            time.sleep(0.1)
        self.stop()
        raise ServerError(f"multi-model-server did not start; see {self.workdir / 'mms.log'}")

    def _java_pid(self) -> int | None:
        try:
            text = (self.tmpdir / ".model_server.pid").read_text().strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None

    def _pool(self) -> HttpPool:
        if self._http is None:
            raise ContainerError("multi-model-server is not started")
        return self._http

    def load(self, name: str, model_dir: Path) -> None:
        body = json.dumps({"model_name": name, "url": str(model_dir)}).encode()
        status, data, _ = self._pool().request(
            "POST", "/models", body, {"Content-Type": "application/json"}
        )
        if status != 200:  # 409: the name is taken; the agent decides what that means
            raise ContainerError(_message(data) or f"HTTP {status}", status=status)

    def unload(self, name: str) -> None:
        status, data, _ = self._pool().request("DELETE", f"/models/{_quote(name)}")
        if status not in (200, 404):
            raise ContainerError(_message(data) or f"HTTP {status}", status=status)

    def invoke_head(self, name: str, content_type: str, accept: str) -> bytes:
        headers = {"Content-Type": content_type or "application/json"}
        if accept:
            headers["Accept"] = accept
        return post_head("127.0.0.1", self.port, f"/models/{_quote(name)}/invoke", headers)

    def invoke(self, name: str, body: bytes, content_type: str, accept: str) -> ContainerReply:
        if self._fast is None:
            raise ContainerError("multi-model-server is not started")
        request = with_body(self.invoke_head(name, content_type, accept), body)
        status, data, reply_type = self._fast.send(request)
        return ContainerReply(status, data, reply_type or self.reply_type)

    def stop(self) -> None:
        pid = self._java_pid()
        if pid is not None:
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                subprocess.run(
                    [str(mms_executable()), "--stop"],
                    cwd=self.workdir,
                    env=self._env(),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    timeout=20,
                    check=False,
                )
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and _alive(pid):
                time.sleep(0.1)
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        (self.tmpdir / ".model_server.pid").unlink(missing_ok=True)
        if self._own_tmpdir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _quote(name: str) -> str:
    return urllib.parse.quote(name, safe="")


def _message(data: bytes) -> str:
    text = data.decode("utf-8", errors="replace").strip()
    with contextlib.suppress(ValueError):
        parsed = json.loads(text)
        if isinstance(parsed, dict):
            return str(parsed.get("message") or parsed.get("Message") or text)
    return text
