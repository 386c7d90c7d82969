"""Run moto 5.2.x in server mode, with small SageMaker patches, for tests only.

Usage (in a process of its own; ``tests/servers/moto.py`` does this for pytest)::

    python tests/servers/moto_launcher.py --port P [--host 127.0.0.1] [--creating-describes N]

Serves moto's werkzeug app on HOST:P until SIGTERM or SIGINT, then exits 0.
This file lives in the test tree on purpose: the product must never import it.

DynamoDB requests are serialised (see ``serialise_dynamodb``).

Patches applied to ``moto.sagemaker`` (each one fills a gap in stock moto 5.2.5):

1. Instance types. ``FakeEndpointConfig.validate_instance_type`` checks a hard-coded
   list without ``ml.g5.*``, ``ml.g6.*``, ``ml.g6e.*``, ``ml.p4d.*``, ``ml.p5.*``,
   ``ml.inf2.*`` and the like. Any name matching ``INSTANCE_TYPE_RE``
   (``ml.<family>.<size>``, e.g. ``ml.g5.xlarge``, ``ml.p4d.24xlarge``) is now accepted;
   anything else still gets moto's own ValidationException.

2. ``UpdateEndpoint``. Stock moto has no backend method and no response handler
   (HTTP 500 NotImplementedError, which boto3 retries). Added
   ``SageMakerModelBackend.update_endpoint`` and the handler; it returns ``EndpointArn``.
   It raises ``ValidationException`` when the endpoint or the endpoint config does not
   exist, when the endpoint is still ``Creating``/``Updating`` ("Cannot update
   in-progress endpoint ...") and when it is ``Failed``; otherwise it points the endpoint
   at the new config (``EndpointConfigName``, ``ProductionVariants``) at once.

3. Status lifecycle. Stock moto endpoints are ``InService`` at once. After CreateEndpoint
   (resp. UpdateEndpoint) the endpoint is ``Creating`` (resp. ``Updating``) for the next
   N DescribeEndpoint HTTP calls, N = ``--creating-describes`` (default 2), and the
   describe after those N shows the final status. N = 0 means final at once.
   Only DescribeEndpoint counts; ListEndpoints shows the current status without
   advancing it. ``POST /moto-api/reset`` clears this state with everything else.

4. Failure injection (test-only rule). If, at the time of CreateEndpoint or
   UpdateEndpoint, the endpoint config being deployed has the tag
   ``mlops-test:fail-update`` with value ``true`` (case-insensitive; set with
   ``Tags=`` on CreateEndpointConfig or with AddTags on the config's ARN), the final
   status is ``Failed`` instead of ``InService``, and DescribeEndpoint then shows
   ``FailureReason``: the value of the config's ``mlops-test:failure-reason`` tag if it
   has one, else ``DEFAULT_FAILURE_REASON``. ``EndpointConfigName`` keeps naming the
   new config (there is no rollback). Until then the status is ``Creating``/``Updating``
   exactly as in 3.

5. Call log (test-only route). Every request is recorded as ``{"service", "operation",
   "method", "path", "mutating"}``: the operation comes from ``X-Amz-Target`` (JSON
   protocols), the ``/operation/<Op>`` path (smithy RPC v2 CBOR, e.g. CloudWatch), the
   ``Action=`` form field (query protocol), else ``<METHOD> <path>`` (REST, e.g. S3).
   An operation named Create*/Update*/Delete*/Put*/Register*/Deregister*/Add*/Tag*/Untag*,
   or a REST PUT/POST/DELETE, is mutating. ``GET /mlops-test/calls`` returns the log as a
   JSON list; ``POST /moto-api/reset`` also clears it. The operations below
   (Create/Update/DeleteInferenceComponent, RegisterScalableTarget, PutScalingPolicy,
   DeregisterScalableTarget, DeleteScalingPolicy) are mutating; Describe*/List* are not.

6. Inference-component endpoints. Stock moto answers CreateEndpointConfig with a variant
   without ``ModelName`` with HTTP 500 (KeyError) and drops ``ExecutionRoleArn``. Now a
   variant may omit ``ModelName`` when the config has ``ExecutionRoleArn`` (else
   ValidationException ``IC_ROLE_REQUIRED``); a variant with ``ModelName`` must still name
   an existing Model, and may not carry ``ManagedInstanceScaling`` (ValidationException
   ``MANAGED_SCALING_NEEDS_IC``, as SageMaker refuses it outside inference-component
   endpoints). DescribeEndpointConfig returns ``ExecutionRoleArn``; DescribeEndpoint's
   variants also carry ``ManagedInstanceScaling`` and ``RoutingConfig``. DeleteEndpoint of
   an endpoint that still has inference components is a ValidationException
   (``"Cannot delete endpoint ... inference components attached: ..."``), as SageMaker
   refuses it until they are deleted.

7. Inference components: Create/Describe/Update/Delete/ListInferenceComponents (stock moto
   has none: HTTP 500). Create validates like SageMaker, in this order, each a
   ValidationException (HTTP 400): name pattern/length 63 (AWS's "1 validation error
   detected: Value ... at 'inferenceComponentName' failed to satisfy constraint: ...");
   a duplicate name (``Cannot create already existing inference component "<arn>".``);
   ``Specification`` present (``Specifications`` lists are not modelled: refused);
   ``ComputeResourceRequirements`` with ``MinMemoryRequiredInMb`` >= 128, cores >= 0.25,
   accelerators >= 1 (constraint messages at ``specification.computeResourceRequirements.*``);
   ``Specification.ModelName`` or ``Container.Image``; ``Could not find model "<arn>".``;
   ``RuntimeConfig.CopyCount`` >= 1 on create; ``Could not find endpoint "<arn>".``;
   an endpoint whose variants host a Model (``Inference components are not supported on
   endpoint ...``); an endpoint not InService (``Cannot create inference component ...:
   endpoint "<arn>" is <Status>, not InService.``); an unknown variant (``Could not find
   variant ...``; VariantName may be omitted when the endpoint has one variant).
   Lifecycle as 3.: ``Creating`` (resp. ``Updating``) for the next N
   DescribeInferenceComponent calls, then final; List does not advance it. Failure
   injection as 4., from the component's own tags (``Tags=`` on create, or AddTags on its
   ARN): a create ends ``Failed`` with ``FailureReason``; an update ends back
   ``InService`` on its previous Specification and copy count with ``FailureReason`` set
   (SageMaker rolls a failed update back; it does not leave the component Failed).
   Describe returns InferenceComponentName/Arn, EndpointName/Arn, VariantName,
   Specification (as given), RuntimeConfig {DesiredCopyCount, CurrentCopyCount (0 until
   InService)}, InferenceComponentStatus, FailureReason (when set), CreationTime,
   LastModifiedTime; an unknown name is ``Could not find inference component "<arn>".``.
   Update needs ``Specification`` or ``RuntimeConfig`` and an InService component
   (``Cannot update in-progress inference component ...`` / ``Cannot update failed
   inference component ...``). Delete refuses a Creating/Updating component (``Cannot
   delete in-progress inference component ...``), else removes it at once (no
   ``Deleting`` phase) together with its Application Auto Scaling target and policies.
   List filters: EndpointNameEquals, VariantNameEquals, StatusEquals, NameContains,
   Creation/LastModifiedTime Before/After; SortBy Name|CreationTime|Status (default
   CreationTime), SortOrder (default Descending), MaxResults (default 10) + NextToken.

8. Application Auto Scaling for inference components. Stock moto rejects the dimension
   ``sagemaker:inference-component:DesiredCopyCount``; it is now accepted (resource id
   ``inference-component/<name>``). RegisterScalableTarget for it needs the component
   to exist (ValidationException ``Inference component "<name>" does not exist.``) and,
   for a new target, MinCapacity and MaxCapacity with Min <= Max. PutScalingPolicy for
   it needs a registered target (ObjectNotFoundException ``No scalable target registered
   for service namespace: ..., resource ID: ..., scalable dimension: ...``) and a
   TargetTrackingScaling PredefinedMetricType of ``SageMakerInferenceComponent*``
   (ValidationException otherwise). For every namespace: DeregisterScalableTarget and
   DeleteScalingPolicy of something missing answer ObjectNotFoundException (not
   ValidationException), and deregistering a target deletes its policies, as AWS does.
"""

