"""HTTP/1.1 server connections for mme-local's front: parsing, ordering, responses.

Requests are parsed by httptools (llhttp, the parser of uvicorn and Node.js); its callbacks are
all the Python that parsing costs, less than byte searches in Python would. Requests on one
connection (pipelined ones included) are answered in the order they arrived, one at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
import urllib.parse
from collections import deque
from http import HTTPStatus
from typing import Protocol, cast

import httptools


@functools.cache
def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class Request:
    """One parsed request. Header names are looked up lower-case (``b"content-type"``)."""

    __slots__ = ("body", "fields", "keep_alive", "method", "url")

    def __init__(self) -> None:
        self.method = ""
        self.url = b""
        self.fields: dict[bytes, bytes] = {}
        self.body = b""
        self.keep_alive = True

    def raw(self, name: bytes) -> bytes | None:
        return self.fields.get(name)

    def header(self, name: bytes, default: str = "") -> str:
        value = self.fields.get(name)
        return default if value is None else value.decode("latin-1").strip()

    def parts(self) -> list[str]:
        """The path's segments, percent-decoded."""
        path = self.url.split(b"?", 1)[0].decode("latin-1").strip("/")
        if "%" in path:
            return [urllib.parse.unquote(part) for part in path.split("/")]
        return path.split("/")


class Handler(Protocol):
    def handle(self, conn: ClientConnection, request: Request) -> None:
        """Start answering ``request``; :meth:`ClientConnection.respond` exactly once, later or
        now. Must not raise."""
        ...


class ClientConnection(asyncio.Protocol):
    """One client connection; see the module docstring."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.request = Request()
        self.body: list[bytes] = []
        self.pending: deque[Request] = deque()
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
        except httptools.HttpParserError:  # HttpParserUpgrade included: no upgrades here
            self._bad_request()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.pending.clear()

    # -- httptools callbacks -------------------------------------------------------------------

    def on_url(self, url: bytes) -> None:
        self.request.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.request.fields[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        request, body = self.request, self.body
        self.request, self.body = Request(), []
        request.method = self.parser.get_method().decode("latin-1")
        request.keep_alive = self.parser.should_keep_alive()
        request.body = body[0] if len(body) == 1 else b"".join(body)
        if self.busy:
            self.pending.append(request)
        else:
            self.busy = True
            self.handler.handle(self, request)

    # -- responses -----------------------------------------------------------------------------

    def respond(
        self, request: Request, status: int, body: bytes, content_type: str, extra: str = ""
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
        elif self.pending:
            self.handler.handle(self, self.pending.popleft())
        else:
            self.busy = False

    def _bad_request(self) -> None:
        if self.busy:  # an answer is still due: a 400 now would be read as that answer
            if self.transport is not None:
                self.transport.close()
            return
        request = Request()
        request.keep_alive = False
        self.busy = True
        body = b'{"Message": "malformed HTTP request", "ErrorCode": "BadRequest"}'
        self.respond(request, 400, body, "application/json", "x-amzn-ErrorType: BadRequest\r\n")
