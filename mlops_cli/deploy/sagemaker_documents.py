"""What a SageMaker multi-model endpoint should be, as the documents its API calls take.

From an :class:`~mlops_cli.deploy.sagemaker_endpoint.EndpointSpec`, a container image and an
instance type: the Model (``MultiModel`` mode, ``ModelDataUrl`` the endpoint's S3 prefix), the
production variant, the tags, the autoscaling target and policy, and the CloudWatch alarms. Model
and EndpointConfig names carry a digest of their documents, so a changed endpoint file yields new
names and an unchanged one yields the names that already exist: that is how
:mod:`mlops_cli.deploy.sagemaker_control` tells what differs without comparing every field.

Nothing here calls AWS.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from mlops_cli.deploy.sagemaker_endpoint import EndpointSpec

SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
# The alarm fields compared with what CloudWatch has: any difference puts the alarm again.
_ALARM_KEYS = (
    "MetricName",
    "Namespace",
    "Statistic",
    "Threshold",
    "Period",
    "EvaluationPeriods",
    "ComparisonOperator",
    "Dimensions",
    "AlarmActions",
)


def _digest(document: Any) -> str:
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:8]


class EndpointDocuments:
    """The desired state of one endpoint; ``instance_type`` may be changed before use."""

    has_model = True  # a multi-model endpoint's variant serves one Model

    def __init__(self, spec: EndpointSpec, *, image: str, instance_type: str) -> None:
        self.spec = spec
        self.image = image
        self.instance_type = instance_type

    def tags(self) -> list[dict[str, str]]:
        tags = {"mlops:endpoint": self.spec.name, **self.spec.tags}
        return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]

    def model_document(self) -> dict[str, Any]:
        container: dict[str, Any] = {
            "Image": self.image,
            "Mode": "MultiModel",
            "ModelDataUrl": self.spec.s3_prefix,
        }
        if not self.spec.model_cache:  # absent by default: existing names keep their digest
            container["MultiModelConfig"] = {"ModelCacheSetting": "Disabled"}
        return {"ExecutionRoleArn": self.spec.require_role(), "PrimaryContainer": container}

    def model_name(self) -> str:
        return f"{self.spec.name[:54]}-{_digest(self.model_document())}"

    def variant_document(self) -> dict[str, Any]:
        return {
            "VariantName": self.spec.variant,
            "ModelName": self.model_name(),
            "InitialInstanceCount": self.spec.instance_count,
            "InstanceType": self.instance_type,
        }

    def config_document(self) -> dict[str, Any]:
        """CreateEndpointConfig's arguments besides its name and tags."""
        return {"ProductionVariants": [self.variant_document()]}

    def config_name(self) -> str:
        return f"{self.spec.name[:54]}-{_digest([self.variant_document(), self.tags()])}"

    def resource_id(self) -> str:
        return f"endpoint/{self.spec.name}/variant/{self.spec.variant}"

    def policy_name(self) -> str:
        return f"{self.spec.name}-invocations-per-instance"

    def scaling_configuration(self) -> dict[str, Any]:
        scaling = self.spec.autoscaling
        assert scaling is not None
        return {
            "TargetValue": float(scaling.target_invocations_per_instance),
            "PredefinedMetricSpecification": {
                "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
            },
            "ScaleInCooldown": scaling.scale_in_cooldown,
            "ScaleOutCooldown": scaling.scale_out_cooldown,
        }

    def alarm_documents(self) -> list[dict[str, Any]]:
        alarms = self.spec.alarms
        if not alarms.enabled:
            return []
        dimensions = [
            {"Name": "EndpointName", "Value": self.spec.name},
            {"Name": "VariantName", "Value": self.spec.variant},
        ]
        common = {
            "Namespace": "AWS/SageMaker",
            "Dimensions": dimensions,
            "Period": 60,
            "EvaluationPeriods": 3,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "TreatMissingData": "notBreaching",
            "AlarmActions": list(alarms.actions),
        }
        return [
            {
                "AlarmName": f"{self.spec.name}-5xx-errors",
                "AlarmDescription": "mlops: 5xx errors of the multi-model endpoint",
                "MetricName": "Invocation5XXErrors",
                "Statistic": "Sum",
                "Threshold": float(alarms.errors_5xx),
                **common,
            },
            {
                "AlarmName": f"{self.spec.name}-model-latency",
                "AlarmDescription": "mlops: mean model latency (microseconds)",
                "MetricName": "ModelLatency",
                "Statistic": "Average",
                "Threshold": float(alarms.latency_ms * 1000),
                **common,
            },
        ]


def alarm_differs(current: Mapping[str, Any] | None, wanted: Mapping[str, Any]) -> bool:
    """Whether CloudWatch's alarm (``None``: none yet) must be put again to match ``wanted``."""
    return current is None or any(
        _normal(current.get(key)) != _normal(wanted[key]) for key in _ALARM_KEYS
    )


def _normal(value: Any) -> Any:
    """Compare alarm fields loosely: numbers as floats, lists of dicts order-free."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, list):
        return sorted(json.dumps(_normal(v), sort_keys=True) for v in value)
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    return value


__all__ = ["SCALABLE_DIMENSION", "EndpointDocuments", "alarm_differs"]
