"""Inference components for the patched moto server (patches 6-8 of ``moto_launcher.py``; see
its module docstring for what each does). Imported by the launcher in its own process, for tests
only: the product must never import it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

FAIL_TAG_KEY = "mlops-test:fail-update"
FAIL_REASON_TAG_KEY = "mlops-test:failure-reason"


# -- 6. inference-component endpoints ---------------------------------------------------------

IC_ROLE_REQUIRED = (
    "ExecutionRoleArn is required when a production variant has no ModelName "
    "(an endpoint for inference components)."
)
MANAGED_SCALING_NEEDS_IC = (
    "ManagedInstanceScaling is supported only for inference component endpoints "
    "(production variants without ModelName)."
)
VARIANTS_ATTR = "_mlops_test_endpoint_variants"


def _variants_by_endpoint(backend: Any) -> dict[str, list[dict[str, Any]]]:
    # The variants as configured (with ModelName, if any) of each endpoint's current config.
    table: dict[str, list[dict[str, Any]]] = backend.__dict__.setdefault(VARIANTS_ATTR, {})
    return table


def patch_endpoint_configs() -> None:
    """6.: variants without ModelName, ExecutionRoleArn kept, DeleteEndpoint guarded."""
    from moto.sagemaker import models, responses
    from moto.sagemaker.exceptions import ValidationError
    from moto.sagemaker.utils import arn_formatter

    def validate_production_variants(self: Any, production_variants: list[dict[str, Any]]) -> None:
        for variant in production_variants:
            name = variant.get("ModelName")
            if name is None:
                continue
            if "ManagedInstanceScaling" in variant:
                raise ValidationError(message=MANAGED_SCALING_NEEDS_IC)
            if name not in self._models:
                arn = arn_formatter("model", name, self.account_id, self.region_name)
                raise ValidationError(message=f'Could not find model "{arn}".')

    models.SageMakerModelBackend.validate_production_variants = validate_production_variants  # type: ignore[method-assign]

    original_handler = responses.SageMakerResponse.create_endpoint_config

    def create_endpoint_config_handler(self: Any) -> Any:
        variants = self._get_param("ProductionVariants") or []
        role = self._get_param("ExecutionRoleArn")
        if role is None and any("ModelName" not in v for v in variants):
            raise ValidationError(message=IC_ROLE_REQUIRED)
        result = original_handler(self)
        config = self.sagemaker_backend.endpoint_configs[self._get_param("EndpointConfigName")]
        if role is not None:
            config.execution_role_arn = role  # DescribeEndpointConfig's ExecutionRoleArn
        return result

    responses.SageMakerResponse.create_endpoint_config = create_endpoint_config_handler  # type: ignore[method-assign]

    original_process = models.FakeEndpoint._process_production_variants

    def process_production_variants(
        self: Any, production_variants: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        summaries = original_process(self, production_variants)
        for summary, variant in zip(summaries, production_variants, strict=True):
            for key in ("ManagedInstanceScaling", "RoutingConfig"):
                if key in variant:
                    summary[key] = variant[key]
        return summaries

    models.FakeEndpoint._process_production_variants = process_production_variants  # type: ignore[method-assign]

    original_delete = models.SageMakerModelBackend.delete_endpoint

    def delete_endpoint(self: Any, endpoint_name: str) -> None:
        attached = sorted(
            c.name for c in _components(self).values() if c.endpoint_name == endpoint_name
        )
        if attached and endpoint_name in self.endpoints:
            arn = self.endpoints[endpoint_name].arn
            raise ValidationError(
                message=f'Cannot delete endpoint "{arn}" while it has inference components '
                f"attached: {', '.join(attached)}. Delete the inference components first."
            )
        original_delete(self, endpoint_name)
        _variants_by_endpoint(self).pop(endpoint_name, None)

    models.SageMakerModelBackend.delete_endpoint = delete_endpoint  # type: ignore[method-assign]


# -- 7. inference components ------------------------------------------------------------------

IC_NAME_PATTERN = r"[a-zA-Z0-9]([\-a-zA-Z0-9]*[a-zA-Z0-9])?"
IC_NAME_RE = re.compile(rf"^{IC_NAME_PATTERN}$")
IC_NAME_MAX = 63
IC_ARN_MARK = ":inference-component/"
COMPONENTS_ATTR = "_mlops_test_inference_components"
DEFAULT_IC_FAILURE_REASON = (
    "mlops-test: injected failure (inference component tagged mlops-test:fail-update=true)"
)
IN_PROGRESS = ("Creating", "Updating", "Deleting")
DELETED = "mlops-test:deleted"  # the status a component's deletion ends in (then it is gone)
LIST_DEFAULT_MAX = 10


@dataclass
class _Pending:
    """Where a Creating/Updating component ends, and after how many describes."""

    describes_left: int
    final_status: str
    failure_reason: str | None
    restore: tuple[dict[str, Any], int] | None  # a failed update's rollback target


@dataclass
class _Component:
    """One inference component (kept on the per-region SageMaker backend)."""

    name: str
    arn: str
    endpoint_name: str
    endpoint_arn: str
    variant_name: str
    specification: dict[str, Any]
    copies: int
    tags: list[dict[str, str]]
    created: datetime
    modified: datetime
    status: str = "Creating"
    current_copies: int = 0
    failure_reason: str | None = None
    pending: _Pending | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "InferenceComponentName": self.name,
            "InferenceComponentArn": self.arn,
            "EndpointName": self.endpoint_name,
            "EndpointArn": self.endpoint_arn,
            "VariantName": self.variant_name,
            "InferenceComponentStatus": self.status,
            "CreationTime": self.created,
            "LastModifiedTime": self.modified,
        }

    def describe(self) -> dict[str, Any]:
        described = self.summary()
        described["Specification"] = self.specification
        described["RuntimeConfig"] = {
            "DesiredCopyCount": self.copies,
            "CurrentCopyCount": self.current_copies,
        }
        if self.failure_reason:
            described["FailureReason"] = self.failure_reason
        return described


def _components(backend: Any) -> dict[str, _Component]:
    """The region's components; one whose deletion has ended is gone (with its scaling)."""
    # On the backend object, so moto's reset (which rebuilds backends) clears it.
    table: dict[str, _Component] = backend.__dict__.setdefault(COMPONENTS_ATTR, {})
    for name in [name for name, c in table.items() if c.status == DELETED]:
        del table[name]
        _drop_scaling(backend.account_id, backend.region_name, name)
    return table


