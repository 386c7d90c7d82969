"""The endpoint file: one SageMaker multi-model endpoint (or its local stand-in), validated.

YAML -> ``schemas/endpoint.schema.json`` (unknown keys named with the nearest valid one) -> a
frozen :class:`EndpointSpec`. Checks the schema cannot express (a known instance family, autoscaling
bounds) raise the same :class:`EndpointFileError` naming the file and the key path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mlops_cli.aws.s3_location import S3Location
from mlops_cli.errors import UsageError, ValidationError
from mlops_cli.triton.naming import tarball_name
from mlops_cli.validation import read_yaml_file, suggestion, validate_document

DEFAULT_GPU_INSTANCE = "ml.g5.xlarge"
DEFAULT_CPU_INSTANCE = "ml.m5.xlarge"

# SageMaker real-time hosting instance families (ml.<family>.<size>). A name outside this set is
# refused before any API call, with the nearest family.
HOSTING_FAMILIES = frozenset(
    [
        "t2",
        "t3",
        "m4",
        "m5",
        "m5d",
        "m6i",
        "m6id",
        "m7i",
        "c4",
        "c5",
        "c5d",
        "c6i",
        "c6id",
        "c7i",
        "r5",
        "r5d",
        "r6i",
        "r7i",
        "g4dn",
        "g5",
        "g6",
        "g6e",
        "p2",
        "p3",
        "p4d",
        "p4de",
        "p5",
        "inf1",
        "inf2",
        "trn1",
    ]
)


class EndpointFileError(ValidationError):
    """The endpoint file does not validate."""


@dataclass(frozen=True)
class Autoscaling:
    min: int
    max: int
    target_invocations_per_instance: float = 100.0
    scale_in_cooldown: int = 300
    scale_out_cooldown: int = 60


@dataclass(frozen=True)
class Alarms:
    enabled: bool = True
    errors_5xx: int = 1
    latency_ms: float = 1000.0
    actions: tuple[str, ...] = ()


@dataclass(frozen=True)
class ComponentScaling:
    """Application Auto Scaling of one inference component's copy count."""

    min: int
    max: int
    target_invocations_per_copy: float = 10.0
    scale_in_cooldown: int = 300
    scale_out_cooldown: int = 60


@dataclass(frozen=True)
class ComponentSettings:
    """sagemaker-ic: the endpoint's managed instance scaling, and each component's defaults."""

    managed_min: int | None = None  # ManagedInstanceScaling; None: a fixed instance count
    managed_max: int | None = None
    copies: int = 1
    cpus: float = 1.0  # per copy, when the model's spec does not say
    autoscaling: ComponentScaling | None = None


@dataclass(frozen=True)
class LocalSettings:
    backend: Literal["mms", "triton"] = "mms"
    memory_budget_mb: float = 2048.0
    disk_budget_mb: float | None = None  # None: mme-local's default (4x the memory budget)
    url: str | None = None


