"""The invocations of inference components, in mme-local's event loop.

``POST /endpoints/<E>/invocations`` and ``/invocations-response-stream`` with
``X-Amzn-SageMaker-Inference-Component: <IC>`` (what boto3 sends for ``InferenceComponentName``).
A component checked less than a second ago whose model is loaded is sent its request at once;
any other is first resolved against the control plane and loaded in a worker thread
(:class:`~mlops_cli.mme.components.ComponentTable`, the agent's load).

The container's route is the one SageMaker's image maps ``/invocations`` to: Triton's
``/v2/models/<m>/infer``, ``/generate`` or ``/generate_stream`` after
``SAGEMAKER_TRITON_INFERENCE_TYPE``, multi-model-server's ``/models/<m>/invoke``. On
``invocations`` the whole answer is returned (a ``generate_stream`` component's whole SSE body).
On ``invocations-response-stream`` a ``generate_stream`` component's answer is passed on as it
arrives: each piece of the container's body, as httptools parses it, is one ``PayloadPart``
event of a chunked response; any other component's whole answer is framed in PayloadParts.

A stream is bounded: the container must send a byte at least every upstream timeout, and a
client more than :data:`MAX_STREAM_BACKLOG` behind is cut off (as the router cuts one). A
failure once the stream began is a ``ModelStreamError`` event, which ends the stream; before it
began, the error is SageMaker's HTTP error.
"""

from __future__ import annotations

import asyncio
import contextlib
import urllib.parse
from collections.abc import Callable
from typing import Any

from mlops_cli.mme.component_spec import ContainerStartError
from mlops_cli.mme.components import ComponentState, ComponentTable
from mlops_cli.mme.containers import Container, ContainerReply, post_head, with_body
from mlops_cli.mme.endpoint_state import LoadedModel
from mlops_cli.mme.eventstream import model_stream_error, payload_part
from mlops_cli.mme.http_front import ClientConnection, Request
from mlops_cli.mme.responses import (
    EVENT_STREAM,
    respond_answer,
    respond_error,
    stream_headers,
)
from mlops_cli.mme.runtime_errors import AgentError
from mlops_cli.mme.upstream import StreamConnection, UpstreamPool, open_stream

COMPONENT_HEADER = b"x-amzn-sagemaker-inference-component"
MAX_STREAM_BACKLOG = 8 * 1024 * 1024  # a streaming client this far behind is cut off
MAX_ERROR_BODY = 64 * 1024  # what is kept of a container's error answer
_ROUTES = ("invocations", "invocations-response-stream")
RunBlocking = Callable[[ClientConnection, Request, Callable[[], Any], Callable[[Any], None]], None]


class ComponentFront:
    """Serves invocations that name a component; see the module docstring."""

    def __init__(
        self,
        table: ComponentTable,
        *,
        run_blocking: RunBlocking,
        pool: Callable[[Container], UpstreamPool],
        timeout: float,
    ) -> None:
        self.table, self.agent = table, table.agent
        self.run_blocking, self.pool, self.timeout = run_blocking, pool, timeout
        self.loop = asyncio.get_running_loop()

    def handle(self, conn: ClientConnection, request: Request, component: str) -> None:
        """Answer ``request``; an AgentError raised here is the server's to write."""
        parts = request.parts()
        if len(parts) != 3 or parts[0] != "endpoints" or parts[2] not in _ROUTES:
            raise AgentError(404, "UnknownOperationException", "unknown route")
        endpoint, stream = parts[1], parts[2] != "invocations"
        state = self.table.cached(endpoint, component)
        if state is not None:
            model = self.agent.acquire_loaded(state.ep, state.target)
            if model is not None:
                self._send(conn, request, state, model, stream)
                return

        def acquire() -> tuple[ComponentState, LoadedModel]:
            state = self.table.resolve(endpoint, component)
            try:
                return state, self.agent.acquire(state.ep, state.target)
            except ContainerStartError as error:
                self.table.mark_failed(state, error)
                raise

        def send(got: tuple[ComponentState, LoadedModel]) -> None:
            self._send(conn, request, got[0], got[1], stream)

        self.run_blocking(conn, request, acquire, send)

    def _send(
        self,
        conn: ClientConnection,
        request: Request,
        state: ComponentState,
        model: LoadedModel,
        stream: bool,
    ) -> None:
        spec, agent = state.spec, self.agent
        container = agent.started_container(spec.container)
        if container is None:
            error = ConnectionError(f"the {spec.container} container is not running")
            agent.finish(state.ep, model, 0.0, None, error)  # raises AgentError
            return
        content_type = request.header(b"content-type", "application/json")
        accept = request.header(b"x-amzn-sagemaker-accept" if stream else b"accept")
        if spec.container == "triton":
            path = f"/v2/models/{urllib.parse.quote(model.container_name)}/{spec.inference_type}"
            head = post_head(*container.address, path, {"Content-Type": "application/json"})
        else:
            head = container.invoke_head(model.container_name, content_type, accept)
        payload = with_body(head, request.body)
        if stream and spec.inference_type == "generate_stream":
            call = _StreamCall(self, conn, request, state, model)
            call.connection = open_stream(container.address, payload, call, timeout=self.timeout)
            return
        started = self.loop.time()

        def done(reply: ContainerReply | None, error: OSError | None) -> None:
            try:
                reply = agent.finish(state.ep, model, self.loop.time() - started, reply, error)
            except AgentError as exc:
                respond_error(conn, request, exc)
                return
            answer_type = reply.content_type or container.reply_type
            respond_answer(conn, request, reply.body, answer_type, stream=stream)

        self.pool(container).submit(payload, done)


