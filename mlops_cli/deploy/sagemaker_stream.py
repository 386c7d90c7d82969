"""Invoking an inference component (``InferenceComponentName``), streamed or not.

:func:`invoke_component` is one request to one component of an endpoint: ``InvokeEndpoint``, or
with ``request.stream`` ``InvokeEndpointWithResponseStream``. A Triton container serving a
streaming model (``SAGEMAKER_TRITON_INFERENCE_TYPE=generate_stream``) takes Triton's generate body
and answers server-sent events on both routes; any other component takes the body
:func:`~mlops_cli.deploy.sagemaker_runtime.encode_body` makes and answers one JSON document.

On the stream route botocore decodes the AWS event-stream framing (``response["Body"]``, an
``EventStream``): each ``PayloadPart`` carries the next bytes the container wrote, cut wherever
SageMaker cut them (an event may span parts, a part may hold several events); an error after the
stream began is an exception event (``ModelStreamError``: the container failed;
``InternalStreamFailure``: SageMaker did), which botocore raises while iterating.
:class:`PayloadReader` makes a file-like ``readline`` of the parts again, so the project's one
server-sent-event reader (:func:`mlops_cli.triton.client.read_events`, with its bound on one
event's size) reads them; it holds at most one line and one part. A chunk is yielded per event
as it arrives.

Errors are raised once, in one line: before the answer as
:func:`~mlops_cli.deploy.sagemaker_runtime.translate_runtime` says (a ModelError keeps the
container's first line); after it began, :class:`ModelInvocationError` for the model's failure
(a ``ModelStreamError`` event, or an ``{"error": ...}`` server-sent event) and
:class:`StreamBrokenError` for the rest. Every wait is bounded by ``request.timeout`` per read.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from mlops_cli.deploy.base import Chunk, InvokeRequest
from mlops_cli.deploy.sagemaker_runtime import (
    ModelInvocationError,
    decode_body,
    encode_body,
    runtime_client,
    translate_runtime,
)
from mlops_cli.errors import MlopsError
from mlops_cli.triton.client import MAX_EVENT_BYTES, read_events

EVENT_STREAM = "text/event-stream"


class StreamBrokenError(MlopsError):
    """A response stream that broke off after it began (SageMaker's ``InternalStreamFailure``,
    a connection lost or timed out mid-stream)."""

    default_hint = "the answer is incomplete: send the request again"


def stream_error(exc: BaseException, *, what: str) -> MlopsError:
    """An exception raised while reading a response stream, as one line."""
    if isinstance(exc, MlopsError):
        return exc
    response = getattr(exc, "response", None)
    error = response.get("Error", {}) if isinstance(response, dict) else {}
    code = str(error.get("Code", ""))
    message = str(error.get("Message") or exc)
    first = next((line.strip() for line in message.splitlines() if line.strip()), "no message")
    if code == "ModelStreamError":
        return ModelInvocationError(
            f"{what}: the model's stream failed: {first[:300]}",
            hint="see the container's log (mme-local: `mlops local logs`; SageMaker: CloudWatch)",
        )
    if code == "InternalStreamFailure":
        return StreamBrokenError(f"{what}: SageMaker broke off the stream: {first[:300]}")
    return StreamBrokenError(f"{what}: the stream broke off: {first[:300]}")


class PayloadReader:
    """The bytes of an event stream's ``PayloadPart`` events as a file with ``readline`` (see
    the module docstring). ``readline(limit)`` returns at most ``limit`` bytes, so a line
    without its end is never held whole; other events are skipped; a failure while reading
    is raised as :func:`stream_error` says."""

    def __init__(self, events: Iterable[Mapping[str, Any]], *, what: str) -> None:
        self._events = iter(events)
        self._buffer = bytearray()
        self._scanned = 0  # the buffer holds no newline before this offset
        self._ended = False
        self.what = what

    def readline(self, limit: int = -1) -> bytes:
        while True:
            end = self._buffer.find(b"\n", self._scanned)
            if end >= 0 and (limit < 0 or end < limit):
                return self._take(end + 1)
            if 0 <= limit <= len(self._buffer):
                return self._take(limit)
            if self._ended:
                return self._take(len(self._buffer))
            self._scanned = len(self._buffer)
            self._pull()

    def read(self, limit: int) -> bytes:
        """Everything up to the end of the stream, at most ``limit`` bytes."""
        while not self._ended and len(self._buffer) < limit:
            self._pull()
        return self._take(min(limit, len(self._buffer)))

    def _take(self, count: int) -> bytes:
        line = bytes(self._buffer[:count])
        del self._buffer[:count]
        self._scanned = 0
        return line

    def _pull(self) -> None:
        try:
            event = next(self._events)
        except StopIteration:
            self._ended = True
            return
        except Exception as exc:  # botocore's EventStreamError, urllib3's read errors
            raise stream_error(exc, what=self.what) from None
        part = event.get("PayloadPart")
        if isinstance(part, Mapping):
            self._buffer += part.get("Bytes") or b""


def stream_chunks(reader: Any, *, what: str) -> Iterator[Chunk]:
    """A chunk per server-sent event of ``reader`` (anything with ``readline``), as it arrives;
    an ``{"error": ...}`` event is the model's failure."""
    from mlops_cli.triton.codec import event_outputs

    for event in read_events(reader):
        if "error" in event:
            raise ModelInvocationError(
                f"{what}: the model's stream failed: {str(event['error'])[:300]}",
                hint="see the container's log (mme-local: `mlops local logs`; "
                "SageMaker: CloudWatch)",
            )
        outputs = event_outputs(event)
        if outputs:
            yield Chunk(outputs, time.monotonic())