@dataclass(frozen=True)
class EndpointSpec:
    """A validated endpoint file."""

    name: str
    s3_prefix: str  # always ends with "/"
    role_arn: str | None = None
    region: str | None = None
    image_uri: str | None = None
    instance_type: str | None = None
    instance_count: int = 1
    variant: str = "AllTraffic"
    autoscaling: Autoscaling | None = None
    alarms: Alarms = field(default_factory=Alarms)
    tags: Mapping[str, str] = field(default_factory=dict)
    wait_timeout: float = 1800.0
    model_cache: bool = True  # False: the Model's MultiModelConfig.ModelCacheSetting Disabled
    warmup_timeout: float = 300.0
    local: LocalSettings = field(default_factory=LocalSettings)
    components: ComponentSettings = field(default_factory=ComponentSettings)
    source: str = "endpoint file"

    @property
    def location(self) -> S3Location:
        """The prefix as a parsed location (its key empty or ending with ``/``)."""
        return S3Location.parse(self.s3_prefix).as_prefix()

    @property
    def bucket(self) -> str:
        return self.location.bucket

    @property
    def key_prefix(self) -> str:
        return self.location.key

    def tarball_name(self, model: str, version: int) -> str:
        """The TargetModel of a version: ``<model>-v<version>.tar.gz``."""
        return tarball_name(model, version)

    def tarball_uri(self, model: str, version: int) -> str:
        return self.s3_prefix + self.tarball_name(model, version)

    def chosen_instance_type(self, *, gpu: bool) -> str:
        if self.instance_type:
            return self.instance_type
        return DEFAULT_GPU_INSTANCE if gpu else DEFAULT_CPU_INSTANCE

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "endpoint file") -> EndpointSpec:
        validate_document(data, "endpoint", source=source, error_class=EndpointFileError)
        scaling = data.get("autoscaling")
        alarms = data.get("alarms", {})
        local = data.get("local", {})
        components = data.get("inference_components", {})
        managed = components.get("managed_scaling")
        copy_scaling = components.get("autoscaling")
        try:
            location = S3Location.parse(str(data["s3_prefix"])).as_prefix()
        except UsageError as exc:
            raise EndpointFileError(exc.message, source=source, key_path="s3_prefix") from None
        spec = cls(
            name=data["name"],
            s3_prefix=f"s3://{location.bucket}/{location.key}",  # always ends with "/"
            role_arn=data.get("role_arn"),
            region=data.get("region"),
            image_uri=data.get("image_uri"),
            instance_type=data.get("instance_type"),
            instance_count=data.get("instance_count", 1),
            variant=data.get("variant", "AllTraffic"),
            autoscaling=Autoscaling(
                min=scaling["min"],
                max=scaling["max"],
                target_invocations_per_instance=float(
                    scaling.get("target_invocations_per_instance", 100)
                ),
                scale_in_cooldown=scaling.get("scale_in_cooldown", 300),
                scale_out_cooldown=scaling.get("scale_out_cooldown", 60),
            )
            if scaling
            else None,
            alarms=Alarms(
                enabled=alarms.get("enabled", True),
                errors_5xx=alarms.get("errors_5xx", 1),
                latency_ms=float(alarms.get("latency_ms", 1000)),
                actions=tuple(alarms.get("actions", ())),
            ),
            tags=dict(data.get("tags", {})),
            wait_timeout=float(data.get("wait_timeout", 1800)),
            model_cache=data.get("model_cache", True),
            warmup_timeout=float(data.get("warmup_timeout", 300)),
            local=LocalSettings(
                backend=local.get("backend", "mms"),
                memory_budget_mb=float(local.get("memory_budget_mb", 2048)),
                disk_budget_mb=(
                    float(local["disk_budget_mb"]) if "disk_budget_mb" in local else None
                ),
                url=local.get("url"),
            ),
            components=ComponentSettings(
                managed_min=managed["min"] if managed else None,
                managed_max=managed["max"] if managed else None,
                copies=components.get("copies", 1),
                cpus=float(components.get("cpus", 1)),
                autoscaling=ComponentScaling(
                    min=copy_scaling["min"],
                    max=copy_scaling["max"],
                    target_invocations_per_copy=float(
                        copy_scaling.get("target_invocations_per_copy", 10)
                    ),
                    scale_in_cooldown=copy_scaling.get("scale_in_cooldown", 300),
                    scale_out_cooldown=copy_scaling.get("scale_out_cooldown", 60),
                )
                if copy_scaling
                else None,
            ),
            source=source,
        )
        spec._check()
        return spec

    def _check(self) -> None:
        if self.instance_type is not None:
            family = self.instance_type.split(".")[1]
            if family not in HOSTING_FAMILIES:
                raise EndpointFileError(
                    f"{self.instance_type!r} is not a SageMaker hosting instance type",
                    source=self.source,
                    key_path="instance_type",
                    hint=suggestion(family, HOSTING_FAMILIES, noun="instance families"),
                )
        bounds = [
            ("autoscaling.min", self.autoscaling and (self.autoscaling.min, self.autoscaling.max)),
            (
                "inference_components.managed_scaling.min",
                self.components.managed_min is not None
                and (self.components.managed_min, self.components.managed_max or 0),
            ),
            (
                "inference_components.autoscaling.min",
                self.components.autoscaling
                and (self.components.autoscaling.min, self.components.autoscaling.max),
            ),
        ]
        for key_path, pair in bounds:
            if pair and pair[0] > pair[1]:
                raise EndpointFileError(
                    f"min {pair[0]} is above max {pair[1]}", source=self.source, key_path=key_path
                )

    def require_role(self, kind: str = "sagemaker-mme") -> str:
        if not self.role_arn:
            raise EndpointFileError(
                f"the {kind} target needs an execution role",
                source=self.source,
                key_path="role_arn",
                hint="add role_arn: arn:aws:iam::<account>:role/<name> (see --print-iam-policy)",
            )
        return self.role_arn


def load_endpoint(path: Path) -> EndpointSpec:
    """Read and validate an endpoint file."""
    missing = UsageError(f"endpoint file {path} does not exist", hint="--endpoint endpoint.yaml")
    data = read_yaml_file(path, error_class=EndpointFileError, missing=missing)
    return EndpointSpec.from_dict(data if data is not None else {}, source=str(path))


def region_of(spec: EndpointSpec) -> str:
    """The endpoint's region: the file's, else the standard AWS configuration."""
    if spec.region:
        return spec.region
    from mlops_cli.aws.clients import default_region

    region = default_region()
    if not region:
        raise UsageError(
            "no AWS region configured", hint="set region in the endpoint file, or AWS_REGION"
        )
    return str(region)


__all__ = [
    "Alarms",
    "Autoscaling",
    "ComponentScaling",
    "ComponentSettings",
    "EndpointFileError",
    "EndpointSpec",
    "LocalSettings",
    "load_endpoint",
    "region_of",
]