class _StreamCall:
    """One ``generate_stream`` answer passed on as PayloadPart events (an upstream Exchange)."""

    def __init__(
        self,
        front: ComponentFront,
        conn: ClientConnection,
        request: Request,
        state: ComponentState,
        model: LoadedModel,
    ) -> None:
        self.front, self.conn, self.request = front, conn, request
        self.state, self.model = state, model
        self.started = front.loop.time()
        self.connection: StreamConnection | None = None
        self.status, self.content_type = 0, ""
        self.streaming = False
        self.pieces: list[bytes] = []
        self.kept = 0

    def head(self, status: int, content_type: str) -> None:
        self.status, self.content_type = status, content_type or "text/event-stream"
        if status != 200:
            return
        self.streaming = True
        extra = stream_headers(self.content_type)
        if not self.conn.start_stream(self.request, 200, EVENT_STREAM, extra):
            self._cut("the client closed the connection")

    def body(self, data: bytes) -> None:
        if not self.streaming:  # an error answer: kept (bounded) for the error's message
            if self.kept < MAX_ERROR_BODY:
                self.pieces.append(data[: MAX_ERROR_BODY - self.kept])
                self.kept += len(self.pieces[-1])
            return
        if not self.conn.send_chunk(payload_part(data)):
            self._cut("the client closed the connection")
        elif self.conn.write_buffered() > MAX_STREAM_BACKLOG:
            self._cut(f"the client fell more than {MAX_STREAM_BACKLOG} bytes behind")

    def end(self) -> None:
        if self.streaming:
            self.conn.end_stream(self.request)
            self._account(ContainerReply(200, b"", self.content_type), None)
            return
        reply = ContainerReply(self.status, b"".join(self.pieces), self.content_type)
        try:
            reply = self._finish(reply, None)
        except AgentError as error:
            respond_error(self.conn, self.request, error)
            return
        respond_answer(self.conn, self.request, reply.body, reply.content_type, stream=True)

    def fail(self, error: OSError, answered: bool) -> None:
        if not self.streaming:
            try:
                self._finish(None, error)  # raises AgentError: the container's failure
            except AgentError as exc:
                respond_error(self.conn, self.request, exc)
            return
        name = self.state.spec.name
        message = f"The model stream of inference component {name} failed: {error}"
        self.conn.send_chunk(model_stream_error(message))
        self.conn.end_stream(self.request)
        self._account(None, error)

    def _cut(self, why: str) -> None:
        """Stop a stream the client does not take: the container's answer is dropped."""
        if self.connection is not None:
            self.connection.close()
        self.conn.abort_stream()
        self._account(None, ConnectionError(why))

    def _finish(self, reply: ContainerReply | None, error: OSError | None) -> ContainerReply:
        elapsed = self.front.loop.time() - self.started
        return self.front.agent.finish(self.state.ep, self.model, elapsed, reply, error)

    def _account(self, reply: ContainerReply | None, error: OSError | None) -> None:
        with contextlib.suppress(AgentError):  # told to the client already, or it is gone
            self._finish(reply, error)


__all__ = ["COMPONENT_HEADER", "MAX_STREAM_BACKLOG", "ComponentFront"]
