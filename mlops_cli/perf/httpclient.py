"""The fast HTTP/1.1 path: a raw asyncio ``Protocol`` per keep-alive connection, responses parsed by
httptools (the C parser of uvicorn), driven by callbacks rather than one coroutine per request.

A request is a prebuilt ``bytes`` (request line, headers, body), so sending costs one
``transport.write``. A :class:`ConnectionPool` hands idle connections out last-in first-out, opens
new ones up to a cap and queues requests beyond it: the time a request waits for a connection is
part of its latency, as it would be for a real client. A sweeper aborts requests that exceed the
timeout.

A pool opened with ``capture_header=((NAME, parse), ...)`` also reads those response headers (a
small tuple: one dictionary lookup per header received): its completions get one more argument per
header, ``parse(value)`` in the order given (None when the answer had no such header, or there was
no answer). Only those connections define the parser's header callback, so the other pools pay
nothing for it.
"""

from __future__ import annotations

import asyncio
import ssl as ssl_module
import time
from collections import deque
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import urlsplit

import httptools

# A request that waits longer than this for a connection did not leave when it was meant to.
WAIT_LIMIT_NS = 10_000_000
# done(error_kind, None): error_kind is None for a 2xx answer, else http_<status> or why there
# was no answer (connect, timeout, disconnect, bad_response, cancelled). With captured headers:
# done(error_kind, None, *parsed values or None, one per captured header).
Done = Callable[..., None]
# ((header name, parse of its value), ...): the response headers the completions get
HeaderCapture = tuple[tuple[str, Callable[[bytes], Any]], ...]


