"""`mlops init` templates run unchanged in the real servers: a tritonserver (python backend, plain
and decoupled) and multi-model-server."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlops_cli.packages.upload import upload
from mlops_cli.render.triton import render_triton
from mlops_cli.spec.scaffold import init_model
from mlops_cli.stores.local import LocalStore
from tests.conftest import triton_request

pytestmark = pytest.mark.integration

ROWS = [[0.1, -0.2, 0.3, 1.5], [2.0, 0.0, -1.0, 0.5]]
# Loopback only: never route through an HTTP(S)_PROXY from the environment.
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def expected_probabilities(model_dir: Path, rows: list[list[float]]) -> np.ndarray[Any, Any]:
    with np.load(model_dir / "weights" / "classifier.npz") as weights:
        logits = np.asarray(rows, dtype=np.float32) @ weights["W"] + weights["b"]
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return np.asarray(exp / exp.sum(axis=1, keepdims=True))


def expected_tokens(model_dir: Path, prompt: str, max_tokens: int) -> list[str]:
    """What the toy language model generates, recomputed from its weights."""
    with np.load(model_dir / "weights" / "lm.npz") as weights:
        vocab = [str(word) for word in weights["vocab"]]
        scores = weights["transitions"]
    index = {word: i for i, word in enumerate(vocab)}
    known = [index[word] for word in prompt.lower().split() if word in index]
    current = known[-1] if known else index["<s>"]
    tokens: list[str] = []
    for _ in range(max_tokens):
        current = int(np.argmax(scores[current]))
        if vocab[current] == "</s>":
            break
        tokens.append(vocab[current])
    return tokens


def deploy_to_local_triton(local_triton: Any, model_dir: Path, store_root: Path) -> tuple[str, str]:
    """Upload the folder, render it into the local Triton's repository and load it."""
    store = LocalStore(store_root)
    result = upload(model_dir, store)
    state = local_triton.read_state()
    render_triton(
        store,
        store.get_manifest(result.digest),
        Path(state.model_repository),
        version=1,
        device="cpu",
    )
    triton_request(state.http_url, f"/v2/repository/models/{result.name}/load", {})
    return state.http_url, result.name


def test_triton_python_classifier_answers_a_batch(local_triton: Any, tmp_path: Path) -> None:
    model_dir = init_model(tmp_path / "Iris Classifier", template="triton-python").path
    url, name = deploy_to_local_triton(local_triton, model_dir, tmp_path / "store")
    assert name == "iris-classifier"

    answer: Any = triton_request(
        url,
        f"/v2/models/{name}/infer",
        {"inputs": [{"name": "features", "datatype": "FP32", "shape": [2, 4], "data": ROWS}]},
    )

    (output,) = answer["outputs"]
    assert output["name"] == "probabilities"
    assert output["shape"] == [2, 3]
    probabilities = np.asarray(output["data"], dtype=np.float32).reshape(2, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), [1.0, 1.0], atol=1e-5)
    np.testing.assert_allclose(probabilities, expected_probabilities(model_dir, ROWS), atol=1e-5)


def generate_stream(url: str, name: str, body: dict[str, Any]) -> list[tuple[float, Any]]:
    """POST to Triton's generate_stream; return each SSE ``data:`` event with its arrival time."""
    request = urllib.request.Request(
        f"{url}/v2/models/{name}/generate_stream",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    events: list[tuple[float, Any]] = []
    with _NO_PROXY.open(request, timeout=30) as response:
        assert response.headers.get_content_type() == "text/event-stream"
        for raw in response:
            line = raw.decode("utf-8").strip()
            if line.startswith("data:"):
                events.append((time.monotonic(), json.loads(line.removeprefix("data:"))))
    return events


def test_triton_python_stream_sends_tokens_as_they_are_generated(
    local_triton: Any, tmp_path: Path
) -> None:
    model_dir = init_model(tmp_path / "toy-lm", template="triton-python-stream").path
    url, name = deploy_to_local_triton(local_triton, model_dir, tmp_path / "store")

    # "Tell me what the" continues a sentence past max_tokens; "write an" reaches the end token.
    for prompt in ("Tell me what the", "write an"):
        expected = expected_tokens(model_dir, prompt, 5)
        # KServe generate extension: JSON fields are matched to the model's inputs by name.
        events = generate_stream(url, name, {"prompt": prompt, "max_tokens": 5})

        assert all("error" not in event for _, event in events), events
        tokens = [event["token"] for _, event in events]
        assert 1 <= len(tokens) <= 5
        assert tokens == expected
        arrivals = [arrived for arrived, _ in events]
        assert arrivals == sorted(arrivals)
        if len(arrivals) > 1:
            assert arrivals[0] < arrivals[-1]
    assert len(expected_tokens(model_dir, "Tell me what the", 5)) == 5
    assert expected_tokens(model_dir, "write an", 5) == ["answer"]


def test_sagemaker_mms_handler_loads_from_the_folder(mms: Any, tmp_path: Path) -> None:
    model_dir = init_model(tmp_path / "mme-classifier", template="sagemaker-mms").path

    mms.register("mme-classifier", model_dir)
    status, body = mms.invoke("mme-classifier", json.dumps({"inputs": ROWS}).encode())

    assert status == 200, body
    probabilities = np.asarray(json.loads(body)["probabilities"], dtype=np.float32)
    assert probabilities.shape == (2, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), [1.0, 1.0], atol=1e-5)
    np.testing.assert_allclose(probabilities, expected_probabilities(model_dir, ROWS), atol=1e-5)
    # A bare list of rows works too.
    status, body = mms.invoke("mme-classifier", json.dumps(ROWS[:1]).encode())
    assert status == 200, body
    assert len(json.loads(body)["probabilities"]) == 1
    # A malformed body is the client's error, with the reason.
    status, body = mms.invoke("mme-classifier", b'{"inputs": "not rows"}')
    assert status == 400
    assert "error" in json.loads(body)
