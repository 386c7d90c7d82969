"""What one SageMaker inference component runs, read from its control-plane documents (pure).

:func:`component_spec` turns ``DescribeInferenceComponent`` (and ``DescribeModel`` of its
``Specification.ModelName``) into a :class:`ComponentSpec`: the image, the kind of container it
runs (:func:`mlops_cli.render.image_kind.classify_image`, the one owner of that reading),
the artifact's S3 URL and the container's environment (the model's, overridden by the
component's own ``Specification.Container``, as SageMaker merges them).

:func:`triton_entry` is what SageMaker's Triton image does before ``tritonserver`` starts (its
``serve`` script), on the extracted artifact: the same checks in the same order and the same
``ERROR:`` lines when one fails, raised as :class:`ContainerStartError`. The first passing check
names the model folder that is loaded.

Errors are SageMaker runtime errors (:class:`~mlops_cli.mme.runtime_errors.AgentError`).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_cli.mme.runtime_errors import ACCOUNT, AgentError

INFERENCE_TYPES = ("infer", "generate", "generate_stream")
TYPE_VARIABLE = "SAGEMAKER_TRITON_INFERENCE_TYPE"
MODEL_VARIABLE = "SAGEMAKER_TRITON_DEFAULT_MODEL_NAME"


class ContainerStartError(AgentError):
    """The component's container refused to start (as SageMaker's image would): a model error
    that lasts as long as the component's specification does."""

    def __init__(self, component: str, reason: str) -> None:
        super().__init__(
            424,
            "ModelError",
            f"The container of inference component {component} did not start: {reason}",
            OriginalStatusCode=500,
            OriginalMessage=reason,
        )
        self.reason = reason


@dataclass(frozen=True)
class ComponentSpec:
    """One inference component as mme-local serves it."""

    endpoint: str
    name: str
    model_name: str
    image: str
    container: str  # "triton" or "mms": mme-local's container kinds
    model_data_url: str
    environment: tuple[tuple[str, str], ...]

    @property
    def env(self) -> dict[str, str]:
        return dict(self.environment)

    @property
    def inference_type(self) -> str:
        """The Triton route ``invocations`` maps to (``infer`` for multi-model-server)."""
        if self.container != "triton":
            return "infer"
        return self.env.get(TYPE_VARIABLE) or "infer"

    @property
    def digest(self) -> str:
        """Short and distinct for every specification: a changed model is a new one."""
        text = json.dumps(
            [self.image, self.model_data_url, self.environment, self.model_name], sort_keys=True
        )
        return hashlib.sha256(text.encode()).hexdigest()[:10]


def not_found(component: str, endpoint: str) -> AgentError:
    return AgentError(
        400,
        "ValidationError",
        f"Inference Component {component} of account {ACCOUNT} not found for endpoint {endpoint}.",
    )


def not_in_service(component: str, status: str, reason: str | None) -> AgentError:
    why = f" ({reason})" if reason else ""
    return AgentError(
        400,
        "ValidationError",
        f"Inference Component {component} is not in service: its status is {status}{why}.",
    )


def component_spec(
    endpoint: str, document: Mapping[str, Any], model: Mapping[str, Any] | None
) -> ComponentSpec:
    """The spec of component ``document`` (``DescribeInferenceComponent``) of ``endpoint``;
    ``model`` is ``DescribeModel`` of its ``Specification.ModelName`` (None: no such model)."""
    from mlops_cli.render.image_kind import classify_image

    name = str(document.get("InferenceComponentName", ""))
    specification = document.get("Specification") or {}
    model_name = str(specification.get("ModelName") or "")
    own = specification.get("Container") or {}
    if model_name and model is None and not own.get("Image"):
        raise AgentError(
            400, "ValidationError", f"Could not find model {model_name} of component {name}."
        )
    primary = _primary_container(model or {})
    image = str(own.get("Image") or primary.get("Image") or "")
    url = str(own.get("ArtifactUrl") or primary.get("ModelDataUrl") or "")
    environment = {**(primary.get("Environment") or {}), **(own.get("Environment") or {})}
    kind = classify_image(image).container
    if kind is None:
        raise AgentError(
            424,
            "ModelError",
            f"Inference component {name} runs image {image or '(none)'}: mme-local runs only "
            "SageMaker's Triton and multi-model-server images.",
        )
    if not url.startswith("s3://"):
        raise ContainerStartError(name, f"the component's model has no S3 artifact ({url!r})")
    return ComponentSpec(
        endpoint=endpoint,
        name=name,
        model_name=model_name,
        image=image,
        container=kind,
        model_data_url=url,
        environment=tuple(sorted((str(k), str(v)) for k, v in environment.items())),
    )


def _primary_container(model: Mapping[str, Any]) -> Mapping[str, Any]:
    primary = model.get("PrimaryContainer")
    if isinstance(primary, Mapping):
        return primary
    containers = model.get("Containers") or [{}]
    first = containers[0]
    return first if isinstance(first, Mapping) else {}


def triton_entry(spec: ComponentSpec, repository: Path) -> Path:
    """The model folder SageMaker's Triton image loads from the extracted ``repository``, after
    the checks its ``serve`` script makes (:class:`ContainerStartError` with its lines)."""
    env = spec.env
    if (repository / "config.pbtxt").is_file():
        raise ContainerStartError(
            spec.name,
            "ERROR: Incorrect directory structure. Model directory needs to contain the top "
            "level folder",
        )
    kind = env.get(TYPE_VARIABLE, "")
    if kind and kind not in INFERENCE_TYPES:
        raise ContainerStartError(
            spec.name,
            f"ERROR: Invalid {TYPE_VARIABLE} '{kind}' Must be one of: infer, generate, "
            "generate_stream",
        )
    chosen = env.get(MODEL_VARIABLE, "")
    if chosen:
        # A name is one folder of the repository: nothing with a separator can name one here.
        if "/" in chosen or chosen in (".", "..") or not (repository / chosen).is_dir():
            raise ContainerStartError(
                spec.name,
                f"ERROR: Directory with provided {MODEL_VARIABLE} {chosen} does not exist",
            )
        return repository / chosen
    folders = sorted(entry.name for entry in os.scandir(repository) if entry.is_dir())
    if not folders:
        raise ContainerStartError(spec.name, "ERROR: No model found in model repository")
    if len(folders) > 1:
        raise ContainerStartError(
            spec.name,
            "ERROR: More than 1 model directory found in model repository. Either provide a "
            f"single directory or set {MODEL_VARIABLE} to run the ensemble backend. "
            f"Directories found in model repository: {' '.join(folders)}",
        )
    return repository / folders[0]


__all__ = [
    "INFERENCE_TYPES",
    "ComponentSpec",
    "ContainerStartError",
    "component_spec",
    "not_found",
    "not_in_service",
    "triton_entry",
]
