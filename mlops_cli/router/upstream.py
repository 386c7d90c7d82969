"""Keep-alive HTTP/1.1 connections from the router's event loop to one model server.

A request is prebuilt ``bytes``; its answer is handed to an :class:`Exchange` piece by piece as
httptools parses it (``head``, then ``body`` for each piece as it arrives, then ``end``), so a
stream passes through chunk by chunk and nothing is buffered whole. There is no task or future
per request.

Idle connections are reused last-in first-out; a request finding none opens a new one. A reused
connection that the server had closed before answering is retried once on a fresh one (the
request never ran). An answer that goes ``timeout`` seconds without a byte fails with
:class:`TimeoutError`; a connection that cannot be opened fails with the ``OSError`` of the
connect, and ``answered`` False, so that the caller may send the request elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from typing import Protocol, cast

import httptools


class Exchange(Protocol):
    """Receives one answer. ``fail`` ends it instead of ``end``; ``answered`` says whether any of
    the answer had arrived (a request that got no byte back may be sent again elsewhere)."""

    def head(self, status: int, content_type: str) -> None: ...

    def body(self, data: bytes) -> None: ...

    def end(self) -> None: ...

    def fail(self, error: OSError, answered: bool) -> None: ...


class _Connection(asyncio.Protocol):
    def __init__(self, pool: UpstreamPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.exchange: Exchange | None = None
        self.request = b""
        self.reused = False
        self.answered = False
        self.last_byte = 0.0
        self.content_type = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.answered = True
        self.last_byte = time.monotonic()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionError(f"bad response from {self.pool.where}: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.pool.discard(self)
        exchange, self.exchange = self.exchange, None
        if exchange is None:
            return
        if self.reused and not self.answered:  # a keep-alive connection the server had closed
            self.pool.submit(self.request, exchange, retry=False)
        else:
            exchange.fail(
                ConnectionError(f"{self.pool.where} closed the connection"), self.answered
            )

    # -- httptools callbacks -------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) == 12 and name.lower() == b"content-type":
            self.content_type = value.decode("latin-1").strip()

    def on_headers_complete(self) -> None:
        if self.exchange is not None:
            self.exchange.head(self.parser.get_status_code(), self.content_type)
        self.content_type = ""

    def on_body(self, body: bytes) -> None:
        if self.exchange is not None:
            self.exchange.body(body)

    def on_message_complete(self) -> None:
        exchange, self.exchange = self.exchange, None
        if self.parser.should_keep_alive():
            if not self.pool.closed:
                self.pool.idle.append(self)
        elif self.transport is not None:
            self.transport.close()
        if exchange is not None:
            exchange.end()

    # -- use -----------------------------------------------------------------------------------

    def send(self, request: bytes, exchange: Exchange, *, reused: bool) -> None:
        self.exchange, self.request, self.reused = exchange, request, reused
        self.answered = False
        self.last_byte = time.monotonic()
        self.transport.write(request)  # type: ignore[union-attr]

    def _fail(self, error: OSError) -> None:
        exchange, self.exchange = self.exchange, None
        if self.transport is not None:
            self.transport.abort()
        if exchange is not None:
            exchange.fail(error, self.answered)


class UpstreamPool:
    """Keep-alive connections to one server at ``host:port``; see the module docstring."""

    def __init__(self, host: str, port: int, *, timeout: float) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.where = f"{host}:{port}"
        self.loop = asyncio.get_running_loop()
        self.idle: list[_Connection] = []
        self.connections: set[_Connection] = set()
        self.closed = False
        self._sweeper = self.loop.call_later(1.0, self._sweep)

    def submit(self, request: bytes, exchange: Exchange, *, retry: bool = True) -> None:
        """Send ``request``; ``exchange`` receives the answer or the failure."""
        if self.closed:
            exchange.fail(ConnectionError("the router is shutting down"), False)
        elif self.idle:
            self.idle.pop().send(request, exchange, reused=retry)
        else:
            self.loop.create_task(self._open_and_send(request, exchange))

    async def _open_and_send(self, request: bytes, exchange: Exchange) -> None:
        try:
            _, conn = await asyncio.wait_for(
                self.loop.create_connection(lambda: _Connection(self), self.host, self.port),
                timeout=min(self.timeout, 10.0),
            )
        except OSError as exc:
            exchange.fail(exc, False)
            return
        except TimeoutError:
            exchange.fail(ConnectionError(f"cannot connect to {self.where} in time"), False)
            return
        if self.closed:
            conn.transport.abort()  # type: ignore[union-attr]
            exchange.fail(ConnectionError("the router is shutting down"), False)
            return
        self.connections.add(conn)
        conn.send(request, exchange, reused=False)

    def discard(self, conn: _Connection) -> None:
        self.connections.discard(conn)
        if conn in self.idle:
            self.idle.remove(conn)

    def _sweep(self) -> None:
        quiet_since = time.monotonic() - self.timeout
        for conn in list(self.connections):
            if conn.exchange is not None and conn.last_byte < quiet_since:
                conn._fail(TimeoutError(f"{self.where} sent nothing for {self.timeout:g} s"))
        if not self.closed:
            self._sweeper = self.loop.call_later(min(1.0, self.timeout / 4), self._sweep)

    def close(self) -> None:
        self.closed = True
        self._sweeper.cancel()
        for conn in list(self.connections):
            conn._fail(ConnectionError("the router is shutting down"))
        self.idle.clear()
