"""A multi-model-server (SageMaker multi-model endpoint) handler: a tiny numpy classifier.

    probabilities = softmax(inputs @ W + b)     inputs [rows, 4] -> probabilities [rows, 3]

multi-model-server finds this module through MAR-INF/MANIFEST.json ("handler": "handler:handle")
and imports it from the model folder. It calls ``handle(None, context)`` once when the model is
loaded, then ``handle(batch, context)`` for requests. A request body is JSON:
``{"inputs": [[4 floats], ...]}`` or just the list of rows.
"""

import json
import os

import numpy as np

_model = None  # (W, b), loaded once per worker process


def _load(model_dir):
    with np.load(os.path.join(model_dir, "weights", "classifier.npz")) as weights:
        return weights["W"].astype(np.float32), weights["b"].astype(np.float32)


def _predict(body):
    # Raw bytes by default; already parsed when the server runs with decode_input_request=true.
    payload = json.loads(body) if isinstance(body, (bytes, bytearray, str)) else body
    rows = payload["inputs"] if isinstance(payload, dict) else payload
    x = np.asarray(rows, dtype=np.float32).reshape(-1, 4)
    w, b = _model
    logits = x @ w + b
    # Subtracting the row maximum keeps exp() from overflowing; the result is unchanged.
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (shifted / shifted.sum(axis=1, keepdims=True)).tolist()


def handle(data, context):
    global _model
    if data is None:  # load time
        _model = _load(context.system_properties["model_dir"])
        return None
    responses = []
    for index, request in enumerate(data):
        # The request body is under "body" ("data" for form posts).
        body = request.get("body") or request.get("data") or b"[]"
        try:
            responses.append(json.dumps({"probabilities": _predict(body)}))
            context.set_response_content_type(index, "application/json")
        except (ValueError, KeyError, TypeError) as exc:
            # A bad request is the client's error: answer 400 with the reason, not 503.
            context.set_response_status(code=400, phrase=str(exc)[:200], idx=index)
            responses.append(json.dumps({"error": str(exc)}))
    return responses
