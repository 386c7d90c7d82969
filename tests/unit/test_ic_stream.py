"""Reading an inference component's response stream without a server: the AWS event-stream
bytes (framed as mme-local frames them) decoded by botocore's own ``EventStream``, cut at
arbitrary places, read back as server-sent events by ``PayloadReader``; the bound on one event;
the error events; the perftest target's token count of the same bytes."""

from __future__ import annotations

import io
import json
import random
import time
from collections.abc import Iterator
from typing import Any

import pytest

from mlops_cli.deploy.sagemaker_runtime import ModelInvocationError
from mlops_cli.deploy.sagemaker_stream import (
    PayloadReader,
    StreamBrokenError,
    stream_chunks,
)
from mlops_cli.errors import ServerError
from mlops_cli.mme.eventstream import encode_message, model_stream_error, payload_part
from mlops_cli.triton.client import MAX_EVENT_BYTES

pytestmark = pytest.mark.unit

WHAT = "invoking inference component lm-v1 on endpoint shared"
TOKENS = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "."]


def sse(tokens: list[str]) -> bytes:
    """Triton's generate_stream body for these tokens."""
    return b"".join(
        b"data: "
        + json.dumps({"model_name": "lm", "model_version": "1", "token": [t]}).encode()
        + b"\n\n"
        for t in tokens
    )


def cut(data: bytes, rng: random.Random, largest: int) -> list[bytes]:
    pieces, at = [], 0
    while at < len(data):
        size = rng.randint(1, largest)
        pieces.append(data[at : at + size])
        at += size
    return pieces


