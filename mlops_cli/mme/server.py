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

One asyncio event loop (uvloop where installed) serves every connection: requests are parsed by
httptools, and a warm invocation is forwarded on a non-blocking keep-alive connection to the
container (:mod:`mlops_cli.mme.upstream`) with callbacks only, no thread and no task. What blocks
(a model's first load: S3, extraction, the container's load; an unload that waits for requests in
flight) runs in a thread pool. On two shared cores the front's CPU per request is what its
overhead over the container is, so the hot path is kept short.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import socket
import sys
import urllib.parse
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from typing import Any, cast

import httptools

from mlops_cli.mme.agent import Agent, AgentError, EndpointState, LoadedModel
from mlops_cli.mme.containers import Container, ContainerReply
from mlops_cli.mme.eventstream import payload_part
from mlops_cli.mme.upstream import UpstreamPool

TARGET_HEADER = "X-Amzn-SageMaker-Target-Model"
STREAM_CHUNK = 64 * 1024
BACKENDS = ("mms", "triton")
_TARGET = TARGET_HEADER.lower().encode()
_ROUTES = ("invocations", "invocations-response-stream")


@functools.cache
def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _unknown_route() -> AgentError:
    return AgentError(404, "UnknownOperationException", "unknown route")


class _Request:
    __slots__ = ("body", "headers", "keep_alive", "method", "url")

    def __init__(self) -> None:
        self.method = ""
        self.url = b""
        self.headers: dict[bytes, bytes] = {}
        self.body: list[bytes] = []
        self.keep_alive = True

    def header(self, name: bytes, default: str = "") -> str:
        value = self.headers.get(name)
        return default if value is None else value.decode("latin-1").strip()

    def parts(self) -> list[str]:
        path = self.url.split(b"?", 1)[0].decode("latin-1").strip("/")
        if "%" in path:
            return [urllib.parse.unquote(part) for part in path.split("/")]
        return path.split("/")


