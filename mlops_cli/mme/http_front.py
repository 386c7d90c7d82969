"""HTTP/1.1 server connections for mme-local's front: parsing, ordering, responses.

Requests are parsed by httptools (llhttp, the parser of uvicorn and Node.js); its callbacks are
all the Python that parsing costs, less than byte searches in Python would. Requests on one
connection (pipelined ones included) are answered in the order they arrived, one at a time.

Every request is bounded before it is kept:

- Its head (request line and header fields) is at most :data:`MAX_HEAD_BYTES`, its URL at most
  :data:`MAX_URL_BYTES` and its distinct header fields at most :data:`MAX_HEADER_FIELDS` (a
  field repeated is kept once, and the bytes bound how often it is repeated); over a limit it
  is refused with ``431`` (``414`` for the URL), as RFC 6585 and RFC 9110 say (SageMaker's front
  documents no answer of its own). The head is counted as it arrives, before httptools buffers it:
  the reads of a head are subtracted from what it may still take, and a read that would go past
  is fed only up to the limit. (A head that begins inside the read that ended the request before
  it is counted from the next read on, and from the limit's slice on when that read was sliced:
  it holds at most twice the limit, or one read.)
- Its body is at most :data:`MAX_BODY_BYTES` (SageMaker's InvokeEndpoint limit). A larger
  ``Content-Length`` is refused when the headers end, before any of the body is read; a chunked
  body is refused as soon as it grows past the limit, with SageMaker's ``413`` answer. Its raw
  bytes (chunk framing and trailer fields included) are counted too, against
  :data:`MAX_BODY_BYTES` plus :data:`BODY_FRAMING_BYTES`, and refused with the same ``413`` past
  that: a trailer cannot grow unbounded after a last chunk. Trailer fields are not kept.
- Its time: a head must be whole :data:`HEAD_TIMEOUT_S` after it was first seen incomplete, and a
  body that has begun must not go :data:`BODY_IDLE_S` without a byte, else the connection is
  closed (after a ``408`` when no other answer is due). A connection with no request begun is
  left open (keep-alive), as it costs no buffer.

Requests pipelined behind the one being answered are queued, at most :data:`MAX_PENDING` of them
before the connection stops reading (it reads again as the queue drains); the requests that the
read which filled the queue still holds are queued as well, so the queue holds at most one read
past the limit.

A refusal is written after the answers still due on the connection; then the connection is
closed. Until it closes, what the client still sends is read and dropped, never kept (for
:data:`LINGER_S` at most): a client that writes its whole request before it reads, as boto3 does,
then gets the refusal rather than a reset connection.
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
MAX_HEAD_BYTES = 16 * 1024  # boto3's heads are about 1 KiB
MAX_URL_BYTES = 8 * 1024  # as Apache's LimitRequestLine and nginx's default buffers
MAX_HEADER_FIELDS = 100
# Raw bytes a body may take beyond MAX_BODY_BYTES: chunk sizes and line ends (8 bytes a chunk:
# 6 MB in chunks of 1 KiB or more) and trailer fields.
BODY_FRAMING_BYTES = 64 * 1024
MAX_PENDING = 1  # pipelined requests queued behind the one being answered before reading pauses
HEAD_TIMEOUT_S = 10.0
BODY_IDLE_S = 10.0
LINGER_S = 5.0
# SageMaker's answer to a larger body: HTTP 413, a message and no error type (so boto3 reports
# "An error occurred (413) when calling the InvokeEndpoint operation: HTTP content length
# exceeded ... bytes.").
_TOO_LARGE = b'{"message": "HTTP content length exceeded %d bytes."}' % MAX_BODY_BYTES
_MAX_LENGTH_DIGITS = len(str(MAX_BODY_BYTES))
_HEAD_TOO_LARGE = b'{"message": "Request header fields exceed %d bytes or %d fields."}' % (
    MAX_HEAD_BYTES,
    MAX_HEADER_FIELDS,
)
_URL_TOO_LONG = b'{"message": "Request URI exceeds %d bytes."}' % MAX_URL_BYTES
_TIMED_OUT = b'{"message": "Request not received in time."}'


class _Refused(Exception):
    """Raised in a parser callback to stop parsing a refused request."""


def _drop(data: bytes | memoryview) -> None:
    """What a refused connection does with what the client still sends."""


@functools.cache
def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class Request:
    """One parsed request. Header names are looked up lower-case (``b"content-type"``)."""

    __slots__ = ("body", "fields", "keep_alive", "method", "repeated", "url")

    def __init__(self) -> None:
        self.method = ""
        self.url = b""
        self.fields: dict[bytes, bytes] = {}
        self.body = b""
        self.keep_alive = True
        self.repeated: list[bytes] | None = None  # names of header fields sent more than once

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
    """One client connection; see the module docstring.

    The body limit and the refusals' bodies are class attributes, so that another server (the
    router) serves with its own limit and its own error format by subclassing; the defaults are
    SageMaker's."""

    max_body_bytes = MAX_BODY_BYTES
    max_length_digits = _MAX_LENGTH_DIGITS
    too_large = _TOO_LARGE
    head_too_large = _HEAD_TOO_LARGE
    url_too_long = _URL_TOO_LONG
    timed_out = _TIMED_OUT
    bad_request_body = b'{"Message": "malformed HTTP request", "ErrorCode": "BadRequest"}'
    bad_request_extra = "x-amzn-ErrorType: BadRequest\r\n"

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        # The parser's feed, until a request is refused: then _drop
        self.feed: Callable[[bytes | memoryview], None] = self.parser.feed_data
        self.request = Request()
        self.body: list[bytes] = []
        self.body_room = self.max_body_bytes
        # bytes the head being read may still take; while a body is read (in_body), the raw
        # bytes the body may still take
        self.head_room = MAX_HEAD_BYTES
        self.in_body = False
        self.url_room = MAX_URL_BYTES
        self.partial = False  # a request has begun and is not whole yet
        self.head_deadline = 0.0  # loop time by which the partial head must be whole; 0: unset
        self.last_read = 0.0  # loop time of the last read while a request was partial
        self.watch: asyncio.TimerHandle | None = None  # closes a partial request that stalls
        self.pending: deque[Request] = deque()
        self.busy = False
        self.backlogged = False  # reading paused until pending drains
        # (status, body) to write once the answers due before it are written
        self.refusal: tuple[int, bytes] | None = None

    # -- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Without this, delayed ACKs stall each small response by up to 40 ms.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        room = self.head_room - len(data)
        try:
            if room >= 0:  # the warm path: a whole request in one read, or a body's read
                self.head_room = room
                self.feed(data)
            else:
                self._feed_bounded(data)
        except httptools.HttpParserError:  # HttpParserUpgrade included: no upgrades here
            if self.feed is not _drop:  # not a request refused in a callback
                self._bad_request()
            return
        if self.partial:
            self._watch_partial()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.pending.clear()
        if self.watch is not None:
            self.watch.cancel()
            self.watch = None

    def _feed_bounded(self, data: bytes) -> None:
        """Feed a read longer than the head (or body) being read may take: its share first,
        then, once it is whole, the rest; one that is not whole at its limit is refused."""
        view = memoryview(data)
        while view:
            room = self.head_room
            if len(view) <= room:
                self.head_room = room - len(view)
                self.feed(view)
                return
            self.head_room = 0
            self.feed(view[:room])
            if self.feed is _drop:  # refused in a callback
                return
            if self.head_room == 0:  # neither this head (body) nor a later one ended in the slice
                if self.in_body:
                    self._refuse(413, self.too_large)
                else:
                    self._refuse(431, self.head_too_large)
                return
            view = view[room:]

    def _watch_partial(self) -> None:
        """Note a read of a partial request; arm the watch that closes it if it stalls."""
        try:
            now = asyncio.get_running_loop().time()
        except RuntimeError:  # fed outside an event loop (a parser test): no clock to bound by
            return
        self.last_read = now
        if self.head_deadline == 0.0 and not self.in_body:
            self.head_deadline = now + HEAD_TIMEOUT_S
        if self.watch is None:
            self._check_partial()

    def _check_partial(self) -> None:
        """Close a partial request past its time; else look again when it would be."""
        self.watch = None
        if not self.partial or self.transport is None or self.feed is _drop:
            return
        loop = asyncio.get_running_loop()
        due = self.last_read + BODY_IDLE_S if self.in_body else self.head_deadline
        if loop.time() >= due:
            self._time_out()
        else:
            self.watch = loop.call_at(due, self._check_partial)

    def _time_out(self) -> None:
        self.feed = _drop
        self.partial = False
        transport = self.transport
        if transport is None:
            return
        if self.busy:  # an answer is still due: a 408 now would be read as that answer
            transport.close()
            return
        self.busy = True
        request = Request()
        request.keep_alive = False
        self.respond(request, 408, self.timed_out, "application/json")

    # -- httptools callbacks -------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.partial = True
        self.head_deadline = 0.0

    def on_url(self, url: bytes) -> None:
        self.url_room -= len(url)
        if self.url_room < 0:
            self._refuse(414, self.url_too_long)
            raise _Refused
        self.request.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.in_body:  # a trailer field is not kept (its bytes are counted)
            fields, key = self.request.fields, name.lower()
            if key in fields:
                if self.request.repeated is None:
                    self.request.repeated = []
                self.request.repeated.append(key)
            fields[key] = value

    def on_headers_complete(self) -> None:
        self.in_body = True
        self.head_room = self.max_body_bytes + BODY_FRAMING_BYTES
        if len(self.request.fields) > MAX_HEADER_FIELDS:  # kept few and small by head_room
            self._refuse(431, self.head_too_large)
            raise _Refused
        length = self.request.fields.get(b"content-length")  # digits only: llhttp checks
        if (
            length is not None
            and len(length) >= self.max_length_digits
            and int(length) > self.max_body_bytes
        ):
            self._refuse(413, self.too_large)
            raise _Refused

    def on_body(self, body: bytes) -> None:
        self.body.append(body)
        self.body_room -= len(body)
        if self.body_room < 0:  # a chunked body (a declared length was checked)
            self._refuse(413, self.too_large)
            raise _Refused

    def on_message_complete(self) -> None:
        request, body = self.request, self.body
        self.request, self.body = Request(), []
        self.body_room = self.max_body_bytes
        self.head_room = MAX_HEAD_BYTES
        self.in_body = False
        self.url_room = MAX_URL_BYTES
        self.partial = False
        request.method = self.parser.get_method().decode("latin-1")
        request.keep_alive = self.parser.should_keep_alive()
        request.body = body[0] if len(body) == 1 else b"".join(body)
        if self.busy:
            self.pending.append(request)
            if len(self.pending) >= MAX_PENDING and not self.backlogged:
                self.backlogged = True
                if self.transport is not None:
                    self.transport.pause_reading()
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
        self._answered(request, transport)

    def start_stream(
        self, request: Request, status: int, content_type: str, extra: str = ""
    ) -> bool:
        """Begin a chunked response (``extra`` as in :meth:`respond`); then :meth:`send_chunk`
        any number of times and :meth:`end_stream` (or :meth:`abort_stream`) once. False when
        the client is gone (end or abort it all the same)."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return False
        head = (
            f"HTTP/1.1 {status} {_phrase(status)}\r\nContent-Type: {content_type}\r\n"
            f"Transfer-Encoding: chunked\r\n{extra}"
            + ("\r\n" if request.keep_alive else "Connection: close\r\n\r\n")
        )
        transport.write(head.encode("latin-1"))
        return True

    def send_chunk(self, data: bytes) -> bool:
        """Write one chunk of a streamed response now. False when the client is gone."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return False
        if data:
            transport.write(b"%x\r\n%b\r\n" % (len(data), data))
        return True

    def write_buffered(self) -> int:
        """Bytes written and not yet sent to the client (a slow reader's backlog)."""
        transport = self.transport
        return 0 if transport is None else transport.get_write_buffer_size()

    def end_stream(self, request: Request) -> None:
        """Finish a streamed response, then serve the next request as :meth:`respond` does."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        transport.write(b"0\r\n\r\n")
        self._answered(request, transport)

    def abort_stream(self) -> None:
        """Cut a streamed response short: the client sees it end without its last chunk."""
        if self.transport is not None:
            self.transport.abort()

    def _answered(self, request: Request, transport: asyncio.Transport) -> None:
        if not request.keep_alive:
            self._close(transport)
        elif self.pending:
            request = self.pending.popleft()
            if self.backlogged and len(self.pending) < MAX_PENDING:
                self.backlogged = False
                if self.feed is not _drop:  # a refusal due reads again once written (_close)
                    transport.resume_reading()
            self.handler.handle(self, request)
        elif self.refusal is not None:
            self._write_refusal(*self.refusal)
        else:
            self.busy = False

    def _refuse(self, status: int, body: bytes) -> None:
        """Refuse the request being parsed (over a limit): stop parsing and buffering, answer
        ``status`` once the answers due before it are written, and close. In a parser callback,
        raise :class:`_Refused` after it to stop the parser."""
        self.feed = _drop
        self.body = []
        self.request = Request()
        self.partial = False
        self.in_body = False
        if self.busy:
            self.refusal = (status, body)
            if self.transport is not None and self.transport.is_reading():
                self.transport.pause_reading()  # read again to drop the rest once answered
        else:
            self.busy = True
            self._write_refusal(status, body)

    def _write_refusal(self, status: int, body: bytes) -> None:
        self.refusal = None
        request = Request()
        request.keep_alive = False
        self.respond(request, status, body, "application/json")

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
        self.respond(
            request, 400, self.bad_request_body, "application/json", self.bad_request_extra
        )
