"""A model's ``code/inference.py`` in the SageMaker inference toolkit's conventions (what the
framework containers' default handler service imports in multi-model mode).

``model_fn`` reads the folder's ``model.json`` (``{"name", "version", "scale"}``);
``transform_fn`` takes a JSON list of numbers or ``{"inputs": [...]}`` and answers
``{"model", "version", "outputs": [x * scale, ...]}``. With ``"fail_on_invoke": true`` it
raises, which the toolkit answers as HTTP 500 with the message and its traceback.
"""

from __future__ import annotations

import json
import os
from typing import Any


def model_fn(model_dir: str) -> dict[str, Any]:
    with open(os.path.join(model_dir, "model.json"), encoding="utf-8") as handle:
        spec: dict[str, Any] = json.load(handle)
    return spec


def transform_fn(model: dict[str, Any], data: Any, content_type: str, accept: str) -> Any:
    if model.get("fail_on_invoke"):
        raise RuntimeError(f"model {model['name']!r} is configured to fail (fail_on_invoke)")
    payload = json.loads(data) if isinstance(data, str | bytes | bytearray) else data
    values = payload.get("inputs") if isinstance(payload, dict) else payload
    outputs = [float(x) * float(model.get("scale", 1.0)) for x in values or []]
    answer = {"model": model["name"], "version": model.get("version", 1), "outputs": outputs}
    return json.dumps(answer), "application/json"
