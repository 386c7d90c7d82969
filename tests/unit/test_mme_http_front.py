"""mme-local's HTTP plumbing without servers: requests and container answers split over reads,
chunked or pipelined, keep-alive, malformed input, and the order of answers on one
connection."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from mlops_cli.mme.containers import ContainerReply
from mlops_cli.mme.http_front import ClientConnection, Request
from mlops_cli.mme.upstream import UpstreamPool, _UpstreamConnection

pytestmark = pytest.mark.unit

INVOKE = (
    b"POST /endpoints/ep/invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b'X-Amzn-SageMaker-Target-Model: m-v1.tar.gz\r\nContent-Length: 7\r\n\r\n{"a":1}'
)


class FakeTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    abort = close

    def get_extra_info(self, name: str) -> Any:
        return None


class Echo:
    """Answers each request at once with its method, path, target header and body."""

    def __init__(self) -> None:
        self.seen: list[Request] = []

    def handle(self, conn: ClientConnection, request: Request) -> None:
        self.seen.append(request)
        text = f"{request.method} {request.url.decode()} {request.header(b'x-amzn-sagemaker-target-model')}"
        conn.respond(request, 200, text.encode() + b" " + request.body, "text/plain")


def connect(handler: Echo) -> tuple[ClientConnection, FakeTransport]:
    conn, transport = ClientConnection(handler), FakeTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    return conn, transport


def test_a_request_is_parsed_with_its_headers_and_body() -> None:
    handler = Echo()
    conn, transport = connect(handler)
    conn.data_received(INVOKE)
    [request] = handler.seen
    assert (request.method, request.url, request.body) == (
        "POST",
        b"/endpoints/ep/invocations",
        b'{"a":1}',
    )
    assert request.header(b"x-amzn-sagemaker-target-model") == "m-v1.tar.gz"
    assert request.header(b"content-type") == "application/json"
    assert request.raw(b"accept") is None and request.keep_alive
    assert request.parts() == ["endpoints", "ep", "invocations"]
    assert transport.written[0].endswith(b'm-v1.tar.gz {"a":1}') and not transport.closed


@pytest.mark.parametrize(
    ("data", "keep_alive"),
    [
        (b"GET /ping HTTP/1.1\r\nConnection: close\r\n\r\n", False),
        (b"GET /ping HTTP/1.0\r\n\r\n", False),
        (b"GET /ping HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", True),
        (b"GET /ping HTTP/1.1\r\n\r\n", True),
    ],
)
def test_keep_alive_follows_the_version_and_connection_header(
    data: bytes, keep_alive: bool
) -> None:
    handler = Echo()
    conn, transport = connect(handler)
    conn.data_received(data)
    assert handler.seen[0].keep_alive is keep_alive
    assert transport.closed is not keep_alive
    assert (b"Connection: close" in transport.written[0]) is not keep_alive


def test_split_and_pipelined_requests_are_answered_in_order() -> None:
    handler = Echo()
    conn, transport = connect(handler)
    conn.data_received(INVOKE[:30])
    conn.data_received(INVOKE[30:] + INVOKE.replace(b"m-v1", b"m-v2"))
    chunked = b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"
    conn.data_received(chunked)
    conn.data_received(INVOKE)
    answers = [data.split(b"\r\n\r\n", 1)[1] for data in transport.written]
    assert answers == [
        b'POST /endpoints/ep/invocations m-v1.tar.gz {"a":1}',
        b'POST /endpoints/ep/invocations m-v2.tar.gz {"a":1}',
        b"POST /c  hi",
        b'POST /endpoints/ep/invocations m-v1.tar.gz {"a":1}',
    ]


def test_a_malformed_request_is_refused_and_the_connection_closed() -> None:
    conn, transport = connect(Echo())
    conn.data_received(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n")
    assert transport.written[0].startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"Connection: close" in transport.written[0] and transport.closed


MMS_ANSWER = (
    b"HTTP/1.1 200 \r\ncontent-type: application/json\r\nx-request-id: 1\r\n"
    b'content-length: 9\r\nconnection: keep-alive\r\n\r\n{"out":1}'
)


def test_container_answers_whole_split_or_chunked() -> None:
    async def scenario() -> list[Any]:
        pool = UpstreamPool("127.0.0.1", 9)
        conn = _UpstreamConnection(pool)
        conn.connection_made(FakeTransport())  # type: ignore[arg-type]
        replies: list[Any] = []
        for parts in (
            [MMS_ANSWER[:20], MMS_ANSWER[20:]],
            [
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"2\r\nab\r\n",
                b"1\r\nc\r\n0\r\n\r\n",
            ],
            [MMS_ANSWER],
        ):
            conn.send(b"POST / HTTP/1.1\r\n\r\n", lambda r, e: replies.append((r, e)), reused=False)
            for part in parts:
                conn.data_received(part)
        pool.close()
        return replies

    replies = asyncio.run(scenario())
    assert replies == [
        (ContainerReply(200, b'{"out":1}', "application/json"), None),
        (ContainerReply(200, b"abc", "text/plain"), None),
        (ContainerReply(200, b'{"out":1}', "application/json"), None),
    ]


def test_a_reused_connection_closed_before_answering_is_retried_once() -> None:
    async def scenario() -> list[Any]:
        with socket.socket() as listener:  # a port that refuses: the retry's connect fails
            listener.bind(("127.0.0.1", 0))
            port = listener.getsockname()[1]
        pool = UpstreamPool("127.0.0.1", port)
        outcomes: list[Any] = []
        for reused in (True, False):
            conn = _UpstreamConnection(pool)
            conn.connection_made(FakeTransport())  # type: ignore[arg-type]
            conn.send(b"POST / HTTP/1.1\r\n\r\n", lambda r, e: outcomes.append(e), reused=reused)
            conn.connection_lost(None)
            await asyncio.sleep(0.2)
        pool.close()
        return outcomes

    retried, lost = asyncio.run(scenario())
    assert isinstance(retried, ConnectionRefusedError)  # it was sent again, on a new connection
    assert isinstance(lost, ConnectionError) and "closed the connection" in str(lost)
