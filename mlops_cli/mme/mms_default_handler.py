"""Default multi-model-server handler of mme-local, for models without ``MAR-INF/MANIFEST.json``.

It imports the model's own entry point (``mlops.yaml``'s ``entrypoint``, else ``handler.py`` or
``inference.py``) from the model folder and calls its ``handle(data, context)``. Like the
SageMaker inference toolkit, an exception becomes HTTP 500 whose body is the error and its
traceback (a plain exception escaping to MMS would answer 503 "Prediction failed" and lose it).

This file is copied next to the server's configuration and imported by MMS workers: it uses the
standard library only.
"""

import importlib.util
import os
import re
import traceback
from collections.abc import Callable
from typing import Any

_handlers: dict[str, Callable[..., Any]] = {}


def _inside(model_dir: str, entrypoint: str) -> str:
    """``model_dir/entrypoint``, refused when it (symlinks followed) is not inside the folder:
    the code a package runs is code its digest covers."""
    root = os.path.realpath(model_dir)
    path = os.path.realpath(os.path.join(root, entrypoint))
    if os.path.isabs(entrypoint) or os.path.commonpath([root, path]) != root:
        raise RuntimeError(f"{model_dir}: entrypoint {entrypoint[:200]!r} leaves the model folder")
    return path


def _entrypoint(model_dir: str) -> str:
    spec = os.path.join(model_dir, "mlops.yaml")
    if os.path.isfile(spec):
        with open(spec, encoding="utf-8") as handle:
            for line in handle:
                match = re.match(r"^entrypoint:\s*['\"]?([^'\"#\s]+)", line)
                if match:
                    return _inside(model_dir, match.group(1))
    for name in ("handler.py", "inference.py", "code/inference.py"):
        if os.path.isfile(os.path.join(model_dir, name)):
            return os.path.join(model_dir, name)
    raise RuntimeError(f"{model_dir}: no mlops.yaml entrypoint, handler.py or inference.py")


def _load(model_dir: str) -> Callable[..., Any]:
    path = _entrypoint(model_dir)
    spec = importlib.util.spec_from_file_location("mme_model_" + str(len(_handlers)), path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"{path} cannot be imported")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    entry: Callable[..., Any] | None = getattr(module, "handle", None)
    if entry is None:
        raise RuntimeError(f"{path} defines no handle(data, context)")
    return entry


def handle(data: Any, context: Any) -> Any:
    model_dir = str(context.system_properties["model_dir"])
    if model_dir not in _handlers:
        _handlers[model_dir] = _load(model_dir)
    try:
        return _handlers[model_dir](data, context)
    except Exception as exc:
        if data is None:
            raise
        message = f"{type(exc).__name__}: {exc}"
        for index in range(len(data)):
            context.set_response_status(code=500, phrase=message.splitlines()[0][:200], idx=index)
            context.set_response_content_type(index, "text/plain")
        return [f"{message}\n{traceback.format_exc()}" for _ in data]
