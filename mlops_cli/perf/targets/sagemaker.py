"""SageMaker runtime through boto3 (SigV4, the standard credential chain,
``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME`` honoured), so the same targets measure a real endpoint and
a loopback stand-in such as mme-local:

- ``sagemaker``: ``invoke_endpoint(EndpointName, Body)``, with ``TargetModel`` = each model named
  (a multi-model endpoint);
- ``sagemaker-ic``: ``invoke_endpoint(EndpointName, InferenceComponentName, Body)``, the models
  being the endpoint's inference components; with ``stream``,
  ``invoke_endpoint_with_response_stream``, whose ``PayloadPart`` bytes are read as server-sent
  events: every event carrying an output is one token, timed when the part completing it arrives
  (:func:`read_token_stream`, bounded in time and in the size of one event).

boto3 blocks, so calls run on a thread pool sized to the in-flight cap; the engine still measures
from its own clock."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import time
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from mlops_cli.errors import ServerError, UsageError
from mlops_cli.perf.payloads import Payload
from mlops_cli.perf.targets.base import Completion, CoroutineSlots, Target, TargetSpec

MAX_THREADS = 256


def endpoint_name(url: str) -> str:
    """``sagemaker://NAME`` or a bare endpoint name."""
    return url.removeprefix("sagemaker://").strip("/")


class SageMakerTarget(Target):
    supports_stream: ClassVar[bool] = False

    def __init__(self, spec: TargetSpec) -> None:
        super().__init__(spec)
        self.endpoint = endpoint_name(spec.url)
        threads = max(1, min(spec.max_connections, MAX_THREADS))
        self.slots = CoroutineSlots(threads)
        self.executor = concurrent.futures.ThreadPoolExecutor(threads, "perftest-sagemaker")
        self.client: Any = None

    async def start(self) -> None:
        from mlops_cli import aws
        from mlops_cli.errors import MlopsError

        try:
            # The "measure" use: no retries (a retry would hide a failure), the run's timeout.
            self.client = aws.client(
                "sagemaker-runtime",
                use="measure",
                max_pool=self.slots.limit,
                read_timeout=self.spec.timeout_s,
            )
        except MlopsError as exc:  # no region, bad profile, missing credentials, ...
            raise ServerError(
                exc.message,
                hint=exc.hint or "check the AWS configuration (AWS_REGION, the profile)",
            ) from None

    def prepare(self, model: str, payload: Payload) -> Any:
        args: dict[str, Any] = {
            "EndpointName": self.endpoint,
            "Body": payload.body(),
            "ContentType": "application/json",
        }
        if model:
            args["TargetModel"] = model
        return args

    def submit(self, prepared: Any, done: Completion) -> None:
        self.slots.launch(lambda: self._invoke(prepared, done))

    async def _invoke(self, prepared: Any, done: Completion) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self.executor, self._call, prepared)
        except asyncio.CancelledError:
            done("cancelled", None)
            raise
        except Exception as exc:
            done(_error_kind(exc), None)
            return
        done(None, None)

    def _call(self, args: dict[str, Any]) -> None:
        response = self.client.invoke_endpoint(**args)
        response["Body"].read()

    def in_flight(self) -> int:
        return self.slots.running

    def waited_long(self) -> int:
        return self.slots.waited_long

    async def close(self) -> None:
        await self.slots.cancel()
        self.executor.shutdown(wait=False, cancel_futures=True)


class InferenceComponentTarget(SageMakerTarget):
    """``InferenceComponentName`` = each model named; streams (see the module docstring)."""

    supports_stream: ClassVar[bool] = True

    def __init__(self, spec: TargetSpec) -> None:
        if "://" in spec.url and not spec.url.startswith("sagemaker://"):
            raise UsageError(
                f"inference components are called on a SageMaker endpoint, not {spec.url}",
                hint="give the endpoint as sagemaker://ENDPOINT",
            )
        if not spec.models:
            raise UsageError(
                "the sagemaker-ic protocol needs the inference component(s) to call",
                hint="add --inference-component NAME",
            )
        super().__init__(spec)

    def prepare(self, model: str, payload: Payload) -> Any:
        if self.spec.stream and payload.tensors is not None:  # Triton's generate_stream body
            body = json.dumps(payload.generate_json()).encode()
        else:
            body = payload.body()
        return {
            "EndpointName": self.endpoint,
            "InferenceComponentName": model,
            "Body": body,
            "ContentType": "application/json",
        }

    def submit(self, prepared: Any, done: Completion) -> None:
        if self.spec.stream:
            self.slots.launch(lambda: self._stream(prepared, done))
        else:
            super().submit(prepared, done)

    async def _stream(self, prepared: Any, done: Completion) -> None:
        loop = asyncio.get_running_loop()
        try:
            kind, tokens = await loop.run_in_executor(self.executor, self._call_stream, prepared)
        except asyncio.CancelledError:
            done("cancelled", None)
            raise
        except Exception as exc:
            done(_error_kind(exc), None)
            return
        done(kind, tokens)

    def _call_stream(self, args: dict[str, Any]) -> tuple[str | None, list[int]]:
        deadline_ns = time.monotonic_ns() + int(self.spec.timeout_s * 1e9)
        response = self.client.invoke_endpoint_with_response_stream(**args)
        events = response["Body"]
        try:
            return read_token_stream(events, deadline_ns=deadline_ns)
        finally:
            events.close()


def read_token_stream(
    events: Iterable[Mapping[str, Any]], *, deadline_ns: int, max_event_bytes: int | None = None
) -> tuple[str | None, list[int]]:
    """The error kind (None: none) and the ``time.monotonic_ns()`` of each token of a response
    stream's events, read until the stream ends, an event is over ``max_event_bytes`` (default:
    the bound of :func:`mlops_cli.triton.client.read_events`), or ``deadline_ns`` passes (kind
    ``timeout``; a read that blocks is bounded by the client's read timeout). Tokens are counted
    as the HTTP target counts them."""
    from mlops_cli.perf.targets.http import EventStream
    from mlops_cli.triton.client import MAX_EVENT_BYTES

    limit = MAX_EVENT_BYTES if max_event_bytes is None else max_event_bytes

    parser = EventStream(_ignore)
    try:
        for event in events:
            part = event.get("PayloadPart")
            if isinstance(part, Mapping):
                parser.chunk(part.get("Bytes") or b"")
            if parser.error is not None:
                return parser.error, parser.tokens
            if len(parser.buffer) > limit:
                return "stream_event_too_large", parser.tokens
            if time.monotonic_ns() > deadline_ns:
                return "timeout", parser.tokens
    except Exception as exc:  # an error event (botocore raises it), a read that broke off
        return _error_kind(exc), parser.tokens
    return parser.error, parser.tokens


def _ignore(*_: Any) -> None:
    """The completion of a parser whose tokens are read directly."""


def _error_kind(exc: Exception) -> str:
    from botocore.exceptions import ClientError, ConnectionError, ReadTimeoutError
    from urllib3.exceptions import ProtocolError
    from urllib3.exceptions import ReadTimeoutError as StreamReadTimeout

    if isinstance(exc, ClientError):
        return "sagemaker_" + str(exc.response.get("Error", {}).get("Code", "error"))
    if isinstance(exc, ReadTimeoutError | StreamReadTimeout):
        return "timeout"
    if isinstance(exc, ConnectionError):
        return "connect"
    if isinstance(exc, ProtocolError):  # the connection broke off mid-stream
        return "disconnect"
    return "sagemaker_error"
