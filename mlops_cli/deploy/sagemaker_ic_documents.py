"""What one version's SageMaker inference component should be, as the documents its API calls
take (nothing here calls AWS): the component's name, derived from model and version, ending with
a digest when SageMaker's rules changed it (:func:`fit_name`); its Model (the version's
tarball in its container's layout, Triton's single-model environment), named by a digest of that
document, so an identical deploy finds the name that exists; its compute reservation; its tags
(the model's labels, the endpoint file's tags, mlops' own); and its copy-count autoscaling."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from mlops_cli.deploy.base import Desired
from mlops_cli.deploy.sagemaker_calls import Scaling
from mlops_cli.deploy.sagemaker_endpoint import EndpointSpec

NAME_LIMIT = 63  # SageMaker's limit on every name here
MIN_MEMORY_MB = 128  # the least MinMemoryRequiredInMb SageMaker takes
COPY_DIMENSION = "sagemaker:inference-component:DesiredCopyCount"
COPY_METRIC = "SageMakerInferenceComponentInvocationsPerCopy"
IN_PROGRESS = ("Creating", "Updating", "Deleting")
_NOT_NAME = re.compile(r"[^a-zA-Z0-9-]+")


def digest(document: Any, size: int = 8) -> str:
    raw = json.dumps(document, sort_keys=True).encode()
    return hashlib.blake2b(raw, digest_size=16).hexdigest()[:size]


def fit_name(wanted: str, limit: int = NAME_LIMIT) -> str:
    """``wanted`` as a SageMaker name (letters, digits and hyphens, starting and ending with a
    letter or digit) of at most ``limit`` characters. A valid name is kept as it is; one with a
    character SageMaker refuses (model names may hold ``.`` and ``_``) has it replaced by ``-``
    and one too long is cut, and either ends with ``-`` and 8 hex characters of a digest of
    ``wanted``, so ``my_model`` and ``my-model``, or two long names, stay apart."""
    clean = _NOT_NAME.sub("-", wanted).strip("-") or "model"
    if clean == wanted and len(clean) <= limit:
        return clean
    return f"{clean[: limit - 9].rstrip('-')}-{digest(wanted)}"


def component_name(model: str, version: int) -> str:
    """The inference component of ``model`` v``version``: ``<model>-v<version>``, fitted."""
    return fit_name(f"{model}-v{version}")


class ComponentDocuments:
    """The desired state of one version's component (``desired`` is needed to plan and apply,
    not to observe or retire)."""

    def __init__(
        self,
        spec: EndpointSpec,
        name: str,
        *,
        region: str,
        desired: Desired | None = None,
        image: str = "",
        tarball_uri: str = "",
        poll_seconds: float = 15.0,
    ) -> None:
        self.spec = spec
        self.name = name
        self.region = region
        self._desired = desired  # needed to plan and apply, not to observe or retire
        self.image = image
        self.tarball_uri = tarball_uri
        self.poll_seconds = poll_seconds
        self.what = f"inference component {name}"

    @property
    def desired(self) -> Desired:
        assert self._desired is not None, "a component is planned from a desired version"
        return self._desired

    def environment(self) -> dict[str, str]:
        """What the container reads: Triton's SageMaker mode serves one model folder of the
        tarball, by ``generate_stream`` when the model streams."""
        spec = self.desired.spec
        if not spec.runtime.startswith("triton"):
            return {}
        return {
            "SAGEMAKER_TRITON_DEFAULT_MODEL_NAME": spec.name,
            "SAGEMAKER_TRITON_INFERENCE_TYPE": "generate_stream" if spec.streaming else "infer",
        }

    def model_document(self) -> dict[str, Any]:
        container: dict[str, Any] = {"Image": self.image, "ModelDataUrl": self.tarball_uri}
        environment = self.environment()
        if environment:
            container["Environment"] = environment
        return {
            "ExecutionRoleArn": self.spec.require_role("sagemaker-ic"),
            "PrimaryContainer": container,
        }

    def model_name(self) -> str:
        """``<endpoint>-<digest>`` as the multi-model endpoint's Model is named (so one IAM
        resource pattern covers both); the digest covers the tarball, so it is the version's."""
        return f"{self.spec.name[:54]}-{digest(self.model_document())}"

    def compute(self) -> dict[str, Any]:
        """The reservation of one copy: cores, memory (measured, else declared, else the
        default) and accelerators."""
        spec = self.desired.spec
        cpus = spec.resources.cpus if spec.resources.cpus is not None else self.spec.components.cpus
        compute: dict[str, Any] = {
            "NumberOfCpuCoresRequired": float(cpus),
            "MinMemoryRequiredInMb": max(MIN_MEMORY_MB, round(self.desired.memory_mb)),
        }
        if self.desired.device == "gpu" and spec.resources.gpu is not None:
            compute["NumberOfAcceleratorDevicesRequired"] = float(spec.resources.gpu.count)
        return compute

    def specification(self) -> dict[str, Any]:
        return {"ModelName": self.model_name(), "ComputeResourceRequirements": self.compute()}

    def tags(self) -> list[dict[str, str]]:
        tags = {
            **self.desired.spec.labels,  # the model's labels, then the endpoint file's tags
            **self.spec.tags,
            "mlops:endpoint": self.spec.name,
            "mlops:model": self.desired.model,
            "mlops:version": str(self.desired.version),
        }
        return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]

    def resource_id(self) -> str:
        return f"inference-component/{self.name}"

    def policy_name(self) -> str:
        return fit_name(f"{self.name}-invocations-per-copy", 256)

    def scaling_configuration(self) -> dict[str, Any]:
        scaling = self.spec.components.autoscaling
        assert scaling is not None
        return {
            "TargetValue": float(scaling.target_invocations_per_copy),
            "PredefinedMetricSpecification": {"PredefinedMetricType": COPY_METRIC},
            "ScaleInCooldown": scaling.scale_in_cooldown,
            "ScaleOutCooldown": scaling.scale_out_cooldown,
        }

    def _scaling(self) -> Scaling | None:
        scaling = self.spec.components.autoscaling
        if scaling is None:
            return None
        return Scaling(
            resource_id=self.resource_id(),
            dimension=COPY_DIMENSION,
            min=scaling.min,
            max=scaling.max,
            policy_name=self.policy_name(),
            configuration=self.scaling_configuration(),
        )


__all__ = [
    "COPY_DIMENSION",
    "COPY_METRIC",
    "MIN_MEMORY_MB",
    "NAME_LIMIT",
    "ComponentDocuments",
    "component_name",
    "digest",
    "fit_name",
]
