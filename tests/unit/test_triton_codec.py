"""The KServe v2 codec and the ``<model>-v<version>`` names (``mlops_cli.triton``): pure functions,
checked on plain inputs; the servers that read these bodies are in the integration tests."""

from __future__ import annotations

import dataclasses
import json

import pytest

from mlops_cli.errors import ValidationError
from mlops_cli.spec.modelspec import Batching, ModelSpec, TensorSpec
from mlops_cli.triton.codec import (
    check_tensor,
    decode_outputs,
    encode_inputs,
    encode_value,
    generate_body,
    infer_body,
    signature_of,
    synthesize,
    values_of,
)
from mlops_cli.triton.naming import parse_versioned_name, tarball_name, versioned_name

pytestmark = pytest.mark.unit

CLASSIFIER = (TensorSpec("features", "FP32", (-1, 4)),)
LM = (TensorSpec("prompt", "BYTES", (1,)), TensorSpec("max_tokens", "INT32", (1,)))


def answer_of(body: dict[str, object]) -> dict[str, object]:
    """What a Triton echo model answers: each input back as an output of the same name."""
    return json.loads(json.dumps({"outputs": body["inputs"]}))  # through JSON, as on the wire


@pytest.mark.parametrize(
    ("spec", "value", "shape", "data"),
    [
        (CLASSIFIER[0], [[0.5, 1, -2, 3.25]], (1, 4), (0.5, 1.0, -2.0, 3.25)),
        (TensorSpec("ids", "INT64", (-1, 3)), [[1, 2, 3], [4, 5, 6]], (2, 3), (1, 2, 3, 4, 5, 6)),
        (TensorSpec("flag", "BOOL", (2,)), [True, False], (2,), (True, False)),
        (TensorSpec("text", "BYTES", (-1, 2)), [["a", b"b"]], (1, 2), ("a", "b")),
    ],
)
def test_a_value_round_trips_through_the_wire_form(
    spec: TensorSpec, value: object, shape: tuple[int, ...], data: tuple[object, ...]
) -> None:
    (tensor,) = encode_inputs((spec,), {spec.name: value}, model="m")
    assert (tensor.datatype, tensor.shape, tensor.data) == (spec.dtype, shape, data)
    decoded = decode_outputs(answer_of(infer_body([tensor]))["outputs"])  # type: ignore[arg-type]
    assert decoded == {spec.name: value if not isinstance(value, list) else _str(value)}
    assert values_of([tensor]) == decoded


def _str(value: object) -> object:
    if isinstance(value, list):
        return [_str(v) for v in value]
    return value.decode() if isinstance(value, bytes) else value


def test_numbers_take_the_datatype_of_the_signature() -> None:
    (ints,) = encode_inputs((TensorSpec("k", "INT32", (1,)),), {"k": [2.9]}, model="m")
    (floats,) = encode_inputs((TensorSpec("x", "FP16", (2,)),), {"x": [1, 2]}, model="m")
    assert ints.data == (2,) and isinstance(ints.data[0], int)
    assert floats.data == (1.0, 2.0) and all(isinstance(v, float) for v in floats.data)


