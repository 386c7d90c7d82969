"""The handler service of mme-local's multi-model-server: what a SageMaker framework container
runs for a model folder that has no ``MAR-INF/MANIFEST.json`` of its own.

Requests go through the SageMaker inference toolkit itself: its ``DefaultHandlerService`` and
``Transformer`` import ``code/inference.py`` (the toolkit's default ``SAGEMAKER_PROGRAM``), run
``model_fn`` once, then ``transform_fn`` per request, and answer a failure as HTTP 500 with its
message and traceback. Around it, this module adds only what the framework containers' own handler
services add in multi-model mode:

- the model's ``code/`` folder on ``sys.path``: each model brings its own ``inference.py`` (the
  toolkit alone only puts it on ``PYTHONPATH``, which the running worker never reads again);
- the framework image's rule for a model of no framework it knows (the table's image is MXNet's):
  it is served only through the module's ``transform_fn``; without one, the container refuses it
  with MXNet's own words, ``Unsupported model type: ...``. (The MXNet image then answers 503
  "Prediction failed" and logs the reason; mme-local answers the reason, 500.)

multi-model-server imports this module in each model's worker process (it is copied onto the
server's ``PYTHONPATH``) and builds its one class; it needs the toolkit and the standard library.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from typing import Any

# The toolkit ships no type information; it is the `mme` extra's.
from sagemaker_inference import environment  # type: ignore[import-untyped, import-not-found, unused-ignore]
from sagemaker_inference.default_handler_service import (  # type: ignore[import-untyped, import-not-found, unused-ignore]
    DefaultHandlerService,
)
from sagemaker_inference.default_inference_handler import (  # type: ignore[import-untyped, import-not-found, unused-ignore]
    DefaultInferenceHandler,
)
from sagemaker_inference.errors import (  # type: ignore[import-untyped, import-not-found, unused-ignore]
    GenericInferenceToolkitError,
)
from sagemaker_inference.transformer import Transformer  # type: ignore[import-untyped, import-not-found, unused-ignore]


def _refusal(model_dir: str) -> str | None:
    """Why the framework image would not serve this model, or None when it would."""
    try:
        module = importlib.import_module(environment.Environment().module_name)
    except ModuleNotFoundError as exc:
        return f"import_module exception: {exc}"
    if hasattr(module, "transform_fn"):
        return None
    model_fn = getattr(module, "model_fn", DefaultInferenceHandler().default_model_fn)
    model = model_fn(model_dir)
    return (
        f"Unsupported model type: {model.__class__.__name__}. Did you forget to implement "
        "`transform_fn` or `model_fn` in your entry-point?"
    )


class HandlerService(DefaultHandlerService):  # type: ignore[misc]
    """The toolkit's handler service, as a framework container runs it for multi-model."""

    def __init__(self) -> None:
        super().__init__(transformer=Transformer(DefaultInferenceHandler()))
        self._refused: str | None = None

    def initialize(self, context: Any) -> None:
        model_dir = context.system_properties.get("model_dir")
        code_dir = os.path.join(model_dir, "code")
        if code_dir not in sys.path:
            sys.path.insert(0, code_dir)
        try:
            self._refused = _refusal(model_dir)
        except Exception as exc:  # model_fn failed: the toolkit reports it on each request
            self._refused = None
            traceback.print_exception(exc)
        if self._refused is None:
            super().initialize(context)

    def handle(self, data: Any, context: Any) -> Any:
        if self._refused is not None:
            return Transformer.handle_error(
                context, GenericInferenceToolkitError(500, self._refused), ""
            )
        return super().handle(data, context)