def build_request(
    method: str,
    host: str,
    path: str,
    body: bytes = b"",
    *,
    content_type: str = "application/json",
    extra_headers: dict[str, str] | None = None,
) -> bytes:
    """One complete HTTP/1.1 keep-alive request as bytes."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "User-Agent: mlops-perftest"]
    if body or method in ("POST", "PUT"):
        lines += [f"Content-Type: {content_type}", f"Content-Length: {len(body)}"]
    for name, value in (extra_headers or {}).items():
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class HttpConnection(asyncio.Protocol):
    """One keep-alive connection carrying one request at a time. Only the parser callbacks that
    are needed exist (httptools calls every one that is defined): streams use the subclass."""

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.done: Done | None = None
        self.on_chunk: Callable[[bytes], None] | None = None
        self.started_ns = 0
        self.timed_out = False

    # -- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._finish("bad_response")
            if self.transport is not None:
                self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.pool.discard(self)
        if self.done is not None:
            self._finish("timeout" if self.timed_out else "disconnect")

    # -- httptools callback ----------------------------------------------------------------------

    def on_message_complete(self) -> None:
        done = self.done
        self.done = None
        status = self.parser.get_status_code()
        if self.parser.should_keep_alive():
            self.pool.release(self)
        elif self.transport is not None:
            self.transport.close()
        if done is not None:
            done(None if 200 <= status < 300 else f"http_{status}", None)

    # -- use -------------------------------------------------------------------------------------

    def send(self, data: bytes, done: Done, on_chunk: Callable[[bytes], None] | None) -> None:
        self.done = done
        self.on_chunk = on_chunk
        self.started_ns = time.monotonic_ns()
        self.transport.write(data)  # type: ignore[union-attr]

    def _finish(self, kind: str) -> None:
        done = self.done
        self.done = None
        if done is not None:
            done(kind, None)


class StreamingHttpConnection(HttpConnection):
    """A connection whose response body is handed over chunk by chunk as it arrives."""

    def on_body(self, body: bytes) -> None:
        if self.on_chunk is not None:
            self.on_chunk(body)


class CapturingHttpConnection(HttpConnection):
    """A connection that reads the pool's ``capture_header`` response headers and hands their
    parsed values to the completion, one argument per header."""

    def __init__(self, pool: ConnectionPool) -> None:
        super().__init__(pool)
        assert pool.capture is not None
        self.slots = {name.lower().encode("latin-1"): i for i, (name, _) in enumerate(pool.capture)}
        self.parsers = tuple(parse for _, parse in pool.capture)
        self.empty: list[bytes | None] = [None] * len(self.parsers)
        self.captured = self.empty.copy()

    def on_message_begin(self) -> None:
        self.captured = self.empty.copy()

    def on_header(self, name: bytes, value: bytes) -> None:
        slot = self.slots.get(name.lower())
        if slot is not None:
            self.captured[slot] = value

    def on_message_complete(self) -> None:
        done = self.done
        self.done = None
        status = self.parser.get_status_code()
        if self.parser.should_keep_alive():
            self.pool.release(self)
        elif self.transport is not None:
            self.transport.close()
        if done is not None:
            done(None if 200 <= status < 300 else f"http_{status}", None, *self._values())

    def _finish(self, kind: str) -> None:
        done = self.done
        self.done = None
        if done is not None:
            done(kind, None, *self._values())

    def _values(self) -> list[Any]:
        captured, self.captured = self.captured, self.empty.copy()
        return [
            None if value is None else parse(value)
            for parse, value in zip(self.parsers, captured, strict=True)
        ]


class StreamingCapturingHttpConnection(CapturingHttpConnection):
    """A capturing connection whose response body is handed over chunk by chunk."""

    def on_body(self, body: bytes) -> None:
        if self.on_chunk is not None:
            self.on_chunk(body)


class ConnectionPool:
    """Keep-alive connections to one ``http(s)://host:port``; see the module docstring."""

    def __init__(
        self,
        base_url: str,
        *,
        max_connections: int,
        timeout_s: float,
        streaming: bool = False,
        capture_header: HeaderCapture | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.host_header = parts.netloc
        self.ssl = ssl_module.create_default_context() if parts.scheme == "https" else None
        self.max_connections = max_connections
        self.capture = capture_header
        self.protocol: type[HttpConnection]
        if capture_header is not None:
            self.protocol = (
                StreamingCapturingHttpConnection if streaming else CapturingHttpConnection
            )
        else:
            self.protocol = StreamingHttpConnection if streaming else HttpConnection
        self.timeout_ns = int(timeout_s * 1e9)
        self.idle: list[HttpConnection] = []
        self.connections: set[HttpConnection] = set()
        self.opening = 0
        self.waiters: deque[tuple[bytes, Done, Callable[[bytes], None] | None, int]] = deque()
        self.waited_long = 0  # requests that waited over WAIT_LIMIT_NS for a free connection
        self.loop = asyncio.get_running_loop()
        self._sweeper = self.loop.call_later(0.1, self._sweep)
        self.closed = False

    def submit(
        self, data: bytes, done: Done, on_chunk: Callable[[bytes], None] | None = None
    ) -> None:
        """Send ``data`` on an idle connection, a new one, or when one frees up."""
        if self.idle:
            self.idle.pop().send(data, done, on_chunk)
        elif len(self.connections) + self.opening < self.max_connections:
            self.opening += 1
            self.loop.create_task(self._open_and_send(data, done, on_chunk))
        else:
            self.waiters.append((data, done, on_chunk, time.monotonic_ns()))

    async def _open_and_send(
        self, data: bytes, done: Done, on_chunk: Callable[[bytes], None] | None
    ) -> None:
        try:
            _, conn = await asyncio.wait_for(
                self.loop.create_connection(
                    lambda: self.protocol(self),
                    self.host,
                    self.port,
                    ssl=self.ssl,
                    server_hostname=self.host if self.ssl else None,
                ),
                timeout=self.timeout_ns / 1e9,
            )
        except (OSError, TimeoutError):
            self.opening -= 1
            done("connect", None)
            if self.waiters and not self.closed:
                self.submit(*self._next_waiter())
            return
        self.opening -= 1
        if self.closed:
            conn.transport.abort()  # type: ignore[union-attr]
            done("cancelled", None)
            return
        self.connections.add(conn)
        conn.send(data, done, on_chunk)

    def release(self, conn: HttpConnection) -> None:
        if self.waiters:
            conn.send(*self._next_waiter())
        else:
            self.idle.append(conn)

    def discard(self, conn: HttpConnection) -> None:
        self.connections.discard(conn)
        if conn in self.idle:
            self.idle.remove(conn)
        if self.waiters and not self.closed:
            self.submit(*self._next_waiter())

    def _next_waiter(self) -> tuple[bytes, Done, Callable[[bytes], None] | None]:
        data, done, on_chunk, queued = self.waiters.popleft()
        if time.monotonic_ns() - queued > WAIT_LIMIT_NS:
            self.waited_long += 1
        return data, done, on_chunk

    def _sweep(self) -> None:
        deadline = time.monotonic_ns() - self.timeout_ns
        for conn in list(self.connections):
            if conn.done is not None and conn.started_ns < deadline and conn.transport:
                conn.timed_out = True
                conn.transport.abort()
        if not self.closed:
            self._sweeper = self.loop.call_later(0.1, self._sweep)

    def in_flight(self) -> int:
        return sum(1 for c in self.connections if c.done is not None) + self.opening

    def close(self) -> None:
        self.closed = True
        self._sweeper.cancel()
        while self.waiters:
            _, done, _, _ = self.waiters.popleft()
            done("cancelled", None)
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.abort()
        self.idle.clear()