from __future__ import annotations

import argparse
import re
import signal
import sys
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

# Python puts this script's folder first on sys.path, and that folder holds
# ``moto.py`` (the pytest helper), which would shadow the real ``moto`` package.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

FAIL_TAG_KEY = "mlops-test:fail-update"
FAIL_REASON_TAG_KEY = "mlops-test:failure-reason"
DEFAULT_FAILURE_REASON = (
    "mlops-test: injected failure (endpoint config tagged mlops-test:fail-update=true)"
)
INSTANCE_TYPE_RE = re.compile(
    r"^ml\.[a-z][a-z0-9-]*\.(?:nano|micro|small|medium|large|[0-9]*xlarge)$"
)
LIFECYCLE_ATTR = "_mlops_test_lifecycle"


@dataclass
class _Lifecycle:
    """Pending status change of one endpoint, kept on the (per-region) backend."""

    describes_left: int
    final_status: str
    failure_reason: str | None


def _lifecycles(backend: Any) -> dict[str, _Lifecycle]:
    # Stored on the backend object, so moto's reset (which rebuilds backends) clears it.
    table: dict[str, _Lifecycle] = backend.__dict__.setdefault(LIFECYCLE_ATTR, {})
    return table


def apply_patches(creating_describes: int) -> None:
    """Monkeypatch moto.sagemaker in this process (see the module docstring)."""
    from moto.core.responses import ActionResult
    from moto.core.utils import utcnow
    from moto.sagemaker import models, responses
    from moto.sagemaker.exceptions import ValidationError

    # 1. moto validates endpoint-config instance types against a fixed list without
    #    current GPU/Inferentia families; accept any well-formed ml.<family>.<size>.
    original_validate = models.FakeEndpointConfig.validate_instance_type

    def validate_instance_type(self: Any, instance_type: str) -> None:
        if not INSTANCE_TYPE_RE.match(instance_type):
            original_validate(self, instance_type)

    models.FakeEndpointConfig.validate_instance_type = validate_instance_type  # type: ignore[method-assign]

    # 3./4. Start the Creating/Updating phase and decide its outcome from the config's tags.
    def begin_transition(backend: Any, endpoint: Any, phase: str) -> None:
        config = backend.endpoint_configs[endpoint.endpoint_config_name]
        tags = {t.get("Key"): t.get("Value") for t in (config.tags or [])}
        failing = str(tags.get(FAIL_TAG_KEY, "")).lower() == "true"
        state = _Lifecycle(
            describes_left=creating_describes,
            final_status="Failed" if failing else "InService",
            failure_reason=(tags.get(FAIL_REASON_TAG_KEY) or DEFAULT_FAILURE_REASON)
            if failing
            else None,
        )
        endpoint.failure_reason = None
        endpoint.endpoint_status = phase
        _variants_by_endpoint(backend)[endpoint.endpoint_name] = list(config.production_variants)
        _lifecycles(backend)[endpoint.endpoint_name] = state
        advance(backend, endpoint.endpoint_name, count=False)

    def advance(backend: Any, endpoint_name: str, *, count: bool) -> None:
        state = _lifecycles(backend).get(endpoint_name)
        endpoint = backend.endpoints.get(endpoint_name)
        if state is None or endpoint is None:
            return
        if state.describes_left > 0:
            if count:
                state.describes_left -= 1
            return
        endpoint.endpoint_status = state.final_status
        endpoint.failure_reason = state.failure_reason
        del _lifecycles(backend)[endpoint_name]

    # 3. moto creates endpoints InService at once; start them in Creating.
    original_create_endpoint = models.SageMakerModelBackend.create_endpoint

    def create_endpoint(self: Any, endpoint_name: str, endpoint_config_name: str, tags: Any) -> Any:
        endpoint = original_create_endpoint(self, endpoint_name, endpoint_config_name, tags)
        begin_transition(self, endpoint, "Creating")
        return endpoint

    models.SageMakerModelBackend.create_endpoint = create_endpoint  # type: ignore[method-assign]

    # 3. Only DescribeEndpoint over HTTP moves the lifecycle on (counted before answering).
    original_describe_handler = responses.SageMakerResponse.describe_endpoint

    def describe_endpoint_handler(self: Any) -> Any:
        advance(self.sagemaker_backend, self._get_param("EndpointName"), count=True)
        return original_describe_handler(self)

    responses.SageMakerResponse.describe_endpoint = describe_endpoint_handler  # type: ignore[method-assign]

    # 2. moto has no UpdateEndpoint at all: backend method ...
    def update_endpoint(
        self: Any,
        endpoint_name: str,
        endpoint_config_name: str,
        **_ignored: Any,  # RetainAllVariantProperties, DeploymentConfig, ...: accepted, unused
    ) -> str:
        endpoint = self.endpoints.get(endpoint_name)
        if endpoint is None:
            arn = models.FakeEndpoint.arn_formatter(
                endpoint_name, self.account_id, self.region_name
            )
            raise ValidationError(message=f'Could not find endpoint "{arn}".')
        config = self.endpoint_configs.get(endpoint_config_name)
        if config is None:
            arn = models.FakeEndpointConfig.arn_formatter(
                endpoint_config_name, self.account_id, self.region_name
            )
            raise ValidationError(message=f'Could not find endpoint configuration "{arn}".')
        if endpoint.endpoint_status in ("Creating", "Updating", "Deleting", "SystemUpdating"):
            raise ValidationError(message=f'Cannot update in-progress endpoint "{endpoint.arn}".')
        if endpoint.endpoint_status == "Failed":
            raise ValidationError(message=f'Cannot update failed endpoint "{endpoint.arn}".')
        endpoint.endpoint_config_name = endpoint_config_name
        endpoint.production_variants = endpoint._process_production_variants(
            config.production_variants
        )
        endpoint.data_capture_config = config.data_capture_config
        endpoint.last_modified_time = utcnow()
        begin_transition(self, endpoint, "Updating")
        endpoint_arn: str = endpoint.arn
        return endpoint_arn

    models.SageMakerModelBackend.update_endpoint = update_endpoint  # type: ignore[attr-defined]

    # 2. ... and its response handler (moto dispatches on method names found on the class).
    def update_endpoint_handler(self: Any) -> Any:
        arn = self.sagemaker_backend.update_endpoint(
            endpoint_name=self._get_param("EndpointName"),
            endpoint_config_name=self._get_param("EndpointConfigName"),
        )
        return ActionResult({"EndpointArn": arn})

    responses.SageMakerResponse.update_endpoint = update_endpoint_handler  # type: ignore[attr-defined]

    patch_endpoint_configs()
    patch_inference_components(creating_describes)
    patch_application_autoscaling()


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
    # On the backend object, so moto's reset (which rebuilds backends) clears it.
    table: dict[str, _Component] = backend.__dict__.setdefault(COMPONENTS_ATTR, {})
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
        component = find(self.sagemaker_backend, self._get_param("InferenceComponentName"))
        advance(component, count=True)
        return ActionResult(component.describe())

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
        del _components(backend)[component.name]
        _drop_scaling(backend.account_id, backend.region_name, component.name)
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


