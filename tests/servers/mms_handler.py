"""A tiny default service handler for multi-model-server (SageMaker MME style).

Each model directory holds a ``model.json`` such as::

    {"name": "doubler", "version": 3, "scale": 2.0}

At load time (``data is None``) the handler reads that file; on invoke it parses
the JSON request body (a list of numbers or ``{"inputs": [...]}``) and answers
``{"model": name, "version": version, "outputs": [x * scale, ...]}``.

With ``"fail_on_invoke": true`` in ``model.json`` every invocation fails, and with
``"fail_on_input": x`` every invocation whose inputs hold ``x`` (a model that answers its
warmup, then fails on a request its author did not foresee). Like
the SageMaker inference toolkit, the failure is reported as HTTP 500 whose body
is the error message followed by the traceback (a plain exception escaping
``handle`` would make MMS answer 503 "Prediction failed" and lose the message).
"""

from __future__ import annotations

import json
import os
import traceback
from typing import Any

MODEL_FILE = "model.json"

# One worker process serves one model, but key by model directory anyway.
_MODELS: dict[str, dict[str, Any]] = {}


class ModelInvokeError(RuntimeError):
    """Raised for a failing invocation; reported to the client as HTTP 500."""


def _load(model_dir: str) -> dict[str, Any]:
    path = os.path.join(model_dir, MODEL_FILE)
    with open(path, encoding="utf-8") as f:
        spec = json.load(f)
    if not isinstance(spec, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(spec).__name__}")
    return {
        "name": str(spec.get("name", os.path.basename(os.path.normpath(model_dir)))),
        "version": spec.get("version", 1),
        "scale": float(spec.get("scale", 1.0)),
        "fail_on_invoke": bool(spec.get("fail_on_invoke", False)),
        "fail_on_input": spec.get("fail_on_input"),
    }


def _body(item: Any) -> bytes:
    """Extract the raw request body from one element of MMS's ``data`` list."""
    if isinstance(item, dict):
        for key in ("body", "data"):
            if item.get(key) is not None:
                item = item[key]
                break
        else:
            values = [v for v in item.values() if v is not None]
            item = values[0] if len(values) == 1 else b""
    if isinstance(item, (bytes, bytearray, memoryview)):
        return bytes(item)
    if isinstance(item, str):
        return item.encode("utf-8")
    # Already decoded (decode_input_request=true): re-serialise.
    return json.dumps(item).encode("utf-8")


def _inputs(raw: bytes) -> list[float]:
    try:
        payload = json.loads(raw.decode("utf-8")) if raw.strip() else []
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"request body is not valid JSON: {e}") from e
    if isinstance(payload, dict):
        payload = payload.get("inputs")
    if not isinstance(payload, list):
        raise ValueError('request body must be a JSON list or {"inputs": [...]}')
    return [float(x) for x in payload]


def _predict(model: dict[str, Any], raw: bytes) -> bytes:
    if model["fail_on_invoke"]:
        raise ModelInvokeError(f"model {model['name']!r} is configured to fail (fail_on_invoke)")
    inputs = _inputs(raw)
    if model["fail_on_input"] is not None and float(model["fail_on_input"]) in inputs:
        raise ModelInvokeError(f"model {model['name']!r} cannot take {model['fail_on_input']}")
    outputs = [x * model["scale"] for x in inputs]
    result = {"model": model["name"], "version": model["version"], "outputs": outputs}
    return json.dumps(result).encode("utf-8")


def handle(data: list[Any] | None, context: Any) -> list[bytes] | None:
    """MMS entry point: ``handle(None, ctx)`` once at load, then per batch."""
    model_dir = str(context.system_properties["model_dir"])
    if data is None:
        _MODELS[model_dir] = _load(model_dir)
        return None
    model = _MODELS.get(model_dir) or _MODELS.setdefault(model_dir, _load(model_dir))
    responses: list[bytes] = []
    for idx, item in enumerate(data):
        try:
            responses.append(_predict(model, _body(item)))
            context.set_response_content_type(idx, "application/json")
        except Exception as e:  # report every failure as a 500
            message = f"{type(e).__name__}: {e}"
            context.set_response_status(code=500, phrase=message.splitlines()[0][:200], idx=idx)
            context.set_response_content_type(idx, "text/plain")
            responses.append(f"{message}\n{traceback.format_exc()}".encode())
    return responses
