"""The HTTP front of mme-local: the sagemaker-runtime wire protocol on loopback.

Runtime routes (what boto3's ``sagemaker-runtime`` client sends):

- ``POST /endpoints/<name>/invocations`` with ``X-Amzn-SageMaker-Target-Model``: the answer of
  the TargetModel, or a SageMaker error (``x-amzn-ErrorType`` header + JSON body).
- ``POST /endpoints/<name>/invocations-response-stream``: the same answer framed as AWS
  event-stream ``PayloadPart`` events. boto3 cannot send a TargetModel on this route (SageMaker
  has none), so only raw clients that set the header reach a multi-model endpoint here.

Control routes (mlops only): ``GET /ping``, ``GET /mme/status``, ``PUT /mme/endpoints/<name>``
(``{"s3_prefix", "backend", "memory_budget_mb"}``), ``GET /mme/endpoints/<name>``,
``DELETE /mme/endpoints/<name>/models/<target>``.
"""

from __future__ import annotations

import functools
import json
import os
import socket
import urllib.parse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from mlops_cli.mme.agent import Agent, AgentError
from mlops_cli.mme.eventstream import payload_part

TARGET_HEADER = "X-Amzn-SageMaker-Target-Model"
STREAM_CHUNK = 64 * 1024
BACKENDS = ("mms", "triton")


@functools.cache
def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class MMEServer(ThreadingHTTPServer):
    """A threading HTTP server whose accepted sockets have Nagle disabled."""

    daemon_threads = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], agent: Agent) -> None:
        super().__init__(address, MMEHandler)
        self.agent = agent

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        # Without this, delayed ACKs stall each small response by up to 40 ms.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock, address


class MMEHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: MMEServer
    server_version = "mme-local"

    def log_message(self, format: str, *args: Any) -> None:
        if os.environ.get("MLOPS_DEBUG"):
            super().log_message(format, *args)

    # -- plumbing ----------------------------------------------------------------------------
    # The request line and headers are parsed here, and each response is one write: the
    # standard library's email-based header parser and its several writes per response cost
    # more than the rest of a proxied call.

    fields: dict[str, str]

    def handle_one_request(self) -> None:
        try:
            line = self.rfile.readline(65537)
            if not line:
                self.close_connection = True
                return
            self.raw_requestline = line
            parts = line.decode("latin-1").rstrip("\r\n").split(" ")
            if len(parts) != 3:
                self.close_connection = True
                return
            self.command, self.path, self.request_version = parts
            fields: dict[str, str] = {}
            while True:
                header = self.rfile.readline(65537)
                if header in (b"\r\n", b"\n", b""):
                    break
                name, _, value = header.decode("latin-1").partition(":")
                fields[name.strip().lower()] = value.strip()
            self.fields = fields
            connection = fields.get("connection", "").lower()
            self.close_connection = connection == "close" or (
                self.request_version == "HTTP/1.0" and connection != "keep-alive"
            )
            handler = getattr(self, f"do_{self.command}", None)
            if handler is None:
                self._error(AgentError(405, "UnknownOperationException", "method not allowed"))
            else:
                handler()
            self.wfile.flush()
        except TimeoutError:
            self.close_connection = True

    def _header(self, name: str, default: str = "") -> str:
        return self.fields.get(name.lower(), default)

    def _body(self) -> bytes:
        length = int(self._header("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes, content_type: str, **headers: str) -> None:
        head = [
            f"HTTP/1.1 {status} {_phrase(status)}",
            f"Content-Type: {content_type}",
            f"Content-Length: {len(body)}",
            *(f"{name.replace('_', '-')}: {value}" for name, value in headers.items()),
        ]
        if self.close_connection:
            head.append("Connection: close")
        self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)

    def _json(self, status: int, data: Any) -> None:
        self._send(status, json.dumps(data).encode(), "application/json")

    def _error(self, error: AgentError) -> None:
        body = json.dumps(error.body()).encode()
        self._send(error.status, body, "application/json", x_amzn_ErrorType=error.code)

    def _parts(self) -> list[str]:
        path = urllib.parse.urlsplit(self.path).path
        return [urllib.parse.unquote(part) for part in path.strip("/").split("/")]

    # -- routes ------------------------------------------------------------------------------

    def do_GET(self) -> None:
        parts = self._parts()
        agent = self.server.agent
        try:
            if parts == ["ping"]:
                self._send(200, b"", "text/plain")
            elif parts == ["mme", "status"]:
                self._json(200, {"pid": os.getpid(), **agent.describe()})
            elif len(parts) == 3 and parts[:2] == ["mme", "endpoints"]:
                self._json(200, agent.endpoint(parts[2]).describe())
            else:
                self._error(AgentError(404, "UnknownOperationException", "unknown route"))
        except AgentError as error:
            self._error(error)

    def do_PUT(self) -> None:
        parts = self._parts()
        body = self._body()
        if len(parts) != 3 or parts[:2] != ["mme", "endpoints"]:
            self._error(AgentError(404, "UnknownOperationException", "unknown route"))
            return
        try:
            data = json.loads(body or b"{}")
            prefix = str(data["s3_prefix"])
            backend = str(data.get("backend", "mms"))
            budget = float(data.get("memory_budget_mb", 2048))
            if not prefix.startswith("s3://") or backend not in BACKENDS or budget <= 0:
                raise ValueError(prefix)
        except (ValueError, KeyError, TypeError):
            self._error(
                AgentError(
                    400,
                    "ValidationError",
                    'expected {"s3_prefix": "s3://...", "backend": "mms|triton", '
                    '"memory_budget_mb": N}',
                )
            )
            return
        created = self.server.agent.register(
            parts[2], s3_prefix=prefix, backend=backend, memory_budget_mb=budget
        )
        self._json(200, {"endpoint": parts[2], "created": created})

    def do_DELETE(self) -> None:
        parts = self._parts()
        if len(parts) != 5 or parts[:2] != ["mme", "endpoints"] or parts[3] != "models":
            self._error(AgentError(404, "UnknownOperationException", "unknown route"))
            return
        try:
            unloaded = self.server.agent.unload(parts[2], parts[4])
        except AgentError as error:
            self._error(error)
            return
        self._json(200, {"unloaded": unloaded})

    def do_POST(self) -> None:
        parts = self._parts()
        body = self._body()
        if len(parts) != 3 or parts[0] != "endpoints":
            self._error(AgentError(404, "UnknownOperationException", "unknown route"))
            return
        endpoint, route = parts[1], parts[2]
        if route not in ("invocations", "invocations-response-stream"):
            self._error(AgentError(404, "UnknownOperationException", "unknown route"))
            return
        target = self._header(TARGET_HEADER)
        try:
            if not target:
                self.server.agent.endpoint(endpoint)
                raise AgentError(
                    400,
                    "ValidationError",
                    f"Endpoint {endpoint} is a multi-model endpoint: the request must name a "
                    "TargetModel"
                    + (
                        " (InvokeEndpointWithResponseStream has no TargetModel parameter)."
                        if route != "invocations"
                        else "."
                    ),
                )
            reply = self.server.agent.invoke(
                endpoint,
                target,
                body,
                self._header("Content-Type", "application/json"),
                self._header("Accept"),
            )
        except AgentError as error:
            self._error(error)
            return
        if route == "invocations":
            self._send(
                200,
                reply.body,
                reply.content_type,
                x_Amzn_Invoked_Production_Variant="AllTraffic",
            )
            return
        frames = b"".join(
            payload_part(reply.body[offset : offset + STREAM_CHUNK])
            for offset in range(0, max(len(reply.body), 1), STREAM_CHUNK)
        )
        self._send(
            200,
            frames,
            "application/vnd.amazon.eventstream",
            X_Amzn_SageMaker_Content_Type=reply.content_type,
            x_Amzn_Invoked_Production_Variant="AllTraffic",
        )
