"""`mlops router serve` as a subprocess on 127.0.0.1 and a free port, stopped by its own pid, and a
small keep-alive client for it (http.client: the answers' status, headers and body)."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.servers.moto import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 30.0


class RouterProcess:
    """One router (``args`` added to ``router serve``), ready once ``/health/ready`` says so."""

    def __init__(self, registry: str, *args: str, env: dict[str, str] | None = None) -> None:
        self.registry = registry
        self.args = args
        self.env = {**os.environ, **(env or {})}
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log = b""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> RouterProcess:
        command = [sys.executable, "-m", "mlops_cli", "router", "serve", "--port", str(self.port)]
        command += ["--registry", self.registry, *self.args]
        self.process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=self.env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL
        )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.log = self.process.stderr.read() if self.process.stderr else b""
                raise RuntimeError(f"router exited: {self.log.decode(errors='replace')}")
            try:
                status, _, _ = RouterClient(self.url).get("/health/ready")
                if status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("router not ready in time")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=5)

    def __enter__(self) -> RouterProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class RouterClient:
    """Requests on one keep-alive connection (reopened when the router closes it)."""

    def __init__(self, url: str, *, timeout: float = 30.0) -> None:
        host, _, port = url.removeprefix("http://").partition(":")
        self.host, self.port, self.timeout = host, int(port), timeout
        self.conn: http.client.HTTPConnection | None = None

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | list[tuple[str, str]] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        conn = self.conn
        try:
            conn.putrequest(method, path, skip_accept_encoding=True)
            pairs = headers.items() if isinstance(headers, dict) else (headers or [])
            for name, value in pairs:
                conn.putheader(name, value)
            if body is not None:
                conn.putheader("Content-Type", "application/json")
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            response = conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        if response.will_close:
            self.close()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data

    def get(
        self, path: str, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        return self.request("GET", path, None, headers)

    def infer(
        self, model: str, body: Any, headers: dict[str, str] | list[tuple[str, str]]
    ) -> tuple[int, dict[str, str], bytes]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return self.request("POST", f"/v2/models/{model}/infer", data, headers)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def answer_body(x: float = 0.0) -> dict[str, Any]:
    return {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [x]}]}


def answer_of(data: bytes) -> float:
    return float(json.loads(data)["outputs"][0]["data"][0])