def component_body(request: InvokeRequest) -> bytes:
    """The request body: Triton's generate body for a streaming Triton model (its container runs
    ``generate_stream``), else what an endpoint takes (:func:`encode_body`)."""
    if request.spec.runtime.startswith("triton") and request.spec.streaming:
        from mlops_cli.triton.codec import encode_inputs, generate_body, signature_of

        signature = signature_of(request.spec)
        tensors = encode_inputs(signature, request.inputs, model=request.spec.name)
        return json.dumps(generate_body(tensors)).encode()
    return encode_body(request)


def invoke_component(
    endpoint: str,
    component: str,
    region: str | None,
    request: InvokeRequest,
    *,
    runtime_url: str | None = None,
) -> Iterator[Chunk]:
    """One request to inference component ``component`` of ``endpoint``: a chunk per answer, or
    per streamed event as it arrives (see the module docstring). The target has checked the
    request against the model (a model that does not stream is not asked to). ``runtime_url``:
    a loopback stand-in (mme-local), called unsigned."""
    body = component_body(request)  # a bad input is refused before any call
    what = f"invoking inference component {component} on endpoint {endpoint}"
    accept = EVENT_STREAM if request.spec.streaming else "application/json"
    call = {
        "EndpointName": endpoint,
        "InferenceComponentName": component,
        "Body": body,
        "ContentType": "application/json",
        "Accept": accept,
    }
    try:
        client = runtime_client(
            region=region, runtime_url=runtime_url, read_timeout=request.timeout
        )
    except Exception as exc:
        raise translate_runtime(exc, what=what) from None
    if request.stream:
        return _streamed(client, call, request, what)
    return _answered(client, call, request, what)


def _answered(
    client: Any, call: Mapping[str, Any], request: InvokeRequest, what: str
) -> Iterator[Chunk]:
    try:
        response = client.invoke_endpoint(**call)
        payload = response["Body"].read(MAX_EVENT_BYTES + 1)
    except Exception as exc:
        raise translate_runtime(exc, what=what) from None
    if len(payload) > MAX_EVENT_BYTES:
        raise MlopsError(f"{what}: the answer is over {MAX_EVENT_BYTES:,} bytes")
    if _is_event_stream(response.get("ContentType"), payload):
        yield from stream_chunks(io.BytesIO(payload), what=what)
    else:
        yield Chunk(decode_body(request, payload), time.monotonic())


def _streamed(
    client: Any, call: Mapping[str, Any], request: InvokeRequest, what: str
) -> Iterator[Chunk]:
    try:
        response = client.invoke_endpoint_with_response_stream(**call)
    except Exception as exc:
        raise translate_runtime(exc, what=what) from None
    events = response["Body"]
    try:
        reader = PayloadReader(events, what=what)
        content_type = response.get("ContentType")
        if content_type is None or EVENT_STREAM in str(content_type):
            yield from stream_chunks(reader, what=what)
            return
        whole = reader.read(MAX_EVENT_BYTES + 1)  # an answer that does not stream: one chunk
        if len(whole) > MAX_EVENT_BYTES:
            raise MlopsError(f"{what}: the answer is over {MAX_EVENT_BYTES:,} bytes")
        yield Chunk(decode_body(request, whole), time.monotonic())
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()  # a consumer that stopped early leaves no connection reading


def _is_event_stream(content_type: object, payload: bytes) -> bool:
    if content_type is not None and EVENT_STREAM in str(content_type):
        return True
    return payload.lstrip()[:5] == b"data:"


__all__ = [
    "PayloadReader",
    "StreamBrokenError",
    "component_body",
    "invoke_component",
    "stream_chunks",
    "stream_error",
]