def _constraint_error(violations: list[str]) -> str:
    count = len(violations)
    noun = "error" if count == 1 else "errors"
    return f"{count} validation {noun} detected: " + "; ".join(violations)


def _name_violations(name: Any, where: str) -> list[str]:
    text = str(name)
    found = []
    if len(text) > IC_NAME_MAX:
        found.append(
            f"Value '{text}' at '{where}' failed to satisfy constraint: "
            f"Member must have length less than or equal to {IC_NAME_MAX}"
        )
    if not IC_NAME_RE.match(text):
        found.append(
            f"Value '{text}' at '{where}' failed to satisfy constraint: "
            f"Member must satisfy regular expression pattern: {IC_NAME_PATTERN}"
        )
    return found


def _specification_violations(spec: dict[str, Any]) -> list[str]:
    where = "specification.computeResourceRequirements"
    needs = spec.get("ComputeResourceRequirements")
    if needs is None:
        return [f"Value null at '{where}' failed to satisfy constraint: Member must not be null"]
    found = []
    bounds = (
        ("MinMemoryRequiredInMb", "minMemoryRequiredInMb", 128, True),
        ("MaxMemoryRequiredInMb", "maxMemoryRequiredInMb", 128, False),
        ("NumberOfCpuCoresRequired", "numberOfCpuCoresRequired", 0.25, False),
        ("NumberOfAcceleratorDevicesRequired", "numberOfAcceleratorDevicesRequired", 1, False),
    )
    for key, member, minimum, required in bounds:
        value = needs.get(key)
        if value is None:
            if required:
                found.append(
                    f"Value null at '{where}.{member}' failed to satisfy constraint: "
                    "Member must not be null"
                )
        elif value < minimum:
            found.append(
                f"Value '{value}' at '{where}.{member}' failed to satisfy constraint: "
                f"Member must have value greater than or equal to {minimum}"
            )
    return found