class RawStream:
    """What botocore's EventStream reads: the HTTP body, chunk by chunk (``pulled`` counts)."""

    def __init__(self, chunks: list[bytes], error: Exception | None = None) -> None:
        self.chunks, self.error, self.pulled, self.closed = chunks, error, 0, False

    def stream(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            self.pulled += 1
            yield chunk
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        self.closed = True


def event_stream(raw: RawStream) -> Any:
    """botocore's decoder of InvokeEndpointWithResponseStream's body, over ``raw``."""
    import botocore.session
    from botocore.eventstream import EventStream
    from botocore.parsers import EventStreamJSONParser

    model = botocore.session.get_session().get_service_model("sagemaker-runtime")
    operation = model.operation_model("InvokeEndpointWithResponseStream")
    shape = operation.output_shape.members["Body"]
    return EventStream(raw, shape, EventStreamJSONParser(), operation.name)


def tokens_of(stream: Any) -> list[str]:
    return [chunk.outputs["token"][0] for chunk in stream_chunks(stream, what=WHAT)]


@pytest.mark.parametrize("seed", range(12))
def test_events_split_anywhere_across_payload_parts_read_back_whole(seed: int) -> None:
    rng = random.Random(seed)
    body = sse(TOKENS)
    parts = cut(body, rng, largest=rng.choice([1, 3, 17, 64, 400]))  # SageMaker's cuts
    framed = b"".join(payload_part(part) for part in parts)
    http_chunks = cut(framed, rng, largest=rng.choice([1, 7, 100, 5000]))  # the socket's cuts
    reader = PayloadReader(event_stream(RawStream(http_chunks)), what=WHAT)
    assert tokens_of(reader) == TOKENS


def test_several_events_in_one_part_and_crlf_lines() -> None:
    body = sse(TOKENS).replace(b"\n", b"\r\n")
    raw = RawStream([payload_part(body[:5]), payload_part(body[5:])])
    assert tokens_of(PayloadReader(event_stream(raw), what=WHAT)) == TOKENS


def test_each_event_is_yielded_before_the_rest_of_the_stream_is_read() -> None:
    raw = RawStream([payload_part(sse([token])) for token in TOKENS])
    chunks = stream_chunks(PayloadReader(event_stream(raw), what=WHAT), what=WHAT)
    first = next(chunks)
    assert first.outputs == {"token": ["the"]}
    assert raw.pulled <= 2  # not the whole stream: the first token is handed on as it arrives
    assert [c.outputs["token"][0] for c in chunks] == TOKENS[1:]
    assert raw.pulled == len(TOKENS)


def test_a_line_is_never_held_whole_beyond_the_limit() -> None:
    reader = PayloadReader(({"PayloadPart": {"Bytes": b"x" * 7}} for _ in range(1000)), what=WHAT)
    line = reader.readline(10)
    assert line == b"x" * 10
    assert len(reader._buffer) < 7  # one part at most beyond the line returned


def test_an_event_over_the_bound_is_refused_without_reading_the_rest() -> None:
    pulled = 0
    part = b"x" * (1 << 20)

    def parts() -> Iterator[dict[str, Any]]:
        nonlocal pulled
        yield {"PayloadPart": {"Bytes": b"data: "}}
        for _ in range(100):  # 100 MiB with no end of line: more than any event may be
            pulled += 1
            yield {"PayloadPart": {"Bytes": part}}

    with pytest.raises(ServerError, match=f"over {MAX_EVENT_BYTES:,} bytes"):
        list(stream_chunks(PayloadReader(parts(), what=WHAT), what=WHAT))
    assert pulled <= MAX_EVENT_BYTES // len(part) + 1


def test_a_model_stream_error_event_after_tokens_is_one_line() -> None:
    raw = RawStream(
        [
            payload_part(sse(TOKENS[:3])),
            model_stream_error("CUDA out of memory\nTraceback (most recent call last): ..."),
        ]
    )
    chunks = stream_chunks(PayloadReader(event_stream(raw), what=WHAT), what=WHAT)
    assert [c.outputs["token"][0] for c in (next(chunks), next(chunks), next(chunks))] == TOKENS[:3]
    with pytest.raises(ModelInvocationError) as raised:
        next(chunks)
    message = raised.value.message
    assert message == f"{WHAT}: the model's stream failed: CUDA out of memory"
    assert "\n" not in message


def test_an_internal_stream_failure_event_is_a_broken_stream() -> None:
    failure = encode_message(
        {
            ":exception-type": "InternalStreamFailure",
            ":content-type": "application/json",
            ":message-type": "exception",
        },
        json.dumps({"Message": "the stream processing failed"}).encode(),
    )
    raw = RawStream([payload_part(sse(TOKENS[:1])), failure])
    with pytest.raises(StreamBrokenError, match="SageMaker broke off the stream: the stream"):
        tokens_of(PayloadReader(event_stream(raw), what=WHAT))


def test_a_connection_lost_mid_stream_is_a_broken_stream() -> None:
    from urllib3.exceptions import ProtocolError

    raw = RawStream([payload_part(sse(TOKENS[:2]))], error=ProtocolError("Connection broken"))
    with pytest.raises(StreamBrokenError, match="the stream broke off: Connection broken"):
        tokens_of(PayloadReader(event_stream(raw), what=WHAT))


def test_an_error_event_of_the_container_is_the_models_failure() -> None:
    body = sse(TOKENS[:2]) + b'data: {"error": "stopped: max_tokens must be above 0"}\n\n'
    with pytest.raises(ModelInvocationError, match="stream failed: stopped: max_tokens"):
        tokens_of(io.BytesIO(body))


def test_a_non_streamed_answer_of_events_reads_the_same() -> None:
    assert tokens_of(io.BytesIO(sse(TOKENS))) == TOKENS


def test_the_perftest_target_counts_one_token_per_event_across_parts() -> None:
    from mlops_cli.perf.targets.sagemaker import read_token_stream

    rng = random.Random(3)
    parts = [{"PayloadPart": {"Bytes": piece}} for piece in cut(sse(TOKENS), rng, largest=9)]
    far = time.monotonic_ns() + 10**10
    kind, tokens = read_token_stream(parts, deadline_ns=far)
    assert (kind, len(tokens)) == (None, len(TOKENS))
    assert tokens == sorted(tokens)
    body = sse(TOKENS[:2]) + b'data: {"error": "boom"}\n\n'
    failed = [{"PayloadPart": {"Bytes": piece}} for piece in cut(body, rng, largest=9)]
    assert read_token_stream(failed, deadline_ns=far)[0] == "stream_error"


def test_the_perftest_stream_reader_is_bounded() -> None:
    from mlops_cli.perf.targets.sagemaker import read_token_stream

    endless = ({"PayloadPart": {"Bytes": b"data: {}\n\n"}} for _ in range(10**6))
    assert read_token_stream(endless, deadline_ns=time.monotonic_ns() + 50_000_000)[0] == (
        "timeout"
    )
    no_end = ({"PayloadPart": {"Bytes": b"x" * 1000}} for _ in range(1000))
    far = time.monotonic_ns() + 10**11
    kind, _ = read_token_stream(no_end, deadline_ns=far, max_event_bytes=100_000)
    assert kind == "stream_event_too_large"


def test_inference_components_are_the_sagemaker_ic_protocol_and_its_models() -> None:
    from mlops_cli.errors import UsageError
    from mlops_cli.perf.options import PerftestFlags, perftest_options

    reach = perftest_options(PerftestFlags(inference_components=("lm-v1,lm-v2",))).reach
    assert (reach.protocol, reach.models) == ("sagemaker-ic", ("lm-v1", "lm-v2"))
    explicit = PerftestFlags(protocol="sagemaker-ic", inference_components=("lm-v1",))
    assert perftest_options(explicit).reach.protocol == "sagemaker-ic"
    for refused, words in (
        (PerftestFlags(models=("m",), inference_components=("lm-v1",)), "not both"),
        (PerftestFlags(protocol="sagemaker", inference_components=("lm-v1",)), "not the sagemaker"),
        (PerftestFlags(inference_components=(" , ",)), "names no component"),
    ):
        with pytest.raises(UsageError, match=words):
            perftest_options(refused)


def test_the_router_answers_a_sagemaker_refusal_and_ends_a_failed_stream_in_one_line() -> None:
    from botocore.exceptions import ClientError

    from mlops_cli.router.components import error_event, refusal_of

    refusal = ClientError(
        {
            "Error": {"Code": "ValidationError", "Message": "Inference Component lm-v9\nnot found"},
            "ResponseMetadata": {"HTTPStatusCode": 400},
        },
        "InvokeEndpoint",
    )
    status, body, content_type = refusal_of(refusal)
    assert (status, content_type) == (400, "application/json")
    assert json.loads(body) == {"error": "Inference Component lm-v9"}
    event = error_event("lm v1: the model's stream failed: CUDA out of memory")
    assert event.endswith(b"\n\n") and event.count(b"\n") == 2
    assert tokens_of_error(event) == "lm v1: the model's stream failed: CUDA out of memory"


def tokens_of_error(event: bytes) -> str:
    with pytest.raises(ModelInvocationError) as raised:
        tokens_of(io.BytesIO(sse(TOKENS[:1]) + event))
    return raised.value.message.split("stream failed: ", 1)[1]
