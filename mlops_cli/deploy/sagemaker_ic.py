"""The ``sagemaker-ic`` target: each version an inference component of a shared GPU endpoint.

A multi-model endpoint loads thousands of small models on demand but cannot stream and scales
them all as one; an endpoint of inference components hosts fewer, larger models, each with its own
compute reservation (cores, memory, accelerators), copy count and autoscaling, invoked and streamed
by ``InferenceComponentName``. Both kinds can sit side by side in one platform: MME for the many
small models, this target for the large and streaming ones.

Deploying a version: its tarball is published under the endpoint's S3 prefix (the layout its
container loads, as for MME), the endpoint is created or updated as the endpoint file describes
(:class:`~mlops_cli.deploy.sagemaker_ic_control.ICEndpointControl`), the version's SageMaker Model
and inference component are created and waited for until InService
(:class:`~mlops_cli.deploy.sagemaker_ic_control.ComponentControl`), its autoscaling is put, and its
warmup is sent through the endpoint by ``InferenceComponentName``. Only then does the engine move
the alias; the old version's component, autoscaling and Model are deleted after the drain. A
component that fails is deleted again with the Model this deploy made, the tarball is removed and
the error carries SageMaker's ``FailureReason``: the endpoint serves as before.

Refused before any call: an endpoint file without ``instance_type`` (one type hosts every
component), a reservation larger than the instance type offers (from the shipped instance
table), an image that cannot run the model on the instance's device, an endpoint file with a
variant-level ``autoscaling`` (this endpoint scales with ``managed_scaling``). A ``Failed``
endpoint is refused after one describe, with its reason.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from mlops_cli.deploy.base import (
    Action,
    Capabilities,
    Chunk,
    DeploymentRecord,
    DeploymentStatus,
    Desired,
    InvokeRequest,
    State,
)
from mlops_cli.deploy.multimodel import MMEPlan, MultiModelTarget
from mlops_cli.deploy.sagemaker_control import ControlPlan
from mlops_cli.deploy.sagemaker_endpoint import EndpointFileError, load_endpoint, region_of
from mlops_cli.deploy.sagemaker_iam import iam_policy
from mlops_cli.deploy.sagemaker_ic_control import ComponentControl, ComponentPlan, ICEndpointControl
from mlops_cli.deploy.sagemaker_ic_documents import component_name
from mlops_cli.deploy.sagemaker_runtime import SageMakerDetail
from mlops_cli.deploy.sagemaker_stream import invoke_component
from mlops_cli.deploy.sagemaker_warmup import describe_warmup
from mlops_cli.errors import MlopsError, NotSupportedError, UsageError, ValidationError
from mlops_cli.progress import SILENT, Reporter, running


class ReservationError(ValidationError):
    """A component's compute reservation does not fit on one instance of the endpoint."""


@dataclass(kw_only=True)
class ICPlan(MMEPlan):
    endpoint: ICEndpointControl
    endpoint_plan: ControlPlan
    component: ComponentControl
    component_plan: ComponentPlan

    @property
    def warms(self) -> bool:
        return self.publish or self.adopt or self.component_plan.component != "keep"