def _tags_fail(tags: list[dict[str, str]]) -> str | None:
    """The injected failure reason when tags carry mlops-test:fail-update=true, else None.
    A component also takes the keys spelled with ``/`` for ``:`` (``mlops-test/fail-update``,
    ``mlops-test/failure-reason``): mlops tags a component with its model's labels, whose keys
    cannot hold a colon, so a test injects a failure through a label."""
    values = {
        str(t.get("Key", "")).replace("mlops-test/", "mlops-test:", 1): t.get("Value") for t in tags
    }
    if str(values.get(FAIL_TAG_KEY, "")).lower() != "true":
        return None
    return values.get(FAIL_REASON_TAG_KEY) or DEFAULT_IC_FAILURE_REASON


def patch_inference_components(creating_describes: int) -> None:
    """7.: the inference-component API on moto's SageMaker backend and response class."""
    from moto.core.responses import ActionResult, EmptyResult
    from moto.core.utils import utcnow
    from moto.sagemaker import models, responses
    from moto.sagemaker.exceptions import ValidationError
    from moto.sagemaker.utils import arn_formatter

    def ic_arn(backend: Any, name: str) -> str:
        arn: str = arn_formatter(
            "inference-component", name, backend.account_id, backend.region_name
        )
        return arn

    def find(backend: Any, name: str) -> _Component:
        component = _components(backend).get(name)
        if component is None:
            raise ValidationError(
                message=f'Could not find inference component "{ic_arn(backend, name)}".'
            )
        return component

    def check_specification(backend: Any, spec: Any, arn: str) -> dict[str, Any]:
        if spec is None:
            raise ValidationError(
                message=f'Inference component "{arn}" needs a Specification '
                "(Specifications lists are not modelled by this test server)."
            )
        violations = _specification_violations(spec)
        if violations:
            raise ValidationError(message=_constraint_error(violations))
        model = spec.get("ModelName")
        if model is None and not (spec.get("Container") or {}).get("Image"):
            raise ValidationError(
                message=f'Inference component "{arn}" needs Specification.ModelName or '
                "Specification.Container.Image."
            )
        if model is not None and model not in backend._models:
            model_arn = arn_formatter("model", model, backend.account_id, backend.region_name)
            raise ValidationError(message=f'Could not find model "{model_arn}".')
        return dict(spec)

    def begin(backend: Any, component: _Component, phase: str, previous: Any) -> None:
        reason = _tags_fail(component.tags)
        if reason is None:
            final, restore = "InService", None
        elif phase == "Creating":
            final, restore = "Failed", None
        else:  # a failed update rolls back to what ran before
            final, restore = "InService", previous
        component.status = phase
        component.failure_reason = None
        component.pending = _Pending(creating_describes, final, reason, restore)
        advance(component, count=False)

    def advance(component: _Component, *, count: bool) -> None:
        pending = component.pending
        if pending is None:
            return
        if pending.describes_left > 0:
            if count:
                pending.describes_left -= 1
            return
        if pending.restore is not None:
            component.specification, component.copies = pending.restore
        component.status = pending.final_status
        component.failure_reason = pending.failure_reason
        component.current_copies = component.copies if component.status == "InService" else 0
        component.modified = utcnow()
        component.pending = None

    def create(self: Any) -> Any:
        backend = self.sagemaker_backend
        name = self._get_param("InferenceComponentName")
        violations = _name_violations(name, "inferenceComponentName")
        if violations:
            raise ValidationError(message=_constraint_error(violations))
        arn = ic_arn(backend, name)
        if name in _components(backend):
            raise ValidationError(
                message=f'Cannot create already existing inference component "{arn}".'
            )
        spec = check_specification(backend, self._get_param("Specification"), arn)
        copies = (self._get_param("RuntimeConfig") or {}).get("CopyCount")
        if copies is None or copies < 1:
            raise ValidationError(
                message=f"RuntimeConfig.CopyCount must be an integer larger than 0 (got {copies})."
            )
        endpoint_name = self._get_param("EndpointName")
        endpoint = backend.endpoints.get(endpoint_name)
        if endpoint is None:
            endpoint_arn = models.FakeEndpoint.arn_formatter(
                endpoint_name, backend.account_id, backend.region_name
            )
            raise ValidationError(message=f'Could not find endpoint "{endpoint_arn}".')
        variants = _variants_by_endpoint(backend).get(endpoint_name, [])
        if any("ModelName" in v for v in variants):
            raise ValidationError(
                message=f'Inference components are not supported on endpoint "{endpoint.arn}": '
                "its production variants host a Model. Create the endpoint from a config "
                "whose variants have no ModelName."
            )
        if endpoint.endpoint_status != "InService":
            raise ValidationError(
                message=f'Cannot create inference component "{arn}": endpoint '
                f'"{endpoint.arn}" is {endpoint.endpoint_status}, not InService.'
            )
        names = [v["VariantName"] for v in variants]
        variant = self._get_param("VariantName")
        if variant is None and len(names) == 1:
            variant = names[0]
        if variant not in names:
            raise ValidationError(
                message=f'Could not find variant "{variant}" on endpoint "{endpoint.arn}" '
                f"(it has: {', '.join(names)})."
            )
        now = utcnow()
        component = _Component(
            name=name,
            arn=arn,
            endpoint_name=endpoint_name,
            endpoint_arn=endpoint.arn,
            variant_name=variant,
            specification=spec,
            copies=int(copies),
            tags=list(self._get_param("Tags") or []),
            created=now,
            modified=now,
        )
        _components(backend)[name] = component
        begin(backend, component, "Creating", None)
        return ActionResult({"InferenceComponentArn": arn})

    def describe(self: Any) -> Any:
        backend = self.sagemaker_backend
        name = self._get_param("InferenceComponentName")
        advance(find(backend, name), count=True)
        return ActionResult(find(backend, name).describe())  # a finished deletion: not found

    def update(self: Any) -> Any:
        backend = self.sagemaker_backend
        component = find(backend, self._get_param("InferenceComponentName"))
        spec = self._get_param("Specification")
        runtime = self._get_param("RuntimeConfig")
        if spec is None and runtime is None:
            raise ValidationError(
                message=f'Update of inference component "{component.arn}" needs a '
                "Specification or a RuntimeConfig."
            )
        if component.status in IN_PROGRESS:
            raise ValidationError(
                message=f'Cannot update in-progress inference component "{component.arn}".'
            )
        if component.status == "Failed":
            raise ValidationError(
                message=f'Cannot update failed inference component "{component.arn}".'
            )
        previous = (component.specification, component.copies)
        if spec is not None:
            component.specification = check_specification(backend, spec, component.arn)
        if runtime is not None:
            copies = runtime.get("CopyCount")
            if copies is None or copies < 0:
                raise ValidationError(
                    message=f"RuntimeConfig.CopyCount must be 0 or more (got {copies})."
                )
            component.copies = int(copies)
        component.modified = utcnow()
        begin(backend, component, "Updating", previous)
        return ActionResult({"InferenceComponentArn": component.arn})

    def delete(self: Any) -> Any:
        backend = self.sagemaker_backend
        component = find(backend, self._get_param("InferenceComponentName"))
        if component.status in IN_PROGRESS:
            raise ValidationError(
                message=f'Cannot delete in-progress inference component "{component.arn}".'
            )
        # Deleting for the next N describes (none: gone at once), then not found.
        component.status = "Deleting"
        component.failure_reason = None
        component.pending = _Pending(creating_describes, DELETED, None, None)
        advance(component, count=False)
        return EmptyResult()

    def listed(self: Any) -> Any:
        found = list(_components(self.sagemaker_backend).values())
        equals = (
            ("EndpointNameEquals", "endpoint_name"),
            ("VariantNameEquals", "variant_name"),
            ("StatusEquals", "status"),
        )
        for param, attr in equals:
            wanted = self._get_param(param)
            if wanted is not None:
                found = [c for c in found if getattr(c, attr) == wanted]
        contains = self._get_param("NameContains")
        if contains:
            found = [c for c in found if contains in c.name]
        for param, attr, before in (
            ("CreationTimeBefore", "created", True),
            ("CreationTimeAfter", "created", False),
            ("LastModifiedTimeBefore", "modified", True),
            ("LastModifiedTimeAfter", "modified", False),
        ):
            limit = self._get_param(param)
            if limit is not None:
                bound = datetime.fromtimestamp(float(limit), tz=UTC).replace(tzinfo=None)
                found = [c for c in found if (getattr(c, attr) < bound) == before]
        key = {"Name": "name", "Status": "status"}.get(
            self._get_param("SortBy") or "CreationTime", "created"
        )
        descending = (self._get_param("SortOrder") or "Descending") == "Descending"
        found.sort(key=lambda c: getattr(c, key), reverse=descending)
        start = int(self._get_param("NextToken") or 0)
        size = int(self._get_param("MaxResults") or LIST_DEFAULT_MAX)
        page = found[start : start + size]
        result: dict[str, Any] = {"InferenceComponents": [c.summary() for c in page]}
        if start + size < len(found):
            result["NextToken"] = str(start + size)
        return ActionResult(result)

    handlers = {
        "create_inference_component": create,
        "describe_inference_component": describe,
        "update_inference_component": update,
        "delete_inference_component": delete,
        "list_inference_components": listed,
    }
    for method_name, handler in handlers.items():
        setattr(responses.SageMakerResponse, method_name, handler)

    # Tag calls (AddTags/ListTags/DeleteTags) reach components through their ARN.
    original_resource = models.SageMakerModelBackend._get_resource_from_arn

    def resource_from_arn(self: Any, arn: str) -> Any:
        if IC_ARN_MARK in arn:
            return find(self, arn.rsplit("/", 1)[-1])
        return original_resource(self, arn)

    models.SageMakerModelBackend._get_resource_from_arn = resource_from_arn  # type: ignore[method-assign]


