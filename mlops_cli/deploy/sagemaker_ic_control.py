"""The SageMaker control plane of an endpoint of inference components, on boto3 alone.

The endpoint (:class:`ICEndpointControl`) is a multi-model endpoint's control plane with another
variant: no Model of its own, the execution role on the endpoint config, managed instance scaling
and least-outstanding-requests routing; creating, updating, waiting and rolling back are
:class:`~mlops_cli.deploy.sagemaker_control.ControlPlane`'s.

Each deployed version is one inference component (:class:`ComponentControl`) serving one SageMaker
Model (the version's tarball in its container's layout), with its compute reservation, copy count
and, when the endpoint file asks, its own Application Auto Scaling target and policy. Names are
derived (:func:`component_name`): the same version always has the same component; a SageMaker
Model's name carries a digest of its document, so an identical deploy finds everything in place
and makes no mutating call. A component that ends ``Failed`` is deleted again with what this
deploy created for it, and the error carries SageMaker's ``FailureReason``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlops_cli import aws
from mlops_cli.deploy.base import Action
from mlops_cli.deploy.sagemaker_calls import ResourceCalls, missing
from mlops_cli.deploy.sagemaker_control import (
    ControlPlane,
    EndpointFailedError,
)
from mlops_cli.deploy.sagemaker_ic_documents import (
    COPY_DIMENSION,
    ComponentDocuments,
    digest,
    fit_name,
)
from mlops_cli.errors import MlopsError
from mlops_cli.progress import SILENT, Reporter, running

IN_PROGRESS = ("Creating", "Updating", "Deleting")


class ComponentFailedError(EndpointFailedError):
    """An inference component ended Failed (SageMaker's FailureReason in the message)."""


class ICEndpointControl(ControlPlane):
    """The endpoint that hosts the components: created, updated, rolled back as
    :class:`ControlPlane` does, with a variant that names no Model."""

    has_model = False

    def variant_document(self) -> dict[str, Any]:
        variant: dict[str, Any] = {
            "VariantName": self.spec.variant,
            "InitialInstanceCount": self.spec.instance_count,
            "InstanceType": self.instance_type,
            "RoutingConfig": {"RoutingStrategy": "LEAST_OUTSTANDING_REQUESTS"},
        }
        settings = self.spec.components
        if settings.managed_min is not None and settings.managed_max is not None:
            variant["ManagedInstanceScaling"] = {
                "Status": "ENABLED",
                "MinInstanceCount": settings.managed_min,
                "MaxInstanceCount": settings.managed_max,
            }
        return variant

    def config_document(self) -> dict[str, Any]:
        return {
            "ProductionVariants": [self.variant_document()],
            "ExecutionRoleArn": self.spec.require_role("sagemaker-ic"),
        }

    def config_name(self) -> str:
        return fit_name(f"{self.spec.name[:54]}-{digest([self.config_document(), self.tags()])}")


@dataclass(frozen=True)
class ObservedComponent:
    name: str
    status: str
    endpoint: str
    model_name: str
    specification: dict[str, Any]
    copies: int | None
    failure_reason: str = ""


@dataclass
class ComponentPlan:
    """What :meth:`ComponentControl.apply` does for one version."""

    name: str
    model_name: str
    create_model: bool = False
    component: str = "keep"  # create | recreate | update | keep
    scaling: bool = False
    drop_scaling: bool = False  # the endpoint file no longer asks for it: deregister it
    previous: ObservedComponent | None = None

    @property
    def changes(self) -> bool:
        return bool(
            self.create_model or self.component != "keep" or self.scaling or self.drop_scaling
        )


class ComponentControl(ComponentDocuments, ResourceCalls):
    """One version's inference component, its Model and its autoscaling."""

    # -- calls --------------------------------------------------------------------------------

    def observe(self, name: str | None = None) -> ObservedComponent | None:
        name = name or self.name
        try:
            found = self._client("sagemaker").describe_inference_component(
                InferenceComponentName=name
            )
        except Exception as exc:
            if missing(exc):
                return None
            raise aws.translate(exc, what=f"{self.what}: DescribeInferenceComponent") from None
        specification = dict(found.get("Specification") or {})
        runtime = found.get("RuntimeConfig") or {}
        return ObservedComponent(
            name=name,
            status=str(found.get("InferenceComponentStatus")),
            endpoint=str(found.get("EndpointName")),
            model_name=str(specification.get("ModelName", "")),
            specification=specification,
            copies=runtime.get("DesiredCopyCount"),
            failure_reason=str(found.get("FailureReason") or ""),
        )

    def _model_exists(self, name: str) -> bool:
        try:
            self._client("sagemaker").describe_model(ModelName=name)
            return True
        except Exception as exc:
            if missing(exc):
                return False
            raise aws.translate(exc, what=f"{self.what}: DescribeModel") from None

    # -- plan and apply -----------------------------------------------------------------------

    def plan(self) -> tuple[ComponentPlan, list[Action]]:
        """Describe what exists and decide what to change (no mutating call)."""
        desired = self.desired
        plan = ComponentPlan(name=self.name, model_name=self.model_name())
        actions: list[Action] = []
        observed = self.observe()
        if observed is not None and observed.endpoint != self.spec.name:
            raise MlopsError(
                f"{self.what} already serves endpoint {observed.endpoint}, not {self.spec.name}",
                hint="a version is served by one endpoint of inference components: undeploy it "
                "there first",
            )
        plan.create_model = not self._model_exists(plan.model_name)
        if plan.create_model:
            actions.append(Action("create", "sagemaker-model", where=plan.model_name))
        wanted = self.specification()
        copies = self.spec.components.copies
        reservation = _describe_compute(wanted["ComputeResourceRequirements"], copies)
        if observed is None:
            plan.component = "create"
        elif observed.status == "Failed":
            plan.component, plan.previous = "recreate", observed
        elif not _same_specification(observed.specification, wanted) or (
            self.spec.components.autoscaling is None and observed.copies != copies
        ):
            plan.component, plan.previous = "update", observed
        if plan.component != "keep":
            actions.append(
                Action(
                    plan.component,
                    "inference-component",
                    desired.version,
                    where=f"{self.spec.name}/{self.name}",
                    detail=reservation,
                )
            )
        scaling = self._scaling()
        if scaling is not None:
            plan.scaling = plan.component in ("create", "recreate") or not scaling.matches(self)
            if plan.scaling:
                target = scaling.configuration["TargetValue"]
                actions.append(
                    Action(
                        "put",
                        "autoscaling",
                        desired.version,
                        where=self.name,
                        detail=f"{scaling.min}-{scaling.max} copies, {target:g} invocations/copy",
                    )
                )
        elif observed is not None and self._has_scaling():
            plan.drop_scaling = True
            actions.append(Action("delete", "autoscaling", desired.version, where=self.name))
        return plan, actions

    def _has_scaling(self) -> bool:
        """Whether Application Auto Scaling has a target for this component's copies."""
        return bool(
            self._call(
                "application-autoscaling",
                "describe_scalable_targets",
                ServiceNamespace="sagemaker",
                ResourceIds=[self.resource_id()],
                ScalableDimension=COPY_DIMENSION,
            ).get("ScalableTargets")
        )

    def apply(self, plan: ComponentPlan, *, reporter: Reporter = SILENT) -> None:
        """Make the component match and wait until it is InService; on failure delete what this
        call created and raise with SageMaker's reason."""
        created_model = False
        try:
            if plan.create_model:
                self._call(
                    "sagemaker",
                    "create_model",
                    ModelName=plan.model_name,
                    Tags=self.tags(),
                    **self.model_document(),
                )
                created_model = True
            if plan.component == "recreate":
                self._delete_component(reporter)
            if plan.component in ("create", "recreate"):
                self._create(reporter)
            elif plan.component == "update":
                self._update(plan, reporter)
        except BaseException:
            if created_model:
                self._clean_up(reporter, "sagemaker", "delete_model", ModelName=plan.model_name)
            raise
        scaling = self._scaling()
        if plan.scaling and scaling is not None:
            scaling.put(self)
        if plan.drop_scaling:
            self._deregister_scaling()

    def _create(self, reporter: Reporter) -> None:
        self._call(
            "sagemaker",
            "create_inference_component",
            InferenceComponentName=self.name,
            EndpointName=self.spec.name,
            VariantName=self.spec.variant,
            Specification=self.specification(),
            RuntimeConfig={"CopyCount": self.spec.components.copies},
            Tags=self.tags(),
        )
        observed = self.wait(reporter, "creating")
        if observed.status != "InService":
            try:
                self._delete_component(reporter)  # and wait until it is gone
            except MlopsError as exc:  # the failure is the error raised; this is a note
                reporter.note(f"{self.what} was not deleted: {exc.message}")
            raise ComponentFailedError(
                f"{self.what} failed: {observed.failure_reason or observed.status}",
                hint="fix the cause and deploy again (the failed component was deleted; the "
                "alias was not moved)",
            )

    def _update(self, plan: ComponentPlan, reporter: Reporter) -> None:
        previous = plan.previous
        assert previous is not None
        self._call(
            "sagemaker",
            "update_inference_component",
            InferenceComponentName=self.name,
            Specification=self.specification(),
            RuntimeConfig={"CopyCount": self.spec.components.copies},
        )
        observed = self.wait(reporter, "updating")
        if observed.status == "InService" and _same_specification(
            observed.specification, self.specification()
        ):
            return
        reason = observed.failure_reason or observed.status
        failed = f"{self.what} update failed: {reason}"
        if observed.status != "InService":  # SageMaker rolls a failed update back itself
            try:
                with running(reporter, f"rolling {self.name} back"):
                    self._call(
                        "sagemaker",
                        "update_inference_component",
                        InferenceComponentName=self.name,
                        Specification=previous.specification,
                        RuntimeConfig={"CopyCount": previous.copies or 1},
                    )
                    self.wait(reporter, "rolling back")
            except MlopsError as exc:
                raise ComponentFailedError(
                    f"{failed}; rolling back failed too: {exc.message}",
                    hint="check the component in the console; undeploy and deploy it again",
                ) from None
        raise ComponentFailedError(f"{failed}; rolled back")

    def _named(self) -> dict[str, str]:
        return {"InferenceComponentName": self.name}

    def wait(self, reporter: Reporter, doing: str) -> ObservedComponent:
        """Poll until the component leaves Creating/Updating."""
        return self._settle(
            self.observe,
            doing=doing,
            in_progress=IN_PROGRESS,
            timeout_s=self.spec.wait_timeout,
            poll_seconds=self.poll_seconds,
            reporter=reporter,
        )

    # -- retire -------------------------------------------------------------------------------

    def retire(self, *, reporter: Reporter = SILENT) -> None:
        """Remove the component's autoscaling, the component and its Model (idempotent)."""
        observed = self.observe()
        if observed is not None and observed.endpoint != self.spec.name:
            return  # another endpoint's now: not ours to remove
        self._deregister_scaling()
        if observed is not None:
            self._delete_component(reporter)
        if observed is not None and observed.model_name:
            try:
                self._call("sagemaker", "delete_model", ModelName=observed.model_name)
            except MlopsError as exc:
                reporter.note(f"model {observed.model_name} was not deleted: {exc.message}")

    def _deregister_scaling(self) -> None:
        try:
            self._client("application-autoscaling").deregister_scalable_target(
                ServiceNamespace="sagemaker",
                ResourceId=self.resource_id(),
                ScalableDimension=COPY_DIMENSION,
            )
        except Exception as exc:
            if aws.error_code(exc) != "ObjectNotFoundException":
                raise aws.translate(exc, what=f"{self.what}: DeregisterScalableTarget") from None

    def _delete_component(self, reporter: Reporter) -> None:
        """Delete the component (unless it is being deleted already) and wait until it is gone."""
        observed = self.observe()
        if observed is None:
            return
        with running(reporter, f"deleting {self.what}"):
            try:
                if observed.status != "Deleting":
                    self._client("sagemaker").delete_inference_component(**self._named())
            except Exception as exc:
                if not missing(exc):
                    raise aws.translate(exc, what=f"{self.what}: delete") from None
            self._gone(self.observe, timeout_s=self.spec.wait_timeout, poll_s=self.poll_seconds)


def _same_specification(found: dict[str, Any], wanted: dict[str, Any]) -> bool:
    if found.get("ModelName") != wanted["ModelName"]:
        return False
    have = found.get("ComputeResourceRequirements") or {}
    want = wanted["ComputeResourceRequirements"]
    keys = set(have) | set(want)
    return all(float(have.get(k) or 0) == float(want.get(k) or 0) for k in keys)


def _describe_compute(compute: dict[str, Any], copies: int) -> str:
    parts = [
        f"{compute['NumberOfCpuCoresRequired']:g} cpu",
        f"{compute['MinMemoryRequiredInMb']} MB",
    ]
    if compute.get("NumberOfAcceleratorDevicesRequired"):
        parts.append(f"{compute['NumberOfAcceleratorDevicesRequired']:g} gpu")
    return f"{', '.join(parts)} per copy, {copies} cop{'y' if copies == 1 else 'ies'}"


__all__ = [
    "ComponentControl",
    "ComponentFailedError",
    "ComponentPlan",
    "ICEndpointControl",
    "ObservedComponent",
]
