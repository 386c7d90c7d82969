"""HTTP/1.1 server connections for mme-local's front: parsing, ordering, responses.

Requests are parsed by httptools (llhttp, the parser of uvicorn and Node.js); its callbacks are
all the Python that parsing costs, less than byte searches in Python would. Requests on one
connection (pipelined ones included) are answered in the order they arrived, one at a time.

A request body is at most :data:`MAX_BODY_BYTES` (SageMaker's InvokeEndpoint limit). A larger
``Content-Length`` is refused when the headers end, before any of the body is read; a chunked body
is refused as soon as it grows past the limit. The refusal is SageMaker's ``413`` answer, written
after the answers still due on the connection; then the connection is closed. Until it closes,
what the client still sends is read and dropped, never kept (for :data:`LINGER_S` at most): a
client that writes its whole body before it reads, as boto3 does, then gets the 413 rather than a
reset connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
import urllib.parse
from collections import deque
from collections.abc import Callable
from http import HTTPStatus
from typing import Protocol, cast

import httptools

MAX_BODY_BYTES = 6 * 1024 * 1024  # SageMaker: "Maximum payload size for InvokeEndpoint: 6 MB"
LINGER_S = 5.0
# SageMaker's answer to a larger body: HTTP 413, a message and no error type (so boto3 reports
# "An error occurred (413) when calling the InvokeEndpoint operation: HTTP content length
# exceeded ... bytes.").
_TOO_LARGE = b'{"message": "HTTP content length exceeded %d bytes."}' % MAX_BODY_BYTES
_MAX_LENGTH_DIGITS = len(str(MAX_BODY_BYTES))


class _BodyTooLarge(Exception):
    """Raised in a parser callback to stop parsing a refused request."""


def _drop(data: bytes) -> None:
    """What a refused connection does with what the client still sends."""


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
        self.feed: Callable[[bytes], None] = self.parser.feed_data  # _drop once refused
        self.request = Request()
        self.body: list[bytes] = []
        self.body_room = MAX_BODY_BYTES
        self.pending: deque[Request] = deque()
        self.busy = False
        self.refusal_due = False  # a 413 to write once the answers due before it are written

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
            self.feed(data)
        except httptools.HttpParserError:  # HttpParserUpgrade included: no upgrades here
            if self.feed is not _drop:  # not a request refused in a callback
                self._bad_request()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.pending.clear()

    # -- httptools callbacks -------------------------------------------------------------------

    def on_url(self, url: bytes) -> None:
        self.request.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.request.fields[name.lower()] = value

    def on_headers_complete(self) -> None:
        length = self.request.fields.get(b"content-length")  # digits only: llhttp checks
        if (
            length is not None
            and len(length) >= _MAX_LENGTH_DIGITS
            and int(length) > MAX_BODY_BYTES
        ):
            self._refuse_too_large()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)
        self.body_room -= len(body)
        if self.body_room < 0:  # a chunked body (a declared length was checked)
            self._refuse_too_large()

    def on_message_complete(self) -> None:
        request, body = self.request, self.body
        self.request, self.body = Request(), []
        self.body_room = MAX_BODY_BYTES
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
            self._close(transport)
        elif self.pending:
            self.handler.handle(self, self.pending.popleft())
        elif self.refusal_due:
            self._write_refusal()
        else:
            self.busy = False

    def _refuse_too_large(self) -> None:
        """Refuse the request being parsed (its body is over the limit): stop parsing and
        buffering, answer 413 once the answers due before it are written, and close."""
        self.feed = _drop
        self.body = []
        if self.busy:
            self.refusal_due = True
            if self.transport is not None:
                self.transport.pause_reading()  # read again to drop the rest once answered
        else:
            self.busy = True
            self._write_refusal()
        raise _BodyTooLarge

    def _write_refusal(self) -> None:
        self.refusal_due = False
        request = Request()
        request.keep_alive = False
        self.respond(request, 413, _TOO_LARGE, "application/json")

    def _close(self, transport: asyncio.Transport) -> None:
        """Close after the answer is written; a refused request's sender is read to the end
        first (dropping what it sends, for LINGER_S at most) so that it reads the answer."""
        if self.feed is not _drop or not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        if not transport.is_reading():
            transport.resume_reading()
        asyncio.get_running_loop().call_later(LINGER_S, transport.close)

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
