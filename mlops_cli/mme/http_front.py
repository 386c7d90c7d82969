"""HTTP/1.1 server connections for mme-local's front: parsing, ordering, responses.

A request that arrives whole in one read, framed by ``Content-Length`` (what SDK clients send),
is parsed by :func:`parse_request`, a few byte searches; anything else (a body split over reads,
chunked bodies, pipelined requests, malformed input) goes through httptools. Requests on one
connection are answered in the order they arrived, one at a time.
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

_VERSIONS = (b"HTTP/1.1", b"HTTP/1.0")


@functools.cache
def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class Request:
    """One parsed request. Header names are looked up lower-case (``b"content-type"``)."""

    __slots__ = ("body", "fields", "head", "keep_alive", "lower", "method", "url")

    def __init__(self) -> None:
        self.method = ""
        self.url = b""
        self.fields: dict[bytes, bytes] | None = None  # from httptools
        self.head = self.lower = b""  # else the raw header block (CRLF first and last), lowered
        self.body = b""
        self.keep_alive = True

    def raw(self, name: bytes) -> bytes | None:
        if self.fields is not None:
            return self.fields.get(name)
        at = self.lower.find(b"\r\n" + name + b":")
        if at < 0:
            return None
        start = at + len(name) + 3
        return self.head[start : self.head.find(b"\r\n", start)].strip()

    def header(self, name: bytes, default: str = "") -> str:
        value = self.raw(name)
        return default if value is None else value.decode("latin-1").strip()

    def parts(self) -> list[str]:
        """The path's segments, percent-decoded."""
        path = self.url.split(b"?", 1)[0].decode("latin-1").strip("/")
        if "%" in path:
            return [urllib.parse.unquote(part) for part in path.split("/")]
        return path.split("/")


def parse_request(data: bytes) -> Request | None:
    """The request when ``data`` is exactly one whole request with no body or a
    ``Content-Length`` one; None for anything else (the caller falls back to httptools)."""
    line_end = data.find(b"\r\n")
    end = data.find(b"\r\n\r\n")
    if end < 0 or line_end <= 0:
        return None
    method, _, rest = data[:line_end].partition(b" ")
    url, _, version = rest.partition(b" ")
    if version not in _VERSIONS or not url.startswith(b"/") or not method.isupper():
        return None
    head = data[line_end : end + 2]
    lines = head.count(b"\r\n") - 1
    if (
        head.count(b":") < lines or head.count(b"\n") != lines + 1
    ):  # a line with no colon, a bare LF
        return None
    lower = head.lower()
    if b"\r\ntransfer-encoding:" in lower or b"\r\nexpect:" in lower or b"\r\nupgrade:" in lower:
        return None
    length = 0
    at = lower.find(b"\r\ncontent-length:")
    if at >= 0:
        try:
            length = int(lower[at + 17 : lower.find(b"\r\n", at + 17)])
        except ValueError:
            return None
    if len(data) - end - 4 != length:
        return None
    request = Request()
    request.method = method.decode("latin-1")
    request.url, request.head, request.lower = url, head, lower
    request.body = data[end + 4 :]
    connection = request.raw(b"connection")
    if version == b"HTTP/1.1":
        request.keep_alive = connection is None or b"close" not in connection.lower()
    else:
        request.keep_alive = connection is not None and b"keep-alive" in connection.lower()
    return request


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
        self.in_message = False  # httptools holds part of a request
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
        if not (self.busy or self.in_message):
            request = parse_request(data)
            if request is not None:
                self.busy = True
                self.handler.handle(self, request)
                return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:  # HttpParserUpgrade included: no upgrades here
            self._bad_request()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.pending.clear()

    # -- httptools callbacks -------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.in_message = True
        self.request = Request()
        self.request.fields = {}
        self.body = []

    def on_url(self, url: bytes) -> None:
        self.request.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.request.fields[name.lower()] = value  # type: ignore[index]

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.in_message = False
        request = self.request
        request.method = self.parser.get_method().decode("latin-1")
        request.keep_alive = self.parser.should_keep_alive()
        request.body = b"".join(self.body)
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
        request = Request()
        request.keep_alive = False
        self.busy = True
        body = b'{"Message": "malformed HTTP request", "ErrorCode": "BadRequest"}'
        self.respond(request, 400, body, "application/json", "x-amzn-ErrorType: BadRequest\r\n")
