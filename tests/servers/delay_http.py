"""A loopback HTTP/1.1 server with a controllable delay and a stall switch, for load-test tests.

Every request (any method, any path) is answered ``200 {"ok": true, ...}`` after ``delay_ms``. While
the server is stalled it neither starts nor finishes a request: what arrives waits until the stall
ends and then still takes its delay; what was being processed is answered at the end of the stall.
``POST /endpoints/<name>/invocations`` answers like SageMaker runtime (the JSON echoes the
``X-Amzn-SageMaker-Target-Model`` header), so boto3 can be pointed here with
``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME``.

Control (answered at once, stall or not): ``POST /control`` with a JSON object of any of
``delay_ms``, ``stall_s`` (stall now, for that long), ``shutdown_after_s`` (stop listening and drop
every connection after that long), ``error_status`` with ``error_every`` (answer every Nth request
with that status, 0 for none; on the SageMaker route with the ``X-Amzn-ErrorType`` that status
means there, e.g. 403 AccessDeniedException); ``GET /control`` returns the settings and the
request count.

What the server received, for tests of what a client sends: ``GET /control`` also returns
``seen``: how many requests carried each distinct body (the first 256 bodies), each
``X-Amzn-SageMaker-Target-Model``, and a SigV4 ``Authorization`` header, and how many were
answered with ``error_status``; ``POST /control`` with
``{"reset": true}`` forgets them and sets the request count back to 0. ``GET /v2/models/<name>``
answers KServe v2 model metadata (one input ``x``, FP32, shape [-1]; not counted as a request) and
``POST /v2/models/<name>/infer`` a KServe v2 response, so a Triton HTTP client can be pointed here.

Run ``python -m tests.servers.delay_http`` (prints ``PORT <n>``), or use :class:`DelayServer`,
which starts it as a subprocess on 127.0.0.1 and a free port and stops it by its pid.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any, cast

import httptools

REPO_ROOT = Path(__file__).resolve().parent.parent.parent


class _State:
    def __init__(self) -> None:
        self.delay_s = 0.0
        self.stall_until = 0.0
        self.requests = 0
        self.error_status = 0
        self.error_every = 1
        self.server: asyncio.Server | None = None
        self.connections: set[asyncio.Transport] = set()
        self.bodies: dict[str, int] = {}
        self.target_models: dict[str, int] = {}
        self.signed = 0
        self.failed = 0

    def saw(self, body: bytes, headers: dict[bytes, bytes]) -> None:
        text = body.decode(errors="replace")
        if text in self.bodies or len(self.bodies) < MAX_BODIES_SEEN:
            self.bodies[text] = self.bodies.get(text, 0) + 1
        target = headers.get(b"x-amzn-sagemaker-target-model")
        if target is not None:
            name = target.decode()
            self.target_models[name] = self.target_models.get(name, 0) + 1
        if headers.get(b"authorization", b"").startswith(b"AWS4-HMAC-SHA256 "):
            self.signed += 1

    def seen(self) -> dict[str, Any]:
        return {
            "bodies": dict(self.bodies),
            "target_models": dict(self.target_models),
            "signed": self.signed,
            "failed": self.failed,
        }

    def forget(self) -> None:
        self.requests = 0
        self.bodies.clear()
        self.target_models.clear()
        self.signed = 0
        self.failed = 0

    def stalled(self, now: float) -> bool:
        return now < self.stall_until


MAX_BODIES_SEEN = 256
STATE = _State()
# KServe v2 metadata of every model the server pretends to hold.
V2_INPUTS = [{"name": "x", "datatype": "FP32", "shape": [-1]}]
V2_OUTPUTS = [{"name": "y", "datatype": "FP32", "shape": [-1]}]


# Reason phrase and SageMaker error type of the statuses the test server can answer with.
_ERRORS = {
    403: ("Forbidden", "AccessDeniedException"),
    404: ("Not Found", "ValidationError"),
    500: ("Internal Server Error", "InternalFailure"),
    503: ("Service Unavailable", "ServiceUnavailable"),
}


class _Handler(asyncio.Protocol):
    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.body = b""
        self.headers: dict[bytes, bytes] = {}
        self.loop = asyncio.get_running_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        STATE.connections.add(self.transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            STATE.connections.discard(self.transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.close()

    def on_message_begin(self) -> None:
        self.url, self.body, self.headers = b"", b"", {}

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        path = self.url.split(b"?")[0]
        method = self.parser.get_method()
        if path == b"/control":
            self._control(method)
            return
        if method == b"GET" and path.startswith(b"/v2/models/"):  # metadata: not load, not counted
            self._write(json.dumps(_kserve_v2(path, method)).encode())
            return
        STATE.requests += 1
        STATE.saw(self.body, self.headers)
        reply: dict[str, Any] = {"ok": True}
        status, headers = "200 OK", ""
        sagemaker = path.startswith(b"/endpoints/")
        if sagemaker:
            target = self.headers.get(b"x-amzn-sagemaker-target-model", b"").decode()
            reply = {"endpoint": path.split(b"/")[2].decode(), "target_model": target}
        if path.startswith(b"/v2/models/"):
            reply = _kserve_v2(path, method)
        if STATE.error_status and STATE.requests % STATE.error_every == 0:
            reason, error_type = _ERRORS.get(STATE.error_status, ("Error", "Error"))
            status = f"{STATE.error_status} {reason}"
            STATE.failed += 1
            reply = {"message": f"test server answers {STATE.error_status}"}
            if sagemaker:
                headers = f"X-Amzn-ErrorType: {error_type}\r\n"
        payload = json.dumps(reply).encode()
        now = time.monotonic()
        begin = STATE.stall_until if STATE.stalled(now) else now
        self.loop.call_later(begin + STATE.delay_s - now, self._finish, payload, status, headers)

    def _finish(self, payload: bytes, status: str = "200 OK", headers: str = "") -> None:
        now = time.monotonic()
        if STATE.stalled(now):
            self.loop.call_later(STATE.stall_until - now, self._finish, payload, status, headers)
            return
        self._write(payload, status, headers)

    def _write(self, payload: bytes, status: str = "200 OK", headers: str = "") -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(
            f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{headers}"
            f"Content-Length: {len(payload)}\r\n\r\n".encode()
            + payload
        )

    def _control(self, method: bytes) -> None:
        if method == b"POST":
            settings = json.loads(self.body or b"{}")
            if "delay_ms" in settings:
                STATE.delay_s = float(settings["delay_ms"]) / 1000
            if "stall_s" in settings:
                STATE.stall_until = time.monotonic() + float(settings["stall_s"])
            if "error_status" in settings:
                STATE.error_status = int(settings["error_status"])
                STATE.error_every = max(1, int(settings.get("error_every", 1)))
            if settings.get("reset"):
                STATE.forget()
            if "shutdown_after_s" in settings:
                self.loop.call_later(float(settings["shutdown_after_s"]), _shutdown)
        status: dict[str, Any] = {"delay_ms": STATE.delay_s * 1000, "requests": STATE.requests}
        status["seen"] = STATE.seen()
        self._write(json.dumps(status).encode())


def _kserve_v2(path: bytes, method: bytes) -> dict[str, Any]:
    """KServe v2 metadata (GET /v2/models/<name>) or an infer response (POST .../infer)."""
    name = path.split(b"/")[3].decode()
    if method == b"GET":
        return {"name": name, "versions": ["1"], "platform": "delay", "inputs": V2_INPUTS,
                "outputs": V2_OUTPUTS}  # fmt: skip
    return {"model_name": name, "outputs": [{**V2_OUTPUTS[0], "shape": [1], "data": [0.0]}]}


def _shutdown() -> None:
    if STATE.server is not None:
        STATE.server.close()
    for transport in list(STATE.connections):
        transport.abort()


async def _serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    STATE.server = await loop.create_server(_Handler, "127.0.0.1", port, reuse_address=True)
    bound = STATE.server.sockets[0].getsockname()[1]
    print(f"PORT {bound}", flush=True)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()


class DelayServer:
    """The server above as a subprocess on 127.0.0.1 (a free port), stopped by its own pid."""

    def __init__(self, *, delay_ms: float = 0.0) -> None:
        self.delay_ms = delay_ms
        self.process: subprocess.Popen[str] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> DelayServer:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.servers.delay_http"],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("PORT "):
            self.stop()
            raise RuntimeError(f"delay server did not start: {line!r}")
        self.port = int(line.split()[1])
        self.control(delay_ms=self.delay_ms)
        return self

    def control(self, **settings: float) -> dict[str, Any]:
        request = urllib.request.Request(
            self.url + "/control", data=json.dumps(settings).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            result: dict[str, Any] = json.loads(response.read())
        return result

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        self.process = None

    def __enter__(self) -> DelayServer:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.run(_serve(int(os.environ.get("DELAY_SERVER_PORT", "0"))))
    except ImportError:
        asyncio.run(_serve(int(os.environ.get("DELAY_SERVER_PORT", "0"))))