MUTATING_RE = re.compile(r"^(Create|Update|Delete|Put|Register|Deregister|Add|Tag|Untag)")
CALLS_PATH = "/mlops-test/calls"


class CallLog:
    """WSGI middleware that records every AWS request (see 5. in the module docstring)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.calls: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        import io
        import json
        from urllib.parse import parse_qs

        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == CALLS_PATH:
            with self.lock:
                body = json.dumps(self.calls).encode()
            start_response("200 OK", [("Content-Type", "application/json")])
            return [body]
        if path.startswith("/moto-api/reset"):
            with self.lock:
                self.calls.clear()
            return self.app(environ, start_response)
        if path.startswith("/moto-api"):
            return self.app(environ, start_response)
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        service, operation, rest = "", "", False
        if target:
            service, _, operation = target.rpartition(".")
        elif "/operation/" in path:
            parts = path.strip("/").split("/")
            service, operation = parts[1] if len(parts) > 1 else "", parts[-1]
        else:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            content_type = environ.get("CONTENT_TYPE", "")
            if length and content_type.startswith("application/x-www-form-urlencoded"):
                raw = environ["wsgi.input"].read(length)
                environ["wsgi.input"] = io.BytesIO(raw)
                operation = parse_qs(raw.decode("utf-8", "replace")).get("Action", [""])[0]
            if not operation:
                rest = True
                operation = f"{method} {path}"
        mutating = (
            method in ("PUT", "POST", "DELETE") if rest else bool(MUTATING_RE.match(operation))
        )
        entry = {
            "service": service,
            "operation": operation,
            "method": method,
            "path": path,
            "mutating": mutating,
        }
        with self.lock:
            self.calls.append(entry)
        return self.app(environ, start_response)


def serve(host: str, port: int) -> None:
    """Serve moto's app on host:port until SIGTERM/SIGINT."""
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    # Same setup as moto.server.ThreadedMotoServer, but binding happens here in the
    # main thread, so "address in use" makes this process exit non-zero at once.
    server = make_server(
        host,
        port,
        CallLog(DomainDispatcherApplication(create_backend_app)),
        threaded=True,
        request_handler=MotoRequestHandler,
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="moto-server", daemon=True
    )
    thread.start()
    print(f"moto_launcher: serving on http://{host}:{server.server_port}", flush=True)
    while not stop.wait(0.2):
        if not thread.is_alive():
            raise SystemExit("moto_launcher: server thread died")
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
    print("moto_launcher: stopped", flush=True)


def serialise_dynamodb() -> None:
    """Run DynamoDB requests one at a time.

    moto's threaded server runs transactions without a lock, and a cancelled transaction
    restores a copy of the table taken before it started, so concurrent transactions can undo
    each other's writes; real DynamoDB never does. Serialising requests restores the atomicity
    the registry's compare-and-swap tests rely on.
    """
    from moto.dynamodb.responses import DynamoHandler

    lock = threading.Lock()
    original = DynamoHandler.call_action

    def call_action(self: Any) -> Any:
        with lock:
            return original(self)

    DynamoHandler.call_action = call_action  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--creating-describes", type=int, default=2, metavar="N")
    args = parser.parse_args(argv)
    if args.creating_describes < 0:
        parser.error("--creating-describes must be >= 0")
    apply_patches(args.creating_describes)
    serialise_dynamodb()
    serve(args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
