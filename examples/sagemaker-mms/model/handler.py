"""A multi-model-server custom service: a softmax classifier whose weights are a safetensors file.

multi-model-server imports this module from the extracted model folder (the tarball's
``MAR-INF/MANIFEST.json``, written by mlops, names ``handler:handle``), calls
``handle(None, context)`` once when SageMaker loads the TargetModel, then ``handle(batch, context)``
for requests. A body is JSON ``{"inputs": [[4 floats], ...]}``; the answer is
``{"classes": [...], "probabilities": [[3 floats], ...]}``. numpy only.
"""

import json
import os
import struct

import numpy as np

_model = None  # the tensors, loaded once per worker process


def _load(model_dir):
    with open(os.path.join(model_dir, "weights", "classifier.safetensors"), "rb") as handle:
        raw = handle.read()
    (size,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + size])
    metadata = header.pop("__metadata__", {})
    data = raw[8 + size :]
    tensors = {
        name: np.frombuffer(data[begin:end], dtype=np.float32).reshape(info["shape"])
        for name, info in header.items()
        for begin, end in [info["data_offsets"]]
    }
    tensors["names"] = metadata["classes"].split(",")
    return tensors


def _predict(body):
    payload = json.loads(body) if isinstance(body, (bytes, bytearray, str)) else body
    rows = payload["inputs"] if isinstance(payload, dict) else payload
    x = np.asarray(rows, dtype=np.float32).reshape(-1, 4)
    logits = ((x - _model["mean"]) / _model["std"]) @ _model["weight"] + _model["bias"]
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    return {"classes": [_model["names"][i] for i in p.argmax(1)], "probabilities": p.tolist()}


def handle(data, context):
    global _model
    if data is None:  # load time
        _model = _load(context.system_properties["model_dir"])
        return None
    responses = []
    for index, request in enumerate(data):
        body = request.get("body") or request.get("data") or b"[]"
        try:
            responses.append(json.dumps(_predict(body)))
            context.set_response_content_type(index, "application/json")
        except (ValueError, KeyError, TypeError) as exc:  # the client's error: 400, not 500
            context.set_response_status(code=400, phrase=str(exc)[:200], idx=index)
            responses.append(json.dumps({"error": str(exc)}))
    return responses
