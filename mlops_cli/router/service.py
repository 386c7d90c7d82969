"""The router's request path: who calls, which version, which server, and the answer passed on.

Every request is parsed and bounded by the shared HTTP front (:mod:`mlops_cli.mme.http_front`,
httptools) with the router's own body limit and error format: a refusal is its status with one
JSON line, ``{"error": "..."}``. Then, all on the event loop thread and without I/O until the
model server is called:

1. **Who**: an API key (``Authorization: Bearer KEY``) gives the tenant; the tenant header is
   ignored then. Without a key, the tenant header is believed only with ``--trust-tenant-header``.
   A tenant, authorization or request-key header sent twice is a 400.
2. **Which version**: :meth:`RoutingTable.resolve` (routes, aliases, canary by ``X-Request-Key``);
   a model the tenant may not see is a 404 with the words an unknown model gets.
3. **Which server**: round-robin over the version's servers, skipping those that failed their
   last readiness check or refused a connection in the last :data:`DOWN_S` seconds.
4. **The answer**: Triton is called over keep-alive connections (:mod:`mlops_cli.router.upstream`)
   and its answer passed through, a stream chunk by chunk as it arrives; a multi-model endpoint is
   called with ``invoke_endpoint`` and ``TargetModel`` (boto3: SigV4, pooled; on a thread); an
   inference component with ``InferenceComponentName``, ``generate_stream`` through
   ``invoke_endpoint_with_response_stream`` passed on part by part
   (:mod:`mlops_cli.router.components`). A
   request whose server closed or refused the connection before any byte of an answer is sent
   once more to another replica; once a byte has come back, never.

Answers carry ``X-Model-Version`` and ``X-Model-Source``. The requests in flight per version are
counted here; the heartbeat reports them (:mod:`mlops_cli.router.refresh`).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from mlops_cli.errors import NotFoundError
from mlops_cli.mme.http_front import ClientConnection, Request
from mlops_cli.registry.rules import RegistryNameError, check_name
from mlops_cli.router.auth import Keys
from mlops_cli.router.components import call_component, refusal_of
from mlops_cli.router.metrics import RouterMetrics
from mlops_cli.router.ondemand import OnDemand
from mlops_cli.router.refresh import Applied
from mlops_cli.router.table import (
    EMPTY,
    Choice,
    ComponentUpstream,
    ModelEntry,
    RoutingTable,
    SageMakerUpstream,
    TritonUpstream,
    Upstream,
)
from mlops_cli.router.upstream import UpstreamPool

DOWN_S = 2.0  # a server that refused a connection is skipped this long
MAX_STREAM_BACKLOG = 8 * 1024 * 1024  # a streaming client this far behind is cut off
IDLE_SWEEP_S = 5.0
_OPS = frozenset({"infer", "generate", "generate_stream"})
_JSON = "application/json"


@dataclass(frozen=True)
class ServiceOptions:
    tenant_header: str = "x-tenant-id"
    trust_tenant_header: bool = False
    keys: Keys | None = None
    upstream_timeout_s: float = 60.0
    idle_timeout_s: float = 60.0
    ready_after_s: float = 5.0  # /health/ready: the table must have been confirmed this recently


class _Refusal(Exception):
    def __init__(self, status: int, reason: str, choice: Choice | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.choice = choice  # the version resolved before the refusal, if any


def error_body(reason: str) -> bytes:
    return json.dumps({"error": reason}).encode()


def connection_class(max_body_bytes: int) -> type[ClientConnection]:
    """The front's connection with the router's body limit and error format."""

    class RouterConnection(ClientConnection):
        max_length_digits = len(str(max_body_bytes))
        too_large = error_body(f"request body over {max_body_bytes} bytes")
        head_too_large = error_body("request header fields over 16384 bytes or 100 fields")
        url_too_long = error_body("request URL over 8192 bytes")
        timed_out = error_body("request not received in time")
        bad_request_body = error_body("malformed HTTP request")
        bad_request_extra = ""

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            self.last_active = time.monotonic()
            if isinstance(self.handler, RouterService):
                self.handler.connections.add(self)

        def connection_lost(self, exc: Exception | None) -> None:
            super().connection_lost(exc)
            if isinstance(self.handler, RouterService):
                self.handler.connections.discard(self)

        def data_received(self, data: bytes) -> None:
            self.last_active = time.monotonic()
            super().data_received(data)

    RouterConnection.max_body_bytes = max_body_bytes
    return RouterConnection


class RouterService:
    """The request handler of one router process (made and used on its event loop)."""

    def __init__(
        self,
        options: ServiceOptions,
        metrics: RouterMetrics,
        *,
        is_ready: Callable[[], bool],
    ) -> None:
        self.options = options
        self.metrics = metrics
        self.is_ready = is_ready
        self.loop = asyncio.get_running_loop()
        self.table: RoutingTable = EMPTY
        self.in_flight: dict[tuple[str, int], int] = {}
        self.down: frozenset[str] = frozenset()  # failed their last readiness check
        self.refused: dict[str, float] = {}  # key -> monotonic time until which it is skipped
        self.pools: dict[str, UpstreamPool] = {}
        self.turn: dict[tuple[str, int], int] = {}
        self.blocking = ThreadPoolExecutor(max_workers=32, thread_name_prefix="router-blocking")
        self.ondemand = OnDemand(
            self.loop,
            self.blocking,
            load_timeout_s=options.upstream_timeout_s,
            on_load=metrics.loaded,
            on_evict=metrics.evicted,
        )
        self.tenant_field = options.tenant_header.lower().encode()
        self._extras: dict[Choice, str] = {}
        self._prefixes: dict[tuple[str, str, str, bytes], bytes] = {}
        self.connections: set[ClientConnection] = set()

    # -- table and state (called on the loop by the refresher) ---------------------------------

    def apply(self, table: RoutingTable, age: float) -> Applied:
        self.table = table
        self.metrics.table(table.revision, age)
        in_flight = {f"{m}@{v}": n for (m, v), n in self.in_flight.items() if n > 0}
        return Applied(table.revision, in_flight)

    def set_down(self, urls: frozenset[str]) -> None:
        self.down = urls

    def close(self) -> None:
        for pool in self.pools.values():
            pool.close()
        self.pools.clear()
        self.blocking.shutdown(wait=False, cancel_futures=True)

    def sweep_idle(self) -> None:
        """Close client connections idle (no request begun) longer than the idle timeout."""
        quiet_since = time.monotonic() - self.options.idle_timeout_s
        for conn in list(self.connections):
            if conn.transport is None:
                self.connections.discard(conn)
            elif not conn.busy and not conn.partial and conn.last_active < quiet_since:  # type: ignore[attr-defined]
                conn.transport.close()
                self.connections.discard(conn)

    # -- dispatch ------------------------------------------------------------------------------

    def handle(self, conn: ClientConnection, request: Request) -> None:
        started = time.monotonic()
        tenant, model = "", ""
        try:
            path = request.url.split(b"?", 1)[0]
            if path.startswith(b"/v2/models/"):
                parts = request.parts()
                if len(parts) not in (3, 4) or not parts[2]:
                    raise _Refusal(404, "no such route")
                model = parts[2]
                operation = parts[3] if len(parts) == 4 else ""
                tenant = self._tenant(request)
                self._model_call(conn, request, tenant, model, operation, started)
            elif path == b"/metrics" and request.method == "GET":
                body, content_type = self.metrics.exposition()
                conn.respond(request, 200, body, content_type)
            elif path == b"/health/live":
                conn.respond(request, 200, b'{"live": true}', _JSON)
            elif path in (b"/health/ready", b"/v2/health/ready"):
                ready = self.is_ready()
                body = json.dumps({"ready": ready, "revision": self.table.revision}).encode()
                conn.respond(request, 200 if ready else 503, body, _JSON)
            else:
                raise _Refusal(404, "no such route")
        except _Refusal as refusal:
            choice = refusal.choice
            extra = "" if choice is None else self.extra(choice)
            conn.respond(request, refusal.status, error_body(str(refusal)), _JSON, extra)
            if model:
                version = "" if choice is None else str(choice.version)
                self.metrics.answered(tenant or "", model, version, refusal.status, None)
        except Exception as exc:  # a defect: one line, the connection kept
            conn.respond(request, 500, error_body(f"internal error: {exc!r}"[:300]), _JSON)

    def _tenant(self, request: Request) -> str:
        fields = request.fields
        repeated = request.repeated
        if repeated:
            for name in (b"authorization", self.tenant_field, b"x-request-key"):
                if name in repeated:
                    raise _Refusal(400, f"header {name.decode()} sent more than once")
        authorization = fields.get(b"authorization")
        keys = self.options.keys
        if authorization is not None and keys is not None:
            scheme, _, key = authorization.decode("latin-1").strip().partition(" ")
            if scheme.lower() != "bearer" or not key.strip():
                raise _Refusal(401, "Authorization must be 'Bearer <API key>'")
            tenant = keys.tenant_of(key.strip())
            if tenant is None:
                raise _Refusal(401, "unknown API key")
            return tenant
        if not self.options.trust_tenant_header:
            raise _Refusal(401, "missing API key (Authorization: Bearer <key>)")
        value = fields.get(self.tenant_field)
        if value is None:
            raise _Refusal(400, f"missing {self.options.tenant_header} header")
        tenant = value.decode("latin-1").strip()
        try:
            check_name("tenant", tenant)
        except RegistryNameError as exc:
            raise _Refusal(400, str(exc)) from None
        return tenant

    def _model_call(
        self,
        conn: ClientConnection,
        request: Request,
        tenant: str,
        model: str,
        operation: str,
        started: float,
    ) -> None:
        method = request.method
        if operation in _OPS:
            if method != "POST":
                raise _Refusal(405, f"{operation} takes POST")
        elif operation in ("", "ready"):
            if method != "GET":
                raise _Refusal(405, "model metadata takes GET")
        else:
            raise _Refusal(404, "no such route")
        key = request.fields.get(b"x-request-key")
        try:
            entry, choice = self.table.resolve(
                tenant, model, None if key is None else key.decode("latin-1")
            )
        except NotFoundError as exc:
            raise _Refusal(404, str(exc)) from None
        if operation in _OPS and _is_json(request) and not _looks_like_json(request.body):
            raise _Refusal(400, "the request body is not a JSON object")
        candidates = entry.upstreams(choice.version)
        if not candidates:
            raise _Refusal(
                503,
                f"{model} v{choice.version} is not deployed where this router can call it",
                choice,
            )
        call = _Call(self, conn, request, tenant, entry, choice, operation, started, candidates)
        call.send(self._pick(entry.name, choice.version, candidates, None))

    def extra(self, choice: Choice) -> str:
        found = self._extras.get(choice)
        if found is None:
            found = self._extras[choice] = (
                f"X-Model-Version: {choice.version}\r\nX-Model-Source: {choice.source}\r\n"
            )
        return found

    def _pick(
        self, model: str, version: int, candidates: tuple[Upstream, ...], avoid: Upstream | None
    ) -> Upstream:
        """The next replica in turn that is up (any, when none is)."""
        key = (model, version)
        turn = self.turn.get(key, 0)
        now = time.monotonic()
        count = len(candidates)
        for step in range(count):
            upstream = candidates[(turn + step) % count]
            if upstream is avoid or not self._up(upstream, now):
                continue
            self.turn[key] = turn + step + 1
            return upstream
        fallback = [u for u in candidates if u is not avoid] or list(candidates)
        self.turn[key] = turn + 1
        return fallback[turn % len(fallback)]

    def _up(self, upstream: Upstream, now: float) -> bool:
        key = upstream.key
        if key in self.down:
            return False
        until = self.refused.get(key)
        return until is None or until < now

    def request_prefix(
        self, pool: UpstreamPool, name: str, operation: str, content_type: bytes
    ) -> bytes:
        """The fixed start of a POST to ``name``'s ``operation`` on ``pool``'s server, up to the
        Content-Length value (made once per model, operation and content type)."""
        key = (pool.where, name, operation, content_type)
        found = self._prefixes.get(key)
        if found is None:
            if len(self._prefixes) > 10_000:
                self._prefixes.clear()
            found = self._prefixes[key] = (
                (
                    f"POST /v2/models/{quote(name, safe='')}/{operation} HTTP/1.1\r\n"
                    f"Host: {pool.where}\r\n"
                    "Content-Type: "
                ).encode("latin-1")
                + content_type
                + b"\r\nContent-Length: "
            )
        return found

    def pool(self, upstream: TritonUpstream) -> UpstreamPool:
        pool = self.pools.get(upstream.url)
        if pool is None:
            parts = urlsplit(upstream.url)
            pool = self.pools[upstream.url] = UpstreamPool(
                parts.hostname or "127.0.0.1",
                parts.port or 80,
                timeout=self.options.upstream_timeout_s,
            )
        return pool


def _is_json(request: Request) -> bool:
    """A JSON body (not KServe's binary extension, whose JSON head is followed by tensors)."""
    if b"inference-header-content-length" in request.fields:
        return False
    content_type = request.fields.get(b"content-type", b"application/json")
    return content_type.split(b";")[0].strip().lower() in (b"application/json", b"")


def _parses(body: bytes) -> bool:
    try:
        json.loads(body)
    except ValueError:
        return False
    return True


def _looks_like_json(body: bytes) -> bool:
    """A body that can be a JSON object. The model server parses the rest; parsing every body
    here too would cost a twentieth of the router's CPU per request, so a body is parsed only
    when the server's answer is a 500 (Triton's answer to a body that is not JSON), to answer
    400 instead."""
    return body.lstrip()[:1] == b"{"


class _Call:
    """One request on its way to a model server and back (an :class:`Exchange` for Triton)."""

    __slots__ = (
        "acquired",
        "attempts",
        "candidates",
        "choice",
        "cold",
        "conn",
        "content_type",
        "entry",
        "operation",
        "pieces",
        "request",
        "service",
        "started",
        "status",
        "streaming",
        "tenant",
        "upstream",
        "version_label",
    )

    def __init__(
        self,
        service: RouterService,
        conn: ClientConnection,
        request: Request,
        tenant: str,
        entry: ModelEntry,
        choice: Choice,
        operation: str,
        started: float,
        candidates: tuple[Upstream, ...],
    ) -> None:
        self.service, self.conn, self.request = service, conn, request
        self.tenant, self.entry, self.choice = tenant, entry, choice
        self.operation, self.started, self.candidates = operation, started, candidates
        self.version_label = str(choice.version)
        self.attempts = 0
        self.pieces: list[bytes] = []
        self.status = 0
        self.content_type = _JSON
        self.streaming = False
        self.upstream: Upstream | None = None
        self.acquired: TritonUpstream | None = None  # a dynamic server's model held for us
        self.cold = False  # waited for its model to be loaded
        key = (entry.name, choice.version)
        service.in_flight[key] = service.in_flight.get(key, 0) + 1
        service.metrics.started(entry.name, self.version_label)

    def send(self, upstream: Upstream) -> None:
        self.attempts += 1
        self.upstream = upstream
        self._release()
        if isinstance(upstream, TritonUpstream):
            if upstream.capacity_mb is not None:  # a dynamic server: loaded on demand
                self.service.ondemand.acquire(
                    upstream, lambda cold: self._loaded(upstream, cold), self._not_loaded
                )
            else:
                self._send_triton(upstream)
        elif isinstance(upstream, ComponentUpstream):
            self._send_component(upstream)
        else:
            self._send_sagemaker(upstream)

    def _loaded(self, upstream: TritonUpstream, cold: bool) -> None:
        self.acquired = upstream
        self.cold = self.cold or cold
        self._send_triton(upstream)

    def _not_loaded(self, reason: str) -> None:
        model, version = self.entry.name, self.version_label
        self.service.metrics.upstream_error(model, version, "load")
        self._refuse(503, f"{model} v{version} could not be loaded: {reason}"[:500])

    def _release(self) -> None:
        acquired, self.acquired = self.acquired, None
        if acquired is not None:
            self.service.ondemand.release(acquired)

    # -- Triton ----------------------------------------------------------------------------------

    def _send_triton(self, upstream: TritonUpstream) -> None:
        request = self.request
        pool = self.service.pool(upstream)
        if self.operation in ("", "ready"):
            name = quote(upstream.name, safe="")
            suffix = "/ready" if self.operation == "ready" else ""
            head = f"GET /v2/models/{name}{suffix} HTTP/1.1\r\nHost: {pool.where}\r\n\r\n"
            pool.submit(head.encode("latin-1"), self)
            return
        fields = request.fields
        content_type = fields.get(b"content-type", b"application/json")
        prefix = self.service.request_prefix(pool, upstream.name, self.operation, content_type)
        binary = fields.get(b"inference-header-content-length")
        body = request.body
        if binary is None:
            pool.submit(b"%b%d\r\n\r\n%b" % (prefix, len(body), body), self)
        else:
            extra = b"Inference-Header-Content-Length: %b\r\n" % binary
            pool.submit(b"%b%d\r\n%b\r\n%b" % (prefix, len(body), extra, body), self)

    def head(self, status: int, content_type: str) -> None:
        self.status, self.content_type = status, content_type or _JSON
        if self.operation == "generate_stream" and status == 200:
            self.streaming = True
            self.conn.start_stream(self.request, 200, self.content_type, self._extra())

    def body(self, data: bytes) -> None:
        if not self.streaming:
            self.pieces.append(data)
            return
        if not self.pieces:  # the first chunk
            self.pieces.append(b"")
            self.service.metrics.first(
                self.entry.name, self.version_label, time.monotonic() - self.started
            )
        self.conn.send_chunk(data)
        if self.conn.write_buffered() > MAX_STREAM_BACKLOG:  # a client that does not read
            self.conn.abort_stream()

    def end(self) -> None:
        if self.streaming:
            self.conn.end_stream(self.request)
        else:
            body = b"".join(self.pieces)
            if self.operation == "" and self.status == 200:
                body = self._metadata(body)
            elif self.status >= 500 and _is_json(self.request) and not _parses(self.request.body):
                # Triton answers a body that is not JSON with a 500; it is the caller's error
                self.status, body = 400, error_body("the request body is not JSON")
                self.content_type = _JSON
            self.conn.respond(self.request, self.status, body, self.content_type, self._extra())
        self._finish(self.status)

    def _extra(self) -> str:
        extra = self.service.extra(self.choice)
        return extra + "X-Model-Load: cold\r\n" if self.cold else extra

    def fail(self, error: OSError, answered: bool) -> None:
        service, upstream = self.service, self.upstream
        kind = _error_kind(error)
        model, version = self.entry.name, self.version_label
        service.metrics.upstream_error(model, version, kind)
        if upstream is not None and kind == "refused":
            service.refused[upstream.key] = time.monotonic() + DOWN_S
        if not answered and not self.streaming and self.attempts < 2 and len(self.candidates) > 1:
            service.metrics.retried(model, version)
            self.send(service._pick(model, self.choice.version, self.candidates, upstream))
            return
        if self.streaming:
            self.conn.abort_stream()
            self._finish(502)
            return
        status = 504 if kind == "timeout" else 502
        where = getattr(upstream, "url", None) or getattr(upstream, "endpoint", "")
        reason = f"{model} v{version} on {where}: {error}"
        self.conn.respond(
            self.request, status, error_body(reason[:500]), _JSON, service.extra(self.choice)
        )
        self._finish(status)

    def _metadata(self, body: bytes) -> bytes:
        """The version's metadata under the stable name."""
        try:
            document = json.loads(body)
        except ValueError:
            return body
        if isinstance(document, dict):
            document["name"] = self.entry.name
            document["versions"] = [self.version_label]
        return json.dumps(document).encode()

    def _finish(self, status: int) -> None:
        self._release()
        service = self.service
        key = (self.entry.name, self.choice.version)
        left = service.in_flight.get(key, 1) - 1
        if left > 0:
            service.in_flight[key] = left
        else:
            service.in_flight.pop(key, None)
        metrics = service.metrics
        metrics.finished(self.entry.name, self.version_label)
        if self.cold:
            metrics.cold_request(self.entry.name, self.version_label)
        metrics.answered(
            self.tenant,
            self.entry.name,
            self.version_label,
            status,
            time.monotonic() - self.started,
        )

    # -- SageMaker multi-model endpoints --------------------------------------------------------

    def _send_sagemaker(self, upstream: SageMakerUpstream) -> None:
        if self.operation == "generate_stream":
            self._refuse(
                400,
                "a multi-model endpoint cannot stream (InvokeEndpointWithResponseStream takes no TargetModel)",
            )
            return
        if self.operation in ("", "ready"):
            self._endpoint_metadata("sagemaker-mme")
            return
        body = self.request.body
        future = self.service.loop.run_in_executor(
            self.service.blocking, _invoke_endpoint, upstream, body, self._content_type()
        )
        future.add_done_callback(self._sagemaker_done)

    def _send_component(self, upstream: ComponentUpstream) -> None:
        if self.operation in ("", "ready"):
            self._endpoint_metadata("sagemaker-ic")
            return
        service = self.service
        call_component(
            service.blocking,
            service.loop,
            self,
            upstream,
            self.request.body,
            self._content_type(),
            stream=self.operation == "generate_stream",
            timeout=service.options.upstream_timeout_s,
            what=f"{self.entry.name} v{self.version_label}",
            client_gone=self._client_gone,
        )

    def _client_gone(self) -> bool:
        transport = self.conn.transport
        return transport is None or transport.is_closing()

    def _content_type(self) -> str:
        return self.request.fields.get(b"content-type", b"application/json").decode("latin-1")

    def _endpoint_metadata(self, platform: str) -> None:
        """A SageMaker endpoint publishes no model metadata: the router's own answer."""
        document = {
            "name": self.entry.name,
            "versions": [self.version_label],
            "platform": platform,
            "ready": True,
        }
        self.status = 200
        self.pieces = [json.dumps(document).encode()]
        self.operation = "sagemaker-metadata"
        self.end()

    def _sagemaker_done(self, future: asyncio.Future[tuple[int, bytes, str]]) -> None:
        try:
            status, payload, content_type = future.result()
        except OSError as exc:
            self.fail(exc, False)
            return
        except Exception as exc:
            self._refuse(502, f"{self.entry.name} v{self.version_label}: {exc}"[:500])
            return
        self.status, self.content_type, self.pieces = status, content_type, [payload]
        self.end()

    def _refuse(self, status: int, reason: str) -> None:
        self.conn.respond(
            self.request, status, error_body(reason), _JSON, self.service.extra(self.choice)
        )
        self._finish(status)


def _error_kind(error: OSError) -> str:
    if isinstance(error, TimeoutError):
        return "timeout"
    if isinstance(error, ConnectionRefusedError):
        return "refused"
    return "closed"


def _invoke_endpoint(
    upstream: SageMakerUpstream, body: bytes, content_type: str
) -> tuple[int, bytes, str]:
    """``invoke_endpoint`` with ``TargetModel`` (on a thread): the status, body and content type
    to answer with. A refusal of SageMaker's (a model error, a throttle) keeps its status and
    its one-line message; a connection that cannot be made is an OSError."""
    from botocore.exceptions import ClientError, EndpointConnectionError

    from mlops_cli.deploy.sagemaker_runtime import runtime_client

    client = runtime_client(region=upstream.region, runtime_url=upstream.runtime_url)
    try:
        response: dict[str, Any] = client.invoke_endpoint(
            EndpointName=upstream.endpoint,
            TargetModel=upstream.target_model,
            Body=body,
            ContentType=content_type,
            Accept="application/json",
        )
    except EndpointConnectionError as exc:
        raise ConnectionRefusedError(str(exc)) from None
    except ClientError as exc:
        return refusal_of(exc)
    return 200, response["Body"].read(), str(response.get("ContentType") or _JSON)
