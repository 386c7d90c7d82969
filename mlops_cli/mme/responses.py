"""The answers mme-local writes, as sagemaker-runtime writes them: an error (``x-amzn-ErrorType``
and a JSON body), a model's answer on ``invocations``, the same framed as ``PayloadPart`` events
on ``invocations-response-stream``, and JSON for the control routes. No I/O of its own: each
writes through the client's :class:`~mlops_cli.mme.http_front.ClientConnection`."""

from __future__ import annotations

import json
from typing import Any

from mlops_cli.mme.eventstream import payload_part
from mlops_cli.mme.http_front import ClientConnection, Request
from mlops_cli.mme.runtime_errors import AgentError

STREAM_CHUNK = 64 * 1024  # the largest PayloadPart of an answer that came whole
EVENT_STREAM = "application/vnd.amazon.eventstream"
VARIANT = "x-Amzn-Invoked-Production-Variant: AllTraffic\r\n"


def respond_error(conn: ClientConnection, request: Request, error: AgentError) -> None:
    body = json.dumps(error.body()).encode()
    extra = f"x-amzn-ErrorType: {error.code}\r\n"
    conn.respond(request, error.status, body, "application/json", extra)


def respond_json(conn: ClientConnection, request: Request, data: Any) -> None:
    conn.respond(request, 200, json.dumps(data).encode(), "application/json")


def stream_headers(content_type: str) -> str:
    """The header lines of a response-stream answer whose payload is ``content_type``."""
    return f"X-Amzn-SageMaker-Content-Type: {content_type}\r\n{VARIANT}"


def respond_answer(
    conn: ClientConnection, request: Request, body: bytes, content_type: str, *, stream: bool
) -> None:
    """A model's whole answer: as it is, or (``stream``) in PayloadParts of STREAM_CHUNK."""
    if not stream:
        conn.respond(request, 200, body, content_type, VARIANT)
        return
    frames = b"".join(
        payload_part(body[offset : offset + STREAM_CHUNK])
        for offset in range(0, max(len(body), 1), STREAM_CHUNK)
    )
    conn.respond(request, 200, frames, EVENT_STREAM, stream_headers(content_type))


__all__ = [
    "EVENT_STREAM",
    "STREAM_CHUNK",
    "VARIANT",
    "respond_answer",
    "respond_error",
    "respond_json",
    "stream_headers",
]