def test_the_batch_dimension_is_added_to_one_sample_and_kept_on_a_batch() -> None:
    spec = ModelSpec(
        name="iris",
        runtime="triton-python",
        entrypoint="model.py",
        inputs=(TensorSpec("features", "FP32", (4,)),),
        outputs=(TensorSpec("label", "INT64", (1,)),),
        batching=Batching(max_batch_size=8),
    )
    signature = signature_of(spec)
    assert signature == CLASSIFIER  # Triton publishes the batch dimension as -1
    assert signature_of(dataclasses.replace(spec, batching=Batching())) == spec.inputs
    (one,) = encode_inputs(signature, {"features": [1, 2, 3, 4]}, model="iris")
    (batch,) = encode_inputs(signature, {"features": [[1, 2, 3, 4]] * 3}, model="iris")
    assert one.shape == (1, 4) and batch.shape == (3, 4) and len(batch.data) == 12
    (scalar,) = encode_inputs((TensorSpec("k", "INT32", (1,)),), {"k": 5}, model="m")
    assert scalar.shape == (1,) and scalar.data == (5,)


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({"features": [1, 2, 3, 4], "q": 1}, "'q' is not an input of iris"),
        ({}, "'features' (FP32 [-1, 4]) is missing"),
        ({"features": [1, 2, 3]}, "has shape [1, 3], model 'iris' accepts [-1, 4]"),
        ({"features": [[1, 2, 3, 4], [1, 2]]}, "has 6 values for shape [2, 4]"),
        ({"features": ["a", 2, 3, 4]}, "not numbers; the model takes FP32"),
    ],
)
def test_values_that_do_not_fit_the_signature_are_named(
    values: dict[str, object], fragment: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        encode_inputs(CLASSIFIER, values, model="iris")
    assert fragment in caught.value.message


def test_a_tensor_of_another_datatype_is_refused() -> None:
    tensor = encode_value(TensorSpec("features", "INT64", (-1, 4)), [1, 2, 3, 4])
    with pytest.raises(ValidationError, match="is INT64, model 'iris' expects FP32"):
        check_tensor(tensor, CLASSIFIER[0], model="iris", source="payload 1")


def test_synthesized_requests_fit_the_signature_differ_and_repeat_by_seed() -> None:
    signature = (*CLASSIFIER, TensorSpec("mask", "BOOL", (2, -1)), *LM)
    requests = synthesize(signature, count=6, seed=3)
    for tensors in requests:
        for tensor, spec in zip(tensors, signature, strict=True):
            check_tensor(tensor, spec, model="m", source=None)
        features, mask, prompt, max_tokens = tensors
        assert features.shape == (1, 4) and mask.shape == (2, 1)
        assert all(isinstance(v, float) and -1 <= v <= 1 for v in features.data)
        assert isinstance(prompt.data[0], str) and 1 <= max_tokens.data[0] <= 8
    assert len({json.dumps(infer_body(t)) for t in requests}) == 6
    assert synthesize(signature, count=6, seed=3) == requests
    # the values synthesized are values the encoder takes back unchanged
    assert encode_inputs(signature, values_of(requests[0]), model="m") == requests[0]


def test_the_generate_body_has_one_value_per_input() -> None:
    (tensors,) = synthesize(LM)
    body = generate_body(tensors)
    assert set(body) == {"prompt", "max_tokens"}
    assert isinstance(body["prompt"], str) and isinstance(body["max_tokens"], int)
    (features,) = encode_inputs(CLASSIFIER, {"features": [1, 2, 3, 4]}, model="m")
    assert generate_body([features]) == {"features": [1.0, 2.0, 3.0, 4.0]}


def test_decoded_outputs_take_the_shape_of_the_answer() -> None:
    outputs = [
        {"name": "y", "datatype": "FP32", "shape": [2, 2, 1], "data": [1, 2, 3, 4]},
        {"name": "label", "datatype": "BYTES", "shape": [2], "data": ["a", "b"]},
    ]
    assert decode_outputs(outputs) == {"y": [[[1], [2]], [[3], [4]]], "label": ["a", "b"]}


@pytest.mark.parametrize(("model", "version"), [("answer", 2), ("my-model-v2", 13), ("a", 0)])
def test_versioned_names_round_trip(model: str, version: int) -> None:
    name = versioned_name(model, version)
    assert name == f"{model}-v{version}"
    assert parse_versioned_name(name) == (model, version)
    assert tarball_name(model, version) == f"{name}.tar.gz"


@pytest.mark.parametrize("name", ["answer", "answer-v", "answer-vx", "answer-v2.tar.gz", "-v2x"])
def test_names_mlops_did_not_give_do_not_parse(name: str) -> None:
    assert parse_versioned_name(name) is None


def test_an_unreachable_server_is_one_line_naming_its_url() -> None:
    import socket

    from mlops_cli.triton.client import ServerUnreachableError, TritonClient

    with socket.socket() as sock:  # a port nothing listens on once the socket is closed
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    client = TritonClient(url, timeout=2.0)
    assert client.live() is False and client.ready() is False
    with pytest.raises(ServerUnreachableError) as caught:
        client.index()
    assert caught.value.message.startswith(f"Triton at {url} is unreachable")
    assert "\n" not in caught.value.message and caught.value.hint
    with pytest.raises(ServerUnreachableError, match=r"Triton server gpu-1 \(http://"):
        TritonClient(url, name="gpu-1").model_ready("answer-v1")


def test_a_stream_event_that_is_not_json_is_one_server_error() -> None:
    import io

    from mlops_cli.errors import ServerError
    from mlops_cli.triton.client import read_events

    good = io.BytesIO(b'data: {"text_output": "a"}\n\n')
    assert list(read_events(good)) == [{"text_output": "a"}]
    for broken in (b"data: {not json\n\n", b"data: \xff\xfe\n\n"):
        with pytest.raises(ServerError, match="not JSON"):
            list(read_events(io.BytesIO(broken)))
