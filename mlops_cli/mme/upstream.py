"""Non-blocking keep-alive connections from mme-local's event loop to a container.

A request is prebuilt ``bytes`` (from the container's :meth:`Container.invoke_head`), so sending
is one ``transport.write``; the response, parsed by httptools, is handed to a callback with no
task or future per request. Idle connections are reused last-in first-out; a request finding
none opens a new one, so there are as many connections as requests in flight. A reused
connection that the container had closed before answering is retried once on a fresh one (the
request never ran). A sweeper aborts requests that exceed the timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable
from typing import cast

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