class SageMakerICTarget(MultiModelTarget[ICPlan]):
    """An endpoint of SageMaker inference components, managed with boto3."""

    kind = "sagemaker-ic"
    capabilities = Capabilities(streaming=True, multi_model=True, explicit_load=True, gpu=True)
    unsupported: ClassVar[Mapping[str, str]] = {}

    # -- plan ---------------------------------------------------------------------------------

    def plan(self, desired: Desired, records: Sequence[DeploymentRecord]) -> ICPlan:
        spec = self.spec
        spec.require_role(self.kind)
        if spec.autoscaling is not None:
            raise EndpointFileError(
                "autoscaling scales a multi-model endpoint's instances; an endpoint of "
                "inference components scales them itself",
                source=spec.source,
                key_path="autoscaling",
                hint="use inference_components.managed_scaling (instances) and "
                "inference_components.autoscaling (copies of each component)",
            )
        instance_type = self._instance_type()
        what = f"{desired.model} v{desired.version}"
        region = region_of(spec)
        image = self._image(desired, region=region, instance_type=instance_type)
        self._check_pairing(desired, image, instance_type)
        component = ComponentControl(
            spec,
            component_name(desired.model, desired.version),
            region=region,
            desired=desired,
            image=image,
            tarball_uri=spec.tarball_uri(desired.model, desired.version),
        )
        check_reservation(what, component.compute(), instance_type)
        endpoint = ICEndpointControl(spec, region=region, image=image, instance_type=instance_type)
        endpoint_plan = endpoint.plan()  # a Failed endpoint is refused here
        action, publish, adopt = self._publish_step(desired, records)
        component_plan, component_actions = component.plan()
        actions = [*endpoint_plan.actions, action, *component_actions]
        plan = ICPlan(
            self.id,
            desired.model,
            desired.version,
            actions,
            desired=desired,
            publish=publish,
            adopt=adopt,
            endpoint=endpoint,
            endpoint_plan=endpoint_plan,
            component=component,
            component_plan=component_plan,
        )
        if plan.warms:
            plan.actions.append(self._warm_action(desired))
        return plan

    def _instance_type(self) -> str:
        """The endpoint file's: every component runs on it, whatever its model's device (a
        default chosen per model would update the shared endpoint to another type each time a
        model of the other kind is deployed, under the components already there)."""
        if self.spec.instance_type is None:
            raise EndpointFileError(
                "an endpoint of inference components runs every component on one instance "
                "type, which the endpoint file must name",
                source=self.spec.source,
                key_path="instance_type",
                hint="name it, e.g. instance_type: ml.g5.12xlarge (a CPU model runs on a GPU "
                "instance too)",
            )
        return self.spec.instance_type

    # -- apply --------------------------------------------------------------------------------

    def apply(self, plan: ICPlan, *, reporter: Reporter = SILENT) -> SageMakerDetail:
        component = plan.component
        detail = self.detail(
            plan.desired.model,
            plan.desired.version,
            region=component.region,
            instance_type=plan.endpoint.instance_type,
            model_name=plan.component_plan.model_name,
            endpoint_config=plan.endpoint.config_name(),
            inference_component=component.name,
        )
        with self._publishing(plan, reporter):
            plan.endpoint.apply(plan.endpoint_plan, reporter=reporter)
            with self._new_component(plan, reporter):
                component.apply(plan.component_plan, reporter=reporter)
                self._warm(plan, detail, reporter)
        return detail

    @contextlib.contextmanager
    def _new_component(self, plan: ICPlan, reporter: Reporter) -> Iterator[None]:
        """A component this deploy creates is deleted again if the deploy fails after it."""
        try:
            yield
        except BaseException:
            if plan.component_plan.component in ("create", "recreate"):
                try:
                    plan.component.retire(reporter=reporter)
                except MlopsError as exc:  # the deploy's error is the one raised
                    reporter.note(f"{plan.component.what} was not removed: {exc.message}")
            raise

    def _warm_action(self, desired: Desired) -> Action:
        name = component_name(desired.model, desired.version)
        return Action(
            "warm",
            desired.model,
            desired.version,
            self.spec.name,
            f"{describe_warmup(desired.spec)}, InferenceComponentName {name}",
        )

    # -- retire, status, invoke ---------------------------------------------------------------

    def retire(
        self, model: str, version: int, detail: SageMakerDetail, *, reporter: Reporter = SILENT
    ) -> None:
        name = detail.inference_component or component_name(model, version)
        control = ComponentControl(self.spec, name, region=detail.region or region_of(self.spec))
        control.retire(reporter=reporter)
        with running(reporter, f"removing {self.spec.tarball_name(model, version)}"):
            self._delete_tarball(model, version)

    def _observe(self, records: Sequence[DeploymentRecord]) -> list[DeploymentStatus]:
        region = region_of(self.spec)
        found = []
        for record in records:
            detail = self.parse_detail(record)
            name = detail.inference_component or component_name(record.model, record.version)
            observed = ComponentControl(self.spec, name, region=region).observe()
            state: State
            if observed is None:
                state, note = "UNAVAILABLE", f"no inference component {name}"
            elif observed.status == "InService":
                copies = "" if observed.copies is None else f", {observed.copies} copies"
                state, note = "READY", f"inference component {name}{copies}"
            elif observed.status == "Failed":
                state, note = "FAILED", f"{name}: {observed.failure_reason or 'Failed'}"
            else:
                state, note = "LOADING", f"{name} {observed.status}"
            found.append(
                DeploymentStatus(
                    model=record.model,
                    version=record.version,
                    target=self.id,
                    where=self.spec.name,
                    state=state,
                    note=note,
                    detail={"inference_component": name},
                )
            )
        return found

    def _invoke(self, record: DeploymentRecord, request: InvokeRequest) -> Iterator[Chunk]:
        detail = self.parse_detail(record)
        name = detail.inference_component or component_name(record.model, record.version)
        if request.stream and not request.spec.streaming:
            raise NotSupportedError(
                f"cannot stream {record.model} v{record.version}: its mlops.yaml does not "
                "declare streaming: true (its container answers once)",
                hint="invoke without --stream",
            )
        return invoke_component(
            detail.endpoint,
            name,
            detail.region,
            request,
            runtime_url=detail.runtime_url,
        )


def check_reservation(what: str, compute: Mapping[str, Any], instance_type: str) -> None:
    """Refuse a copy that needs more cores, memory or accelerators than one instance of
    ``instance_type`` has (known from the shipped instance table; an unknown type passes)."""
    from mlops_cli.tune.cost import load_prices

    offered = load_prices().instances.get(instance_type)
    if offered is None:
        return
    wanted = [
        ("CPU cores", float(compute["NumberOfCpuCoresRequired"]), offered.vcpus, ""),
        (
            "memory",
            float(compute["MinMemoryRequiredInMb"]),
            None if offered.memory_gib is None else offered.memory_gib * 1024,
            " MB",
        ),
        (
            "accelerators",
            float(compute.get("NumberOfAcceleratorDevicesRequired") or 0),
            offered.gpus,
            "",
        ),
    ]
    for noun, needed, has, unit in wanted:
        if has is not None and needed > has:
            raise ReservationError(
                f"{what} reserves {needed:g}{unit} of {noun} per copy and {instance_type} has "
                f"{has:g}{unit}",
                hint="choose a larger instance_type in the endpoint file, or lower the model's "
                "resources in its mlops.yaml",
            )


def iam_policy_for_components(endpoint: Path) -> dict[str, Any]:
    """The least-privilege IAM policy ``mlops deploy --target sagemaker-ic`` needs."""
    spec = load_endpoint(endpoint)
    if not spec.role_arn:
        raise UsageError(
            "--print-iam-policy needs role_arn in the endpoint file", hint="role_arn: arn:..."
        )
    return iam_policy(spec, components=True)


__all__ = [
    "ICPlan",
    "ReservationError",
    "SageMakerICTarget",
    "check_reservation",
    "iam_policy_for_components",
]