# -- 8. Application Auto Scaling for inference components -------------------------------------

IC_DIMENSION = "sagemaker:inference-component:DesiredCopyCount"
IC_RESOURCE_PREFIX = "inference-component/"
IC_METRICS = (
    "SageMakerInferenceComponentInvocationsPerCopy",
    "SageMakerInferenceComponentConcurrentRequestsPerCopyHighResolution",
)


def _drop_scaling(account_id: str, region: str, component: str) -> None:
    """Deregister a deleted component's scalable target and delete its policies."""
    from moto.applicationautoscaling.models import applicationautoscaling_backends

    backend = applicationautoscaling_backends[account_id][region]
    resource_id = IC_RESOURCE_PREFIX + component
    backend.targets.get(IC_DIMENSION, {}).pop(resource_id, None)
    for key, policy in list(backend.policies.items()):
        if policy.resource_id == resource_id and policy.scalable_dimension == IC_DIMENSION:
            del backend.policies[key]


def patch_application_autoscaling() -> None:
    """8.: the inference-component dimension, its checks, ObjectNotFoundException."""
    from enum import Enum

    from moto.applicationautoscaling import models, responses
    from moto.applicationautoscaling.exceptions import AWSValidationException
    from moto.core.exceptions import JsonRESTError
    from moto.sagemaker.models import sagemaker_backends

    class ObjectNotFound(JsonRESTError):
        def __init__(self, message: str) -> None:
            super().__init__("ObjectNotFoundException", message)

    members = {m.name: m.value for m in models.ScalableDimensionValueSet}
    members["SAGEMAKER_INFERENCE_COMPONENT_DESIRED_COPY_COUNT"] = IC_DIMENSION
    extended = Enum("ScalableDimensionValueSet", members)  # type: ignore[misc]
    for module in (models, responses):  # both validate against this module-level name
        vars(module)["ScalableDimensionValueSet"] = extended

    backend_class = models.ApplicationAutoscalingBackend
    original_register = backend_class.register_scalable_target

    def register_scalable_target(
        self: Any,
        namespace: str,
        r_id: str,
        dimension: str,
        min_capacity: int | None,
        max_capacity: int | None,
        role_arn: str,
        suspended_state: str,
    ) -> Any:
        if dimension == IC_DIMENSION and r_id.startswith(IC_RESOURCE_PREFIX):
            name = r_id[len(IC_RESOURCE_PREFIX) :]
            sagemaker = sagemaker_backends[self.account_id][self.region_name]
            if name not in _components(sagemaker):
                raise AWSValidationException(f'Inference component "{name}" does not exist.')
            if not self._scalable_target_exists(r_id, dimension) and (
                min_capacity is None or max_capacity is None
            ):
                raise AWSValidationException(
                    "MinCapacity and MaxCapacity are required to register a new scalable target."
                )
            if None not in (min_capacity, max_capacity) and min_capacity > max_capacity:  # type: ignore[operator]
                raise AWSValidationException(
                    f"MinCapacity {min_capacity} is greater than MaxCapacity {max_capacity}."
                )
        return original_register(
            self, namespace, r_id, dimension, min_capacity, max_capacity, role_arn, suspended_state
        )

    backend_class.register_scalable_target = register_scalable_target  # type: ignore[method-assign]

    original_put = backend_class.put_scaling_policy

    def put_scaling_policy(
        self: Any,
        policy_name: str,
        service_namespace: str,
        resource_id: str,
        scalable_dimension: str,
        policy_body: dict[str, Any],
        policy_type: str | None,
    ) -> Any:
        if scalable_dimension == IC_DIMENSION:
            if not self._scalable_target_exists(resource_id, scalable_dimension):
                raise ObjectNotFound(
                    "No scalable target registered for service namespace: "
                    f"{service_namespace}, resource ID: {resource_id}, scalable dimension: "
                    f"{scalable_dimension}"
                )
            predefined = (policy_body or {}).get("PredefinedMetricSpecification") or {}
            metric = predefined.get("PredefinedMetricType")
            if policy_type == "TargetTrackingScaling" and metric not in (None, *IC_METRICS):
                raise AWSValidationException(
                    f"Predefined metric type {metric} is not supported for scalable "
                    f"dimension {IC_DIMENSION}; use one of: {', '.join(IC_METRICS)}."
                )
        return original_put(
            self,
            policy_name,
            service_namespace,
            resource_id,
            scalable_dimension,
            policy_body,
            policy_type,
        )

    backend_class.put_scaling_policy = put_scaling_policy  # type: ignore[method-assign]

    original_deregister = backend_class.deregister_scalable_target

    def deregister_scalable_target(self: Any, namespace: str, r_id: str, dimension: str) -> None:
        try:
            original_deregister(self, namespace, r_id, dimension)
        except AWSValidationException as exc:
            raise ObjectNotFound(exc.message) from None
        for key, policy in list(self.policies.items()):
            if (policy.service_namespace, policy.resource_id, policy.scalable_dimension) == (
                namespace,
                r_id,
                dimension,
            ):
                del self.policies[key]

    backend_class.deregister_scalable_target = deregister_scalable_target  # type: ignore[method-assign]

    original_delete = backend_class.delete_scaling_policy

    def delete_scaling_policy(
        self: Any,
        policy_name: str,
        service_namespace: str,
        resource_id: str,
        scalable_dimension: str,
    ) -> None:
        try:
            original_delete(self, policy_name, service_namespace, resource_id, scalable_dimension)
        except AWSValidationException as exc:
            raise ObjectNotFound(exc.message) from None

    backend_class.delete_scaling_policy = delete_scaling_policy  # type: ignore[method-assign]
