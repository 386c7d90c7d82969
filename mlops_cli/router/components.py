"""The router's calls to an endpoint's inference component (:class:`ComponentUpstream`).

boto3 blocks, so a call runs on the router's blocking thread pool and hands the answer to the
event loop (``call_soon_threadsafe``) the way a Triton answer reaches an
:class:`~mlops_cli.router.upstream.Exchange`: ``head``, ``body`` for each piece, then ``end``;
or ``fail`` instead of ``end``. Exactly one of the two ends every call.

- ``generate_stream``: ``InvokeEndpointWithResponseStream``. The bytes of each ``PayloadPart``
  (the container's server-sent events, cut wherever SageMaker cut them) are passed on as they
  arrive, so the client reads the body a Triton upstream would send, chunk by chunk. An error
  event after the answer began (``ModelStreamError``, ``InternalStreamFailure``) ends the stream
  with one event ``data: {"error": "..."}`` (what Triton sends when a stream fails); a connection
  lost or a read timed out mid-stream cuts it (``fail``). Once the client is gone or cut off for
  falling behind, the thread stops reading and closes the stream.
- anything else (``infer``, ``generate``): ``InvokeEndpoint``, its answer passed on whole.

A refusal of SageMaker's before the answer (a model error, a validation error, a throttle) keeps
its HTTP status and is answered in the router's error format, one JSON line; an endpoint that
cannot be reached is ``fail`` with a ``ConnectionRefusedError`` before any byte, so the router
may send the request to another replica. Each read waits at most ``timeout`` seconds.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from typing import Any

from mlops_cli.router.table import ComponentUpstream
from mlops_cli.router.upstream import Exchange

_JSON = "application/json"
_EVENT_STREAM = "text/event-stream"

MAX_ANSWER_BYTES = 64 << 20  # a whole answer read into memory at most (as invoke reads)


def refusal_of(exc: BaseException) -> tuple[int, bytes, str]:
    """SageMaker's refusal (a botocore ``ClientError``) as the router answers it: the status,
    one JSON line and its content type."""
    response: Mapping[str, Any] = getattr(exc, "response", None) or {}
    meta = response.get("ResponseMetadata", {})
    status = int(meta.get("HTTPStatusCode") or 502)
    message = str(response.get("Error", {}).get("Message") or exc)
    first = next((line.strip() for line in message.splitlines() if line.strip()), "no message")
    return status, json.dumps({"error": first[:500]}).encode(), _JSON


def error_event(message: str) -> bytes:
    """The server-sent event that ends a stream that failed."""
    return b"data: " + json.dumps({"error": message[:500]}).encode() + b"\n\n"


class _Relay:
    """Posts a call's answer to ``exchange`` on ``loop``; after each piece delivered, notes
    there whether the client is still reading (``stop``, read by the thread)."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, exchange: Exchange, client_gone: Callable[[], bool]
    ) -> None:
        self.loop, self.exchange, self.client_gone = loop, exchange, client_gone
        self.stop = threading.Event()

    def post(self, method: Callable[..., None], *args: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(self._deliver, method, args)
        except RuntimeError:  # the loop is closed: the router is gone
            self.stop.set()

    def _deliver(self, method: Callable[..., None], args: tuple[Any, ...]) -> None:
        method(*args)
        if self.client_gone():
            self.stop.set()

    def answer(self, status: int, body: bytes, content_type: str) -> None:
        self.post(self.exchange.head, status, content_type)
        self.post(self.exchange.body, body)
        self.post(self.exchange.end)


def call_component(
    pool: Executor,
    loop: asyncio.AbstractEventLoop,
    exchange: Exchange,
    upstream: ComponentUpstream,
    body: bytes,
    content_type: str,
    *,
    stream: bool,
    timeout: float,
    what: str,
    client_gone: Callable[[], bool],
) -> None:
    """Start one call to ``upstream`` on ``pool`` (see the module docstring); ``what`` names the
    version in the error an interrupted stream ends with. Called on ``loop``."""
    relay = _Relay(loop, exchange, client_gone)
    try:
        pool.submit(_call, relay, upstream, body, content_type, stream, timeout, what)
    except RuntimeError:  # the pool is shut down
        exchange.fail(ConnectionError("the router is shutting down"), False)


def _call(
    relay: _Relay,
    upstream: ComponentUpstream,
    body: bytes,
    content_type: str,
    stream: bool,
    timeout: float,
    what: str,
) -> None:
    from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

    from mlops_cli.deploy.sagemaker_runtime import runtime_client

    exchange = relay.exchange
    where = f"inference component {upstream.component} on endpoint {upstream.endpoint}"
    try:
        client = runtime_client(
            region=upstream.region, runtime_url=upstream.runtime_url, read_timeout=timeout
        )
        call = {
            "EndpointName": upstream.endpoint,
            "InferenceComponentName": upstream.component,
            "Body": body,
            "ContentType": content_type,
        }
        if stream:
            response = client.invoke_endpoint_with_response_stream(**call, Accept=_EVENT_STREAM)
        else:
            response = client.invoke_endpoint(**call, Accept=_JSON)
            payload = response["Body"].read(MAX_ANSWER_BYTES + 1)
    except EndpointConnectionError as exc:
        relay.post(exchange.fail, ConnectionRefusedError(str(exc)), False)
        return
    except ReadTimeoutError:
        relay.post(exchange.fail, TimeoutError(f"{where} sent nothing for {timeout:g} s"), False)
        return
    except ClientError as exc:
        relay.answer(*refusal_of(exc))
        return
    except Exception as exc:  # credentials, a broken connection: one line, no answer
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        relay.post(exchange.fail, ConnectionError(f"{where}: {first}"[:500]), False)
        return
    if not stream:
        if len(payload) > MAX_ANSWER_BYTES:
            too_big = f"{where} answered over {MAX_ANSWER_BYTES:,} bytes"
            relay.answer(502, json.dumps({"error": too_big}).encode(), _JSON)
            return
        relay.answer(200, payload, str(response.get("ContentType") or _JSON))
        return
    _pump(relay, response, what)


def _pump(relay: _Relay, response: Mapping[str, Any], what: str) -> None:
    """Pass each PayloadPart on as it arrives, until the stream ends or the client is gone."""
    from mlops_cli.deploy.sagemaker_stream import stream_error

    exchange = relay.exchange
    events = response["Body"]
    relay.post(exchange.head, 200, str(response.get("ContentType") or _EVENT_STREAM))
    try:
        for event in events:
            part = event.get("PayloadPart")
            if isinstance(part, Mapping) and part.get("Bytes"):
                relay.post(exchange.body, bytes(part["Bytes"]))
            if relay.stop.is_set():
                break
    except Exception as exc:
        from urllib3.exceptions import ReadTimeoutError as QuietTooLong

        from mlops_cli.aws import error_code

        message = stream_error(exc, what=what).message
        if error_code(exc) in ("ModelStreamError", "InternalStreamFailure"):
            relay.post(exchange.body, error_event(message))
        else:  # the connection broke or went quiet: cut the stream, as for a Triton upstream
            kind = TimeoutError if isinstance(exc, QuietTooLong) else ConnectionError
            relay.post(exchange.fail, kind(message), True)
            return
    finally:
        events.close()
    relay.post(exchange.end)


__all__ = ["call_component", "error_event", "refusal_of"]
