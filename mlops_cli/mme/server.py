"""The HTTP front of mme-local: the sagemaker-runtime wire protocol on loopback.

Runtime routes (what boto3's ``sagemaker-runtime`` client sends):

- ``POST /endpoints/<name>/invocations`` with ``X-Amzn-SageMaker-Target-Model``: the answer of
  the TargetModel, or a SageMaker error (``x-amzn-ErrorType`` header + JSON body).
- ``POST /endpoints/<name>/invocations-response-stream``: the same answer framed as AWS
  event-stream ``PayloadPart`` events. boto3 cannot send a TargetModel on this route (SageMaker
  has none), so only raw clients that set the header reach a multi-model endpoint here.
- Either route with ``X-Amzn-SageMaker-Inference-Component``: an inference component, read from
  the SageMaker control plane (:mod:`mlops_cli.mme.component_front`); an endpoint that is not
  registered here is looked up there too, so that a request without the header is refused as
  SageMaker refuses it.

Control routes (mlops only): ``GET /ping``, ``GET /mme/status``, ``GET /mme/components``,
``PUT /mme/endpoints/<name>``
(``{"s3_prefix", "backend", "memory_budget_mb", "disk_budget_mb", "model_cache"}``), ``GET /mme/endpoints/<name>``,
``DELETE /mme/endpoints/<name>/models/<target>``.

One asyncio event loop (uvloop where installed) serves every connection
(:mod:`mlops_cli.mme.http_front`); a warm invocation is forwarded on a non-blocking keep-alive
connection to the container (:mod:`mlops_cli.mme.upstream`) with callbacks only, no thread and no
task. What a warm invocation needs besides its body (the endpoint, the validated TargetModel, the
container and the head of its request) is cached per path and headers, so the hot path is the
agent's bookkeeping and two writes. What blocks (a model's first load: S3, extraction, the
container's load; an unload that waits for requests in flight) runs in a thread pool. A model
that is not loaded is loaded by one thread, whatever the number of requests for it: the requests
that arrive during its load wait in the event loop and are all handed the model when the load
ends, before anything can unload it again. On two shared cores the front's CPU per request is its
overhead over the container, so the hot path is kept short.

Requests are bounded by :mod:`~mlops_cli.mme.http_front` before they reach this module: heads
in size, field count and time (431, 414, 408), bodies as SageMaker bounds them
(:data:`~mlops_cli.mme.http_front.MAX_BODY_BYTES`, answered 413 before the body is read).
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import os
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from mlops_cli.aws.s3_location import S3Location
from mlops_cli.mme.agent import Agent
from mlops_cli.mme.component_front import COMPONENT_HEADER, ComponentFront
from mlops_cli.mme.components import ComponentTable
from mlops_cli.mme.containers import Container, ContainerReply, with_body
from mlops_cli.mme.endpoint_state import EndpointState, LoadedModel
from mlops_cli.mme.http_front import ClientConnection, Request
from mlops_cli.mme.responses import respond_answer, respond_error, respond_json
from mlops_cli.mme.runtime_errors import AgentError
from mlops_cli.mme.upstream import UpstreamPool

TARGET_HEADER = "X-Amzn-SageMaker-Target-Model"
BACKENDS = ("mms", "triton")
UPSTREAM_TIMEOUT_S = 120.0
_TARGET = TARGET_HEADER.lower().encode()
_ROUTES = ("invocations", "invocations-response-stream")
_MAX_CACHED_ROUTES = 4096
_ENDPOINT_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")  # SageMaker's EndpointName

RouteKey = tuple[bytes, bytes | None, bytes | None, bytes | None]  # url, target, type, accept
_Waiter = tuple[ClientConnection, Request, RouteKey, bool]  # an invocation waiting for a load


@dataclass(frozen=True, slots=True)
class _Route:
    """The fixed parts of an invocation of one TargetModel with the same headers."""

    ep: EndpointState
    target: str
    stream: bool
    container: Container
    container_name: str
    head: bytes  # the container request's head (Container.invoke_head)
    pool: UpstreamPool


def _unknown_route() -> AgentError:
    return AgentError(404, "UnknownOperationException", "unknown route")


class MMEServer:
    """mme-local's HTTP front: :meth:`start` listens, :meth:`close` stops. Made, started and
    closed in the event loop that serves it. Without ``components`` (a table over the control
    plane) it serves multi-model endpoints only. ``upstream_timeout_s`` bounds a container's
    answer (a stream: the time without a byte)."""

    def __init__(
        self,
        agent: Agent,
        components: ComponentTable | None = None,
        *,
        upstream_timeout_s: float = UPSTREAM_TIMEOUT_S,
    ) -> None:
        self.agent = agent
        self.blocking = ThreadPoolExecutor(max_workers=32, thread_name_prefix="mme-blocking")
        self.loop = asyncio.get_running_loop()
        self.upstream_timeout_s = upstream_timeout_s
        self.components = components
        self.front = (
            None
            if components is None
            else ComponentFront(
                components,
                run_blocking=self._run_blocking,
                pool=self._pool,
                timeout=upstream_timeout_s,
            )
        )
        self._upstreams: dict[int, tuple[Container, UpstreamPool]] = {}
        self._routes: dict[RouteKey, _Route] = {}
        self._loads: dict[tuple[str, str], list[_Waiter]] = {}  # (endpoint, target) loading
        self._server: asyncio.AbstractServer | None = None
        self._debug = bool(os.environ.get("MLOPS_DEBUG"))

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen on ``host:port``; the port bound."""
        self._server = await self.loop.create_server(
            lambda: ClientConnection(self), host, port, backlog=256, reuse_address=True
        )
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for _, pool in self._upstreams.values():
            pool.close()
        self._upstreams.clear()
        self._routes.clear()
        self.blocking.shutdown(wait=False, cancel_futures=True)

    # -- dispatch ------------------------------------------------------------------------------

    def handle(self, conn: ClientConnection, request: Request) -> None:
        if self._debug:
            print(f"mme-local: {request.method} {request.url.decode('latin-1')}", file=sys.stderr)
        try:
            if request.method == "POST":
                fields = request.fields
                component = fields.get(COMPONENT_HEADER)
                if component is not None and self.front is not None:
                    self.front.handle(conn, request, component.decode("latin-1").strip())
                    return
                key: RouteKey = (
                    request.url,
                    fields.get(_TARGET),
                    fields.get(b"content-type"),
                    fields.get(b"accept"),
                )
                route = self._routes.get(key)
                model = None if route is None else self.agent.acquire_loaded(route.ep, route.target)
                if route is None or model is None:
                    self._post(conn, request, key)
                elif (
                    model.container_name == route.container_name
                    and self.agent.started_container(route.ep.backend) is route.container
                ):
                    self._send(conn, request, route, model)
                else:
                    self._forward(conn, request, key, route.ep, model, route.stream)
            elif request.method == "GET":
                self._get(conn, request)
            elif request.method == "PUT":
                self._put(conn, request)
            elif request.method == "DELETE":
                self._delete(conn, request)
            else:
                raise AgentError(405, "UnknownOperationException", "method not allowed")
        except AgentError as error:
            respond_error(conn, request, error)
        except Exception as exc:  # a bug: answer it rather than leave the client waiting
            self._internal(conn, request, exc)

    def _internal(self, conn: ClientConnection, request: Request, exc: BaseException) -> None:
        print(f"mme-local: {request.method} {request.url!r} failed: {exc!r}", file=sys.stderr)
        respond_error(conn, request, AgentError(500, "InternalFailure", f"mme-local: {exc}"))

    def _run_blocking(
        self, conn: ClientConnection, request: Request, work: Any, answer: Any
    ) -> None:
        """Run ``work()`` in the thread pool, then ``answer(result)`` in the loop."""
        future = self.loop.run_in_executor(self.blocking, work)

        def done(future: asyncio.Future[Any]) -> None:
            try:
                answer(future.result())
            except AgentError as error:
                respond_error(conn, request, error)
            except Exception as exc:
                self._internal(conn, request, exc)

        future.add_done_callback(done)

    # -- control routes ------------------------------------------------------------------------

    def _get(self, conn: ClientConnection, request: Request) -> None:
        parts = request.parts()
        agent = self.agent
        if parts == ["ping"]:
            conn.respond(request, 200, b"", "text/plain")
        elif parts == ["mme", "status"]:
            components = {} if self.components is None else self.components.describe()
            status = {"pid": os.getpid(), **agent.describe(), "components": components}
            respond_json(conn, request, status)
        elif parts == ["mme", "components"]:
            components = {} if self.components is None else self.components.describe()
            respond_json(conn, request, {"components": components})
        elif len(parts) == 3 and parts[:2] == ["mme", "endpoints"]:
            respond_json(conn, request, agent.endpoint(parts[2]).describe())
        else:
            raise _unknown_route()

    def _put(self, conn: ClientConnection, request: Request) -> None:
        parts = request.parts()
        if len(parts) != 3 or parts[:2] != ["mme", "endpoints"]:
            raise _unknown_route()
        try:
            data = json.loads(request.body or b"{}")
            prefix = str(data["s3_prefix"])
            backend = str(data.get("backend", "mms"))
            budget = float(data.get("memory_budget_mb", 2048))
            disk = data.get("disk_budget_mb")
            disk = None if disk is None else float(disk)
            cache = data.get("model_cache", True)
            S3Location.parse(prefix)  # a UsageError, which is a ValueError
            if backend not in BACKENDS or not (0 < budget < math.inf):  # NaN fails it too
                raise ValueError(prefix)
            if (disk is not None and not 0 < disk < math.inf) or not isinstance(cache, bool):
                raise ValueError(prefix)
        except (ValueError, KeyError, TypeError):
            raise AgentError(
                400,
                "ValidationError",
                'expected {"s3_prefix": "s3://...", "backend": "mms|triton", '
                '"memory_budget_mb": N, "disk_budget_mb": N or null, "model_cache": true|false}',
            ) from None
        if not _ENDPOINT_NAME.fullmatch(parts[2]):  # SageMaker's rule: no path can hide in it
            raise AgentError(
                400,
                "ValidationError",
                f"endpoint name {parts[2][:80]!r} must match {_ENDPOINT_NAME.pattern}",
            )
        created = self.agent.register(
            parts[2],
            s3_prefix=prefix,
            backend=backend,
            memory_budget_mb=budget,
            disk_budget_mb=disk,
            model_cache=cache,
        )
        self._routes.clear()
        respond_json(conn, request, {"endpoint": parts[2], "created": created})

    def _delete(self, conn: ClientConnection, request: Request) -> None:
        parts = request.parts()
        if len(parts) != 5 or parts[:2] != ["mme", "endpoints"] or parts[3] != "models":
            raise _unknown_route()
        self._run_blocking(
            conn,
            request,
            functools.partial(self.agent.unload, parts[2], parts[4]),
            lambda unloaded: respond_json(conn, request, {"unloaded": unloaded}),
        )

    # -- invocations ---------------------------------------------------------------------------

    def _post(self, conn: ClientConnection, request: Request, key: RouteKey) -> None:
        """An invocation whose route is not cached yet, or whose model must be loaded."""
        parts = request.parts()
        if len(parts) != 3 or parts[0] != "endpoints" or parts[2] not in _ROUTES:
            raise _unknown_route()
        endpoint, stream = parts[1], parts[2] != "invocations"
        target = request.header(_TARGET)
        if not target and self.components is not None and endpoint not in self.agent.endpoints:
            error = functools.partial(self.components.missing_header, endpoint)
            self._run_blocking(
                conn, request, error, functools.partial(respond_error, conn, request)
            )
            return
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
            self._forward(conn, request, key, ep, model, stream)
            return
        self._after_load(ep, target, (conn, request, key, stream))

    def _after_load(self, ep: EndpointState, target: str, waiter: _Waiter) -> None:
        """Forward ``waiter`` once ``target`` is loaded, starting its load unless one runs."""
        flight = (ep.name, target)
        waiters = self._loads.get(flight)
        if waiters is not None:
            waiters.append(waiter)
            return
        self._loads[flight] = [waiter]
        deadline = time.monotonic() + self.agent.memory_wait_s
        future = self.loop.run_in_executor(
            self.blocking, functools.partial(self.agent.acquire, ep, target, deadline=deadline)
        )
        future.add_done_callback(functools.partial(self._loaded, ep, flight))

    def _loaded(
        self, ep: EndpointState, flight: tuple[str, str], future: asyncio.Future[LoadedModel]
    ) -> None:
        """The load of ``flight`` ended: answer every request that waited for it."""
        waiters = self._loads.pop(flight)
        if future.cancelled():  # shutting down
            return
        try:
            first = future.result()
        except Exception as exc:
            for conn, request, _, _ in waiters:
                if isinstance(exc, AgentError):
                    respond_error(conn, request, exc)
                else:
                    self._internal(conn, request, exc)
            return
        # All acquired before any is forwarded: the model cannot become idle, so cannot be
        # unloaded, before each waiting request holds it.
        models = [first] + [self.agent.acquire_loaded(ep, first.target) for _ in waiters[1:]]
        for waiter, model in zip(waiters, models, strict=True):
            conn, request, key, stream = waiter
            try:
                if model is None:  # unloaded by a DELETE that stopped waiting: load it again
                    self._after_load(ep, first.target, waiter)
                else:
                    self._forward(conn, request, key, ep, model, stream)
            except AgentError as error:
                respond_error(conn, request, error)
            except Exception as exc:
                self._internal(conn, request, exc)

    def _forward(
        self,
        conn: ClientConnection,
        request: Request,
        key: RouteKey,
        ep: EndpointState,
        model: LoadedModel,
        stream: bool,
    ) -> None:
        """Send the acquired ``model`` its request, caching the route for the next ones."""
        container = self.agent.started_container(ep.backend)
        if container is None:
            error = ConnectionError(f"the {ep.backend} container is not running")
            self.agent.finish(ep, model, 0.0, None, error)  # raises AgentError
            return
        head = container.invoke_head(
            model.container_name,
            request.header(b"content-type", "application/json"),
            request.header(b"accept"),
        )
        route = _Route(
            ep, model.target, stream, container, model.container_name, head, self._pool(container)
        )
        if len(self._routes) >= _MAX_CACHED_ROUTES:
            self._routes.clear()
        self._routes[key] = route
        self._send(conn, request, route, model)

    def _send(
        self, conn: ClientConnection, request: Request, route: _Route, model: LoadedModel
    ) -> None:
        """The hot path: one write to the container; the answer is written when it comes."""
        agent, loop = self.agent, self.loop
        started = loop.time()

        def done(reply: ContainerReply | None, error: OSError | None) -> None:
            try:
                reply = agent.finish(route.ep, model, loop.time() - started, reply, error)
            except AgentError as exc:
                respond_error(conn, request, exc)
                return
            content_type = reply.content_type or route.container.reply_type
            respond_answer(conn, request, reply.body, content_type, stream=route.stream)

        route.pool.submit(with_body(route.head, request.body), done)

    def _pool(self, container: Container) -> UpstreamPool:
        entry = self._upstreams.get(id(container))
        if entry is None or entry[0] is not container:
            pool = UpstreamPool(*container.address, timeout=self.upstream_timeout_s)
            entry = (container, pool)
            self._upstreams[id(container)] = entry
        return entry[1]
