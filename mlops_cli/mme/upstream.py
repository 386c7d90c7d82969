"""Non-blocking keep-alive connections from mme-local's event loop to a container.

A request is prebuilt ``bytes`` (from the container's :meth:`Container.invoke_head`), so sending
is one ``transport.write``; the response, parsed by httptools, is handed to a callback with no
task or future per request. Idle connections are reused last-in first-out; a request finding
none opens a new one, so there are as many connections as requests in flight. A reused
connection that the container had closed before answering is retried once on a fresh one (the
request never ran). A sweeper aborts requests that exceed the timeout.

A streamed answer (:func:`open_stream`) goes on a connection of its own: each piece of the body is
handed to an :class:`Exchange` as httptools parses it (chunked framing removed), so nothing is
buffered whole, and the stream fails once the container sends nothing for the timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable
from typing import Protocol, cast

import httptools

from mlops_cli.mme.containers import ContainerReply

# done(reply, None) with the container's answer (any status), or done(None, error).
Done = Callable[[ContainerReply | None, OSError | None], None]


class _UpstreamConnection(asyncio.Protocol):
    def __init__(self, pool: UpstreamPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.done: Done | None = None
        self.request = b""
        self.reused = False
        self.answered = False
        self.started = 0.0
        self.parts: list[bytes] = []
        self.content_type = ""

    # -- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.answered = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionError(f"bad response from the container: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.pool.discard(self)
        done, self.done = self.done, None
        if done is None:
            return
        if self.reused and not self.answered:
            # A keep-alive connection the container had closed: the request never ran.
            self.pool.submit(self.request, done, retry=False)
        else:
            done(None, ConnectionError("the container closed the connection"))

    # -- httptools callbacks -------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) == 12 and name.lower() == b"content-type":
            self.content_type = value.decode("latin-1").strip()

    def on_body(self, body: bytes) -> None:
        self.parts.append(body)

    def on_message_complete(self) -> None:
        reply = ContainerReply(
            self.parser.get_status_code(), b"".join(self.parts), self.content_type
        )
        self.parts, self.content_type = [], ""
        done, self.done = self.done, None
        if self.parser.should_keep_alive():
            if not self.pool.closed:
                self.pool.idle.append(self)
        elif self.transport is not None:
            self.transport.close()
        if done is not None:
            done(reply, None)

    # -- use -----------------------------------------------------------------------------------

    def send(self, request: bytes, done: Done, *, reused: bool) -> None:
        self.done, self.request, self.reused = done, request, reused
        self.answered = False
        self.started = time.monotonic()
        self.transport.write(request)  # type: ignore[union-attr]

    def _fail(self, error: OSError) -> None:
        done, self.done = self.done, None
        if self.transport is not None:
            self.transport.abort()
        if done is not None:
            done(None, error)


class UpstreamPool:
    """Keep-alive connections to one container at ``host:port``; see the module docstring."""

    def __init__(self, host: str, port: int, *, timeout: float = 120.0) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.loop = asyncio.get_running_loop()
        self.idle: list[_UpstreamConnection] = []
        self.connections: set[_UpstreamConnection] = set()
        self.closed = False
        self._sweeper = self.loop.call_later(1.0, self._sweep)

    def submit(self, request: bytes, done: Done, *, retry: bool = True) -> None:
        """Send ``request``; ``done`` is called once with the reply or the error."""
        if self.closed:
            done(None, ConnectionError("mme-local is shutting down"))
        elif self.idle:
            self.idle.pop().send(request, done, reused=retry)
        else:
            self.loop.create_task(self._open_and_send(request, done))

    async def _open_and_send(self, request: bytes, done: Done) -> None:
        try:
            _, conn = await asyncio.wait_for(
                self.loop.create_connection(
                    lambda: _UpstreamConnection(self), self.host, self.port
                ),
                timeout=self.timeout,
            )
        except (OSError, TimeoutError) as exc:
            done(None, exc if isinstance(exc, OSError) else ConnectionError(str(exc)))
            return
        if self.closed:
            conn.transport.abort()  # type: ignore[union-attr]
            done(None, ConnectionError("mme-local is shutting down"))
            return
        self.connections.add(conn)
        conn.send(request, done, reused=False)

    def discard(self, conn: _UpstreamConnection) -> None:
        self.connections.discard(conn)
        if conn in self.idle:
            self.idle.remove(conn)

    def _sweep(self) -> None:
        deadline = time.monotonic() - self.timeout
        for conn in list(self.connections):
            if conn.done is not None and conn.started < deadline:
                conn._fail(TimeoutError(f"the container did not answer in {self.timeout:g} s"))
        if not self.closed:
            self._sweeper = self.loop.call_later(1.0, self._sweep)

    def close(self) -> None:
        self.closed = True
        self._sweeper.cancel()
        for conn in list(self.connections):
            conn._fail(ConnectionError("mme-local is shutting down"))
        self.idle.clear()


class Exchange(Protocol):
    """Receives one streamed answer: ``head``, ``body`` per piece as it arrives, then ``end``;
    or ``fail`` instead of ``end`` (``answered``: whether any byte of the answer had come)."""

    def head(self, status: int, content_type: str) -> None: ...

    def body(self, data: bytes) -> None: ...

    def end(self) -> None: ...

    def fail(self, error: OSError, answered: bool) -> None: ...


class StreamConnection(asyncio.Protocol):
    """One request and its streamed answer on a connection of its own (:func:`open_stream`)."""

    def __init__(self, request: bytes, exchange: Exchange, timeout: float) -> None:
        self.request, self.timeout = request, timeout
        self.exchange: Exchange | None = exchange
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.answered = False
        self.content_type = ""
        self.last_byte = 0.0
        self._watch: asyncio.TimerHandle | None = None
        self.task: asyncio.Task[None] | None = None  # the connect, referenced while it runs

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.exchange is None:  # closed while it connected
            cast(asyncio.Transport, transport).abort()
            return
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.last_byte = time.monotonic()
        self._watch = asyncio.get_running_loop().call_later(self.timeout, self._check_quiet)
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.answered = True
        self.last_byte = time.monotonic()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionError(f"bad response from the container: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(ConnectionError("the container closed the connection"))

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) == 12 and name.lower() == b"content-type":
            self.content_type = value.decode("latin-1").strip()

    def on_headers_complete(self) -> None:
        if self.exchange is not None:
            self.exchange.head(self.parser.get_status_code(), self.content_type)

    def on_body(self, body: bytes) -> None:
        if self.exchange is not None:
            self.exchange.body(body)

    def on_message_complete(self) -> None:
        exchange, self.exchange = self.exchange, None
        self.close()
        if exchange is not None:
            exchange.end()

    def _check_quiet(self) -> None:
        self._watch = None
        if self.exchange is None:
            return
        quiet = time.monotonic() - self.last_byte
        if quiet >= self.timeout:
            self._fail(TimeoutError(f"the container sent nothing for {self.timeout:g} s"))
        else:
            loop = asyncio.get_running_loop()
            self._watch = loop.call_later(self.timeout - quiet, self._check_quiet)

    def _fail(self, error: OSError) -> None:
        exchange, self.exchange = self.exchange, None
        self.close()
        if exchange is not None:
            exchange.fail(error, self.answered)

    def close(self) -> None:
        """Stop: the exchange hears nothing more (the container sees the connection end)."""
        self.exchange = None
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        if self.transport is not None:
            self.transport.abort()
            self.transport = None


def open_stream(
    address: tuple[str, int], request: bytes, exchange: Exchange, *, timeout: float
) -> StreamConnection:
    """Send ``request`` to ``address`` on a new connection and stream the answer to
    ``exchange``; :meth:`StreamConnection.close` stops it early. Called in the event loop."""
    loop = asyncio.get_running_loop()
    connection = StreamConnection(request, exchange, timeout)

    async def connect() -> None:
        try:
            await asyncio.wait_for(
                loop.create_connection(lambda: connection, *address), timeout=min(timeout, 10.0)
            )
        except OSError as exc:  # TimeoutError included
            connection._fail(exc)

    connection.task = loop.create_task(connect())
    return connection