class _Connection(asyncio.Protocol):
    """One client connection: requests are answered in the order they arrived."""

    def __init__(self, front: MMEServer) -> None:
        self.front = front
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.request = _Request()
        self.pending: deque[_Request] = deque()
        self.busy = False

    # -- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Without this, delayed ACKs stall each small response by up to 40 ms.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._bad_request()
        except httptools.HttpParserError:
            self._bad_request()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.pending.clear()

    # -- httptools callbacks -------------------------------------------------------------------

    def on_url(self, url: bytes) -> None:
        self.request.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.request.headers[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self.request.body.append(body)

    def on_message_complete(self) -> None:
        request, self.request = self.request, _Request()
        request.method = self.parser.get_method().decode("latin-1")
        request.keep_alive = self.parser.should_keep_alive()
        if self.busy:
            self.pending.append(request)
        else:
            self.busy = True
            self.front.handle(self, request)

    # -- responses -----------------------------------------------------------------------------

    def respond(
        self, request: _Request, status: int, body: bytes, content_type: str, extra: str = ""
    ) -> None:
        """Write one response (``extra``: header lines, each ending in CRLF), then serve the next
        request that arrived meanwhile."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        close = not request.keep_alive
        head = (
            f"HTTP/1.1 {status} {_phrase(status)}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n{extra}"
            + ("Connection: close\r\n\r\n" if close else "\r\n")
        )
        transport.write(head.encode("latin-1") + body)
        if close:
            transport.close()
            return
        if self.pending:
            self.front.handle(self, self.pending.popleft())
        else:
            self.busy = False

    def respond_error(self, request: _Request, error: AgentError) -> None:
        body = json.dumps(error.body()).encode()
        extra = f"x-amzn-ErrorType: {error.code}\r\n"
        self.respond(request, error.status, body, "application/json", extra)

    def respond_json(self, request: _Request, data: Any) -> None:
        self.respond(request, 200, json.dumps(data).encode(), "application/json")

    def _bad_request(self) -> None:
        request = _Request()
        request.keep_alive = False
        self.busy = True
        self.respond_error(request, AgentError(400, "BadRequest", "malformed HTTP request"))


class MMEServer:
    """mme-local's HTTP front: :meth:`start` listens, :meth:`close` stops. Runs in one event loop."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.blocking = ThreadPoolExecutor(max_workers=32, thread_name_prefix="mme-blocking")
        self._upstreams: dict[int, tuple[Container, UpstreamPool]] = {}
        self._server: asyncio.AbstractServer | None = None
        self._debug = bool(os.environ.get("MLOPS_DEBUG"))

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen on ``host:port``; the port bound."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self), host, port, backlog=256, reuse_address=True
        )
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for _, pool in self._upstreams.values():
            pool.close()
        self._upstreams.clear()
        self.blocking.shutdown(wait=False, cancel_futures=True)

    # -- dispatch ------------------------------------------------------------------------------

    def handle(self, conn: _Connection, request: _Request) -> None:
        if self._debug:
            print(f"mme-local: {request.method} {request.url.decode('latin-1')}", file=sys.stderr)
        try:
            if request.method == "POST":
                self._post(conn, request)
            elif request.method == "GET":
                self._get(conn, request)
            elif request.method == "PUT":
                self._put(conn, request)
            elif request.method == "DELETE":
                self._delete(conn, request)
            else:
                raise AgentError(405, "UnknownOperationException", "method not allowed")
        except AgentError as error:
            conn.respond_error(request, error)
        except Exception as exc:  # a bug: answer it rather than leave the client waiting
            self._internal(conn, request, exc)

    def _internal(self, conn: _Connection, request: _Request, exc: BaseException) -> None:
        print(f"mme-local: {request.method} {request.url!r} failed: {exc!r}", file=sys.stderr)
        conn.respond_error(request, AgentError(500, "InternalFailure", f"mme-local: {exc}"))

    def _run_blocking(self, conn: _Connection, request: _Request, work: Any, answer: Any) -> None:
        """Run ``work()`` in the thread pool, then ``answer(result)`` in the loop."""
        future = asyncio.get_running_loop().run_in_executor(self.blocking, work)

        def done(future: asyncio.Future[Any]) -> None:
            try:
                answer(future.result())
            except AgentError as error:
                conn.respond_error(request, error)
            except Exception as exc:
                self._internal(conn, request, exc)

        future.add_done_callback(done)

    # -- routes --------------------------------------------------------------------------------

    def _get(self, conn: _Connection, request: _Request) -> None:
        parts = request.parts()
        agent = self.agent
        if parts == ["ping"]:
            conn.respond(request, 200, b"", "text/plain")
        elif parts == ["mme", "status"]:
            conn.respond_json(request, {"pid": os.getpid(), **agent.describe()})
        elif len(parts) == 3 and parts[:2] == ["mme", "endpoints"]:
            conn.respond_json(request, agent.endpoint(parts[2]).describe())
        else:
            raise _unknown_route()

    def _put(self, conn: _Connection, request: _Request) -> None:
        parts = request.parts()
        if len(parts) != 3 or parts[:2] != ["mme", "endpoints"]:
            raise _unknown_route()
        try:
            data = json.loads(b"".join(request.body) or b"{}")
            prefix = str(data["s3_prefix"])
            backend = str(data.get("backend", "mms"))
            budget = float(data.get("memory_budget_mb", 2048))
            if not prefix.startswith("s3://") or backend not in BACKENDS or budget <= 0:
                raise ValueError(prefix)
        except (ValueError, KeyError, TypeError):
            raise AgentError(
                400,
                "ValidationError",
                'expected {"s3_prefix": "s3://...", "backend": "mms|triton", '
                '"memory_budget_mb": N}',
            ) from None
        created = self.agent.register(
            parts[2], s3_prefix=prefix, backend=backend, memory_budget_mb=budget
        )
        conn.respond_json(request, {"endpoint": parts[2], "created": created})

    def _delete(self, conn: _Connection, request: _Request) -> None:
        parts = request.parts()
        if len(parts) != 5 or parts[:2] != ["mme", "endpoints"] or parts[3] != "models":
            raise _unknown_route()
        self._run_blocking(
            conn,
            request,
            functools.partial(self.agent.unload, parts[2], parts[4]),
            lambda unloaded: conn.respond_json(request, {"unloaded": unloaded}),
        )

    def _post(self, conn: _Connection, request: _Request) -> None:
        parts = request.parts()
        if len(parts) != 3 or parts[0] != "endpoints" or parts[2] not in _ROUTES:
            raise _unknown_route()
        endpoint, stream = parts[1], parts[2] != "invocations"
        target = request.header(_TARGET)
        if not target:
            self.agent.endpoint(endpoint)
            why = (
                " (InvokeEndpointWithResponseStream has no TargetModel parameter)" if stream else ""
            )
            raise AgentError(
                400,
                "ValidationError",
                f"Endpoint {endpoint} is a multi-model endpoint: the request must name a "
                f"TargetModel{why}.",
            )
        ep = self.agent.resolve(endpoint, target)
        model = self.agent.acquire_loaded(ep, target)
        if model is not None:
            self._forward(conn, request, ep, model, stream)
            return
        self._run_blocking(
            conn,
            request,
            functools.partial(self.agent.acquire, ep, target),
            lambda model: self._forward(conn, request, ep, model, stream),
        )

    def _forward(
        self,
        conn: _Connection,
        request: _Request,
        ep: EndpointState,
        model: LoadedModel,
        stream: bool,
    ) -> None:
        """Send the acquired ``model`` its request; answer when the container does."""
        agent = self.agent
        loop = asyncio.get_running_loop()
        container = agent.started_container(ep.backend)
        if container is None:
            error = ConnectionError(f"the {ep.backend} container is not running")
            agent.finish(ep, model, 0.0, None, error)  # raises AgentError
            return
        data = container.invoke_request(
            model.container_name,
            b"".join(request.body),
            request.header(b"content-type", "application/json"),
            request.header(b"accept"),
        )
        pool = self._upstream(container)
        started = loop.time()
        reply_type = container.reply_type

        def done(reply: ContainerReply | None, error: OSError | None) -> None:
            try:
                reply = agent.finish(ep, model, loop.time() - started, reply, error)
            except AgentError as exc:
                conn.respond_error(request, exc)
                return
            content_type = reply.content_type or reply_type
            if not stream:
                extra = "x-Amzn-Invoked-Production-Variant: AllTraffic\r\n"
                conn.respond(request, 200, reply.body, content_type, extra)
                return
            body = reply.body
            frames = b"".join(
                payload_part(body[offset : offset + STREAM_CHUNK])
                for offset in range(0, max(len(body), 1), STREAM_CHUNK)
            )
            extra = (
                f"X-Amzn-SageMaker-Content-Type: {content_type}\r\n"
                "x-Amzn-Invoked-Production-Variant: AllTraffic\r\n"
            )
            conn.respond(request, 200, frames, "application/vnd.amazon.eventstream", extra)

        pool.submit(data, done)

    def _upstream(self, container: Container) -> UpstreamPool:
        entry = self._upstreams.get(id(container))
        if entry is None or entry[0] is not container:
            entry = (container, UpstreamPool(*container.address))
            self._upstreams[id(container)] = entry
        return entry[1]
