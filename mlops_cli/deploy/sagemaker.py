"""The ``sagemaker-mme`` and ``mme-local`` targets: SageMaker multi-model endpoints.

A version is served by publishing its ``model.tar.gz`` as ``<prefix><model>-v<version>.tar.gz``
under the endpoint's S3 prefix; the endpoint loads it on its first invocation with that
``TargetModel``, which the deploy sends itself (the version's warmup) before anything switches to
it. ``sagemaker-mme`` also makes sure the endpoint itself exists as the endpoint file describes
(:mod:`mlops_cli.deploy.sagemaker_control`), with the image the model's runtime needs on the
instance's device (:mod:`mlops_cli.deploy.sagemaker_images`: a pair that cannot serve is refused
before any call); ``mme-local`` makes sure the workspace's mme-local server knows the endpoint.
Retiring a version removes its tarball (and, on mme-local, unloads it; SageMaker unloads it on its
own schedule). An identical second deploy only describes: it makes no mutating call.

Status: ``mme-local`` reports per TargetModel what its agent counted (invocations, errors, loads,
cache hits) and FAILED, with the container's message, for a version whose last load failed (a load
lasts until the model first answers: a container that loads lazily fails on that answer);
``sagemaker-mme`` adds what CloudWatch reports (:mod:`mlops_cli.deploy.sagemaker_metrics`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_cli.deploy.base import (
    Capabilities,
    DeploymentRecord,
    DeploymentStatus,
    Desired,
    State,
)
from mlops_cli.deploy.multimodel import MMEPlan, MultiModelTarget
from mlops_cli.deploy.sagemaker_control import ControlPlan, ControlPlane, Observed
from mlops_cli.deploy.sagemaker_endpoint import load_endpoint, region_of
from mlops_cli.deploy.sagemaker_iam import iam_policy
from mlops_cli.deploy.sagemaker_images import (
    IncompatibleImageError,
    classify_image,
    container_of,
)
from mlops_cli.deploy.sagemaker_local import MMELocalPlan, MMELocalTarget  # mme-local's own module
from mlops_cli.deploy.sagemaker_metrics import EndpointMetrics, read_metrics
from mlops_cli.deploy.sagemaker_runtime import SageMakerDetail
from mlops_cli.errors import MlopsError
from mlops_cli.progress import SILENT, Reporter, running

_CONTAINER_NAMES = {"triton": "NVIDIA Triton", "mms": "multi-model-server"}


@dataclass(kw_only=True)
class SageMakerPlan(MMEPlan):
    control: ControlPlane
    endpoint_plan: ControlPlan


class SageMakerMMETarget(MultiModelTarget[SageMakerPlan]):
    """A SageMaker multi-model endpoint, managed with boto3."""

    kind = "sagemaker-mme"
    capabilities = Capabilities(streaming=False, multi_model=True, explicit_load=False, gpu=True)

    def _control(self, desired: Desired) -> ControlPlane:
        self.spec.require_role()
        region = region_of(self.spec)
        gpu = desired.device == "gpu"
        control = ControlPlane(
            self.spec,
            region=region,
            image="",
            instance_type=self.spec.chosen_instance_type(gpu=gpu),
        )
        if self.spec.instance_type is None and not gpu:
            # No type named: an existing endpoint keeps its type, whatever the model asks for.
            observed = control.observe()
            if observed is not None and observed.instance_type:
                control.instance_type = observed.instance_type
        control.image = self._image(desired, region=region, instance_type=control.instance_type)
        return control

    def plan(self, desired: Desired, records: Sequence[DeploymentRecord]) -> SageMakerPlan:
        what = f"{desired.model} v{desired.version}"
        if self.spec.image_uri and self.spec.instance_type:  # refused before any call
            self._check_pairing(desired, self.spec.image_uri, self.spec.instance_type)
        control = self._control(desired)
        self._check_pairing(desired, control.image, control.instance_type)
        observed = control.observe()
        if observed is not None:
            self._check_serving_image(control, observed, desired, what)
        endpoint_plan = control.plan()  # refuses a Failed endpoint before anything
        action, publish, adopt = self._publish_step(desired, records)
        actions = [*endpoint_plan.actions, action]
        if publish or adopt:
            actions.append(self._warm_action(desired))
        return SageMakerPlan(
            self.id,
            desired.model,
            desired.version,
            actions,
            desired=desired,
            publish=publish,
            adopt=adopt,
            control=control,
            endpoint_plan=endpoint_plan,
        )

    def _check_serving_image(
        self, control: ControlPlane, observed: Observed, desired: Desired, what: str
    ) -> None:
        """One endpoint runs one image: a model of another container is refused, rather than
        swapping the image under the models the endpoint serves."""
        current = control.serving_image(observed)
        serving = classify_image(current).container if current else None
        needed = container_of(desired.spec.runtime)
        if serving is not None and serving != needed:
            raise IncompatibleImageError(
                f"endpoint {self.spec.name} runs {_CONTAINER_NAMES[serving]} ({current}) and "
                f"{what} is a {desired.spec.runtime} model, which runs in "
                f"{_CONTAINER_NAMES[needed]}",
                hint="deploy it to an endpoint of its own (another endpoint file)",
            )

    def apply(self, plan: SageMakerPlan, *, reporter: Reporter = SILENT) -> SageMakerDetail:
        desired, control = plan.desired, plan.control
        detail = self.detail(
            desired.model,
            desired.version,
            region=control.region,
            instance_type=control.instance_type,
            model_name=control.model_name(),
            endpoint_config=control.config_name(),
        )
        with self._publishing(plan, reporter):
            control.apply(plan.endpoint_plan, reporter=reporter)
            self._warm(plan, detail, reporter)
        return detail

    def retire(
        self, model: str, version: int, detail: SageMakerDetail, *, reporter: Reporter = SILENT
    ) -> None:
        target = self.spec.tarball_name(model, version)
        with running(reporter, f"removing {target}"):
            self._delete_tarball(model, version)
        if self.spec.model_cache:
            reporter.note(
                f"{target} is no longer routed to and its tarball is gone; SageMaker unloads it "
                "when it needs the memory (model_cache: false in the endpoint file unloads "
                "models once answered)"
            )

    def _observe(self, records: Sequence[DeploymentRecord]) -> list[DeploymentStatus]:
        region = region_of(self.spec)
        observed = ControlPlane(self.spec, region=region, image="", instance_type="").observe()
        published = self._published_versions()
        metrics, metrics_note = self._metrics(region, records) if observed else (None, "")
        found = []
        for record in records:
            model, version = record.model, record.version
            target = self.spec.tarball_name(model, version)
            usage = metrics.of(target) if metrics else {}
            common: dict[str, Any] = {
                "model": model,
                "version": version,
                "target": self.id,
                "where": self.spec.name,
                "requests": _count(usage.get("invocations")),
                "failures": _count(_sum(usage.get("errors_4xx"), usage.get("errors_5xx"))),
                "detail": usage,
            }
            if observed is None:
                found.append(DeploymentStatus(state="UNAVAILABLE", note="no endpoint", **common))
            elif version not in published.get(model, set()):
                note = f"{target} is missing from the prefix"
                found.append(DeploymentStatus(state="DRIFT", note=note, **common))
            elif observed.status != "InService":
                reason = f": {observed.failure_reason}" if observed.failure_reason else ""
                state: State = (
                    "LOADING" if observed.status in ("Creating", "Updating") else "UNAVAILABLE"
                )
                found.append(
                    DeploymentStatus(
                        state=state, note=f"endpoint {observed.status}{reason}", **common
                    )
                )
            else:
                note = "answered its warmup; loads on first use" + metrics_note
                found.append(DeploymentStatus(state="READY", note=note, **common))
        return found + self._drift(records, published)

    def _metrics(
        self, region: str, records: Sequence[DeploymentRecord]
    ) -> tuple[EndpointMetrics | None, str]:
        targets = [self.spec.tarball_name(r.model, r.version) for r in records]
        try:
            return read_metrics(self.spec, region=region, targets=targets), ""
        except MlopsError as exc:  # status still shows the states; the metrics are extra
            return None, f" (no CloudWatch metrics: {exc.message.splitlines()[0]})"


def _sum(*values: float | None) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) if present else None


def _count(value: float | None) -> int | None:
    return None if value is None else round(value)


def iam_policy_for(endpoint: Path) -> dict[str, Any]:
    """The least-privilege IAM policy ``mlops deploy --target sagemaker-mme`` needs."""
    return iam_policy(load_endpoint(endpoint))


__all__ = [
    "MMELocalPlan",
    "MMELocalTarget",
    "MMEPlan",
    "SageMakerDetail",
    "SageMakerMMETarget",
    "SageMakerPlan",
    "iam_policy_for",
]
