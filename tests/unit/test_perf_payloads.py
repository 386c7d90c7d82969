"""perftest payloads: synthesized from a signature, read from JSONL or a template, and checked
against the model's inputs before any load is sent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlops_cli.errors import ValidationError
from mlops_cli.perf.payloads import check_against, from_template, read_jsonl, synthesize
from mlops_cli.perf.runner import model_weights, traffic_order
from mlops_cli.spec.modelspec import TensorSpec

pytestmark = pytest.mark.unit

STREAM_LM = [TensorSpec("prompt", "BYTES", (1,)), TensorSpec("max_tokens", "INT32", (1,))]
CLASSIFIER = [TensorSpec("features", "FP32", (-1, 4))]


def test_synthesized_payloads_fit_the_signature_and_differ() -> None:
    payloads = synthesize(CLASSIFIER, count=8)
    check_against(payloads, CLASSIFIER, model="iris")
    bodies = {p.body() for p in payloads}
    assert len(bodies) == 8
    first = json.loads(payloads[0].body())["inputs"][0]
    assert first["shape"] == [1, 4] and first["datatype"] == "FP32" and len(first["data"]) == 4
    generate = synthesize(STREAM_LM, count=1)[0].generate_json()
    assert isinstance(generate["prompt"], str) and 1 <= generate["max_tokens"] <= 8


def test_jsonl_lines_become_tensors_or_raw_documents(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text(
        json.dumps(
            {
                "inputs": [
                    {
                        "name": "features",
                        "datatype": "FP32",
                        "shape": [1, 4],
                        "data": [[1, 2, 3, 4]],
                    }
                ]
            }
        )
        + "\n\n"
        + json.dumps({"prompt": "hi", "max_tokens": 3})
        + "\n"
    )
    tensor, raw = read_jsonl(path)
    assert tensor.tensors is not None and tensor.tensors[0].data == (1, 2, 3, 4)
    check_against([tensor], CLASSIFIER, model="iris")
    assert raw.raw == {"prompt": "hi", "max_tokens": 3}
    check_against([raw], STREAM_LM, model="lm")


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        (
            {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]},
            "unknown input(s) x",
        ),
        (
            {
                "inputs": [
                    {"name": "features", "datatype": "INT64", "shape": [1, 4], "data": [1, 2, 3, 4]}
                ]
            },
            "is INT64, model 'iris' expects FP32",
        ),
        (
            {
                "inputs": [
                    {"name": "features", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}
                ]
            },
            "accepts [-1, 4]",
        ),
        (
            {"inputs": [{"name": "features", "datatype": "FP32", "shape": [2, 4], "data": [1, 2]}]},
            "2 values for shape [2, 4]",
        ),
        ({"prompt": "hi"}, "unknown input(s) prompt and missing input(s) features"),
    ],
)
def test_a_payload_that_does_not_fit_the_model_is_refused(
    tmp_path: Path, line: object, fragment: str
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(line) + "\n")
    with pytest.raises(ValidationError) as caught:
        check_against(read_jsonl(path), CLASSIFIER, model="iris")
    assert fragment in caught.value.message
    assert "features FP32 [-1, 4]" in caught.value.message or "features" in caught.value.message


def test_bad_files_and_templates_are_validation_errors(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="not JSON"):
        (tmp_path / "x.jsonl").write_text("{nope\n")
        read_jsonl(tmp_path / "x.jsonl")
    with pytest.raises(ValidationError, match="cannot read"):
        read_jsonl(tmp_path / "missing.jsonl")
    with pytest.raises(ValidationError, match="template is not JSON"):
        from_template("{")
    expanded = from_template('{"prompt": "story {{i}}", "max_tokens": 4}', count=3)
    assert [p.raw["prompt"] for p in expanded] == ["story 0", "story 1", "story 2"]
    assert len(from_template('{"a": 1}')) == 1


def test_zipf_traffic_prefers_the_first_models() -> None:
    order = traffic_order(10, "zipf:1.1", seed=0)
    counts = [order.count(i) for i in range(10)]
    assert counts[0] > counts[1] > counts[4] > 0
    assert counts[0] / len(order) == pytest.approx(
        model_weights(10, "zipf:1.1")[0] / sum(model_weights(10, "zipf:1.1")), abs=0.03
    )
    uniform = traffic_order(4, "uniform", seed=0)
    assert all(abs(uniform.count(i) / len(uniform) - 0.25) < 0.03 for i in range(4))
    with pytest.raises(ValidationError.__mro__[1]):  # UsageError
        model_weights(3, "pareto")


def test_named_values_take_the_signature_datatypes_and_batch_dimension() -> None:
    from mlops_cli.errors import ValidationError
    from mlops_cli.perf.payloads import Payload, check_against, with_signature

    signature = [TensorSpec("features", "FP32", (-1, 4)), TensorSpec("k", "INT32", (1,))]
    fitted = with_signature(Payload(raw={"features": [1, 2, 3, 4], "k": 3}), signature)
    assert fitted.tensors is not None
    features, k = fitted.tensors
    assert (features.datatype, features.shape, features.data) == ("FP32", (1, 4), (1, 2, 3, 4))
    assert (k.datatype, k.shape, k.data) == ("INT32", (1,), (3,))
    check_against([fitted], signature, model="m")
    with pytest.raises(ValidationError, match="not numbers"):
        with_signature(Payload(raw={"features": ["a", 2, 3, 4], "k": 3}), signature)
    partial = Payload(raw={"features": [1, 2, 3, 4]})
    assert with_signature(partial, signature) is partial  # left for check_against to name
