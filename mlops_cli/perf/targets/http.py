"""HTTP targets on the fast client: Triton's KServe v2 REST API (``infer``, and ``generate_stream``
for streams, read as server-sent events) and plain HTTP JSON endpoints."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

from mlops_cli.errors import ServerError
from mlops_cli.perf.httpclient import ConnectionPool, HeaderCapture, build_request
from mlops_cli.perf.payloads import Payload
from mlops_cli.perf.targets.base import Completion, Target, TargetSpec
from mlops_cli.spec.modelspec import TensorSpec


class EventStream:
    """Reads server-sent events; every ``data:`` event carrying an output is one token. The
    completion gets the tokens, and whatever else the pool passes (a captured header's value)."""

    __slots__ = ("buffer", "done", "error", "tokens")

    def __init__(self, done: Callable[..., None]) -> None:
        self.done = done
        self.buffer = b""
        self.tokens: list[int] = []
        self.error: str | None = None

    def chunk(self, data: bytes) -> None:
        now = time.monotonic_ns()
        self.buffer += data.replace(b"\r\n", b"\n")
        while b"\n\n" in self.buffer:
            event, _, self.buffer = self.buffer.partition(b"\n\n")
            for line in event.split(b"\n"):
                if line.startswith(b"data:"):
                    self._event(line[5:].strip(), now)

    def _event(self, data: bytes, now: int) -> None:
        try:
            doc = json.loads(data)
        except ValueError:
            self.tokens.append(now)  # a non-JSON event still is a streamed piece
            return
        if isinstance(doc, dict) and "error" in doc:
            self.error = "stream_error"
        elif not isinstance(doc, dict) or set(doc) - {"model_name", "model_version", "id"}:
            self.tokens.append(now)

    def __call__(self, kind: str | None, _: None = None, *served: Any) -> None:
        self.done(kind or self.error, self.tokens, *served)


class HttpTarget(Target):
    """Base of the HTTP targets: one connection pool, requests prebuilt as bytes."""

    def __init__(self, spec: TargetSpec) -> None:
        super().__init__(spec)
        parts = urlsplit(spec.url)
        self.base = f"{parts.scheme}://{parts.netloc}"
        self.path = parts.path or "/"
        if parts.query:
            self.path += "?" + parts.query
        self.pool: ConnectionPool | None = None
        self.capture: HeaderCapture | None = None  # a response header the completions get

    async def start(self) -> None:
        self.pool = ConnectionPool(
            self.base,
            max_connections=self.spec.max_connections,
            timeout_s=self.spec.timeout_s,
            streaming=self.spec.stream,
            capture_header=self.capture,
        )
        try:  # one connection up front: an unreachable endpoint fails here, with its address
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(self.pool.host, self.pool.port), self.spec.timeout_s
            )
            writer.close()
        except (OSError, TimeoutError) as exc:
            raise ServerError(
                f"cannot connect to {self.base}: {getattr(exc, 'strerror', None) or exc!r}",
                hint="check the URL and that the server is running",
            ) from exc

    def submit(self, prepared: Any, done: Completion) -> None:
        assert self.pool is not None
        if self.spec.stream:
            stream = EventStream(done)
            self.pool.submit(prepared, stream, stream.chunk)
        else:
            self.pool.submit(prepared, done)

    def submitter(self) -> Callable[[Any, Completion], None]:
        if self.pool is not None and not self.spec.stream:
            return self.pool.submit  # no layer in between: the pool reports (kind, None)
        return self.submit

    def in_flight(self) -> int:
        return self.pool.in_flight() if self.pool else 0

    def waited_long(self) -> int:
        return self.pool.waited_long if self.pool else 0

    async def close(self) -> None:
        if self.pool is not None:
            self.pool.close()

    def _build(self, method: str, path: str, body: bytes) -> bytes:
        host = urlsplit(self.base).netloc
        return build_request(method, host, path, body, extra_headers=dict(self.spec.headers))


class TritonHttpTarget(HttpTarget):
    """Triton over HTTP: ``POST /v2/models/<m>/infer``; with ``stream``, ``generate_stream``."""

    supports_stream: ClassVar[bool] = True

    def prepare(self, model: str, payload: Payload) -> Any:
        name = quote(model, safe="")
        if self.spec.stream:
            body = json.dumps(payload.generate_json()).encode()
            return self._build("POST", f"/v2/models/{name}/generate_stream", body)
        return self._build("POST", f"/v2/models/{name}/infer", payload.body())

    def signature(self, model: str) -> list[TensorSpec] | None:
        from mlops_cli.triton.client import TritonClient

        client = TritonClient(self.base, timeout=self.spec.timeout_s)
        return list(client.model_metadata(model).inputs)


class HttpJsonTarget(HttpTarget):
    """Any HTTP JSON endpoint. ``{model}`` in the URL is replaced by each model name; without a
    payload the request is a bodiless ``GET`` (or the ``method`` given)."""

    supports_stream: ClassVar[bool] = True

    def prepare(self, model: str, payload: Payload) -> Any:
        path = self.path.replace("{model}", quote(model, safe=""))
        if payload.tensors is None and payload.raw is None:
            method = "GET" if self.spec.method == "POST" else self.spec.method
            return self._build(method, path, b"")
        return self._build(self.spec.method, path, payload.body())
