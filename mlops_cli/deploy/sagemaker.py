"""The ``sagemaker-mme`` and ``mme-local`` targets: SageMaker multi-model endpoints.

A version is served by publishing its ``model.tar.gz`` as ``<prefix><model>-v<version>.tar.gz``
under the endpoint's S3 prefix; the endpoint loads it on its first invocation with that
``TargetModel``. ``sagemaker-mme`` also makes sure the endpoint itself exists as the endpoint file
describes (:mod:`mlops_cli.deploy.sagemaker_control`); ``mme-local`` makes sure the workspace's
mme-local server knows the endpoint. Retiring a version removes its tarball (and, on mme-local,
unloads it). An identical second deploy only describes: it makes no mutating call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_cli.config import Settings
from mlops_cli.deploy.base import (
    Action,
    Capabilities,
    DeploymentRecord,
    DeploymentStatus,
    Desired,
    State,
)
from mlops_cli.deploy.multimodel import MMEPlan, MultiModelTarget
from mlops_cli.deploy.sagemaker_control import ControlPlan, ControlPlane
from mlops_cli.deploy.sagemaker_endpoint import (
    EndpointSpec,
    default_image,
    load_endpoint,
    region_of,
)
from mlops_cli.deploy.sagemaker_iam import iam_policy
from mlops_cli.deploy.sagemaker_runtime import SageMakerDetail
from mlops_cli.progress import SILENT, Reporter, running


@dataclass(kw_only=True)
class SageMakerPlan(MMEPlan):
    control: ControlPlane
    endpoint_plan: ControlPlan


@dataclass(kw_only=True)
class MMELocalPlan(MMEPlan):
    url: str
    register: bool = False


class SageMakerMMETarget(MultiModelTarget[SageMakerPlan]):
    """A SageMaker multi-model endpoint, managed with boto3."""

    kind = "sagemaker-mme"
    capabilities = Capabilities(streaming=False, multi_model=True, explicit_load=False, gpu=True)

    def _control(self, desired: Desired | None) -> ControlPlane:
        self.spec.require_role()
        region = region_of(self.spec)
        gpu = desired is not None and desired.device == "gpu"
        instance_type = self.spec.chosen_instance_type(gpu=gpu)
        control = ControlPlane(
            self.spec,
            region=region,
            image=self.spec.image_uri or default_image(region, gpu=gpu),
            instance_type=instance_type,
        )
        if self.spec.instance_type is None and not gpu:
            # No type named: an existing endpoint keeps its type, whatever the model asks for.
            observed = control.observe()
            if observed is not None and observed.instance_type:
                control.instance_type = observed.instance_type
        return control

    def plan(self, desired: Desired, records: Sequence[DeploymentRecord]) -> SageMakerPlan:
        control = self._control(desired)
        endpoint_plan = control.plan()  # refuses a Failed endpoint before anything
        action, publish, adopt = self._publish_step(desired, records)
        return SageMakerPlan(
            self.id,
            desired.model,
            desired.version,
            [*endpoint_plan.actions, action],
            desired=desired,
            publish=publish,
            adopt=adopt,
            control=control,
            endpoint_plan=endpoint_plan,
        )

    def apply(self, plan: SageMakerPlan, *, reporter: Reporter = SILENT) -> SageMakerDetail:
        desired, control = plan.desired, plan.control
        with self._publishing(plan, reporter):
            control.apply(plan.endpoint_plan, reporter=reporter)
        return self.detail(
            desired.model,
            desired.version,
            region=control.region,
            instance_type=control.instance_type,
            model_name=control.model_name(),
            endpoint_config=control.config_name(),
        )

    def retire(
        self, model: str, version: int, detail: SageMakerDetail, *, reporter: Reporter = SILENT
    ) -> None:
        with running(reporter, f"removing {self.spec.tarball_name(model, version)}"):
            self._delete_tarball(model, version)

    def _observe(self, records: Sequence[DeploymentRecord]) -> list[DeploymentStatus]:
        region = region_of(self.spec)
        observed = ControlPlane(self.spec, region=region, image="", instance_type="").observe()
        published = self._published_versions()
        found = []
        for record in records:
            model, version = record.model, record.version
            common: dict[str, Any] = {
                "model": model,
                "version": version,
                "target": self.id,
                "where": self.spec.name,
            }
            if observed is None:
                found.append(DeploymentStatus(state="UNAVAILABLE", note="no endpoint", **common))
            elif version not in published.get(model, set()):
                note = f"{self.spec.tarball_name(model, version)} is missing from the prefix"
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
                found.append(DeploymentStatus(state="READY", note="loads on first use", **common))
        return found + self._drift(records, published)


class MMELocalTarget(MultiModelTarget[MMELocalPlan]):
    """mme-local: the same protocol served by the workspace's loopback server."""

    kind = "mme-local"
    capabilities = Capabilities(streaming=False, multi_model=True, explicit_load=True, gpu=False)

    def __init__(
        self, spec: EndpointSpec, *, workspace_root: Path, unresolved: str | None = None
    ) -> None:
        super().__init__(spec, unresolved=unresolved)
        self.workspace_root = workspace_root

    @classmethod
    def _build(
        cls, spec: EndpointSpec, settings: Settings, *, unresolved: str | None = None
    ) -> MMELocalTarget:
        return cls(spec, workspace_root=settings.workspace, unresolved=unresolved)

    def url(self) -> str:
        if self.spec.local.url:
            return self.spec.local.url.rstrip("/")
        from mlops_cli.local.mme import LocalMME
        from mlops_cli.workspace import Workspace

        return LocalMME(Workspace(self.workspace_root)).url()

    def _registration(self) -> dict[str, Any]:
        return {
            "s3_prefix": self.spec.s3_prefix,
            "backend": self.spec.local.backend,
            "memory_budget_mb": self.spec.local.memory_budget_mb,
        }

    def _observed(self, url: str) -> dict[str, Any] | None:
        from mlops_cli.errors import ServerError
        from mlops_cli.local.mme import http_json

        try:
            found: dict[str, Any] = http_json(f"{url}/mme/endpoints/{self.spec.name}")
        except ServerError as exc:
            if "HTTP 400" in exc.message:
                return None
            raise
        return found

    def plan(self, desired: Desired, records: Sequence[DeploymentRecord]) -> MMELocalPlan:
        url = self.url()
        observed = self._observed(url)
        action, publish, adopt = self._publish_step(desired, records)
        wanted = self._registration()
        register = observed is None or any(observed.get(k) != v for k, v in wanted.items())
        plan = MMELocalPlan(
            self.id,
            desired.model,
            desired.version,
            [action],
            desired=desired,
            publish=publish,
            adopt=adopt,
            url=url,
            register=register,
        )
        if register:
            op = "create" if observed is None else "update"
            plan.actions.insert(
                0,
                Action(
                    op,
                    "endpoint",
                    where=f"mme-local {url}",
                    detail=f"{self.spec.name}: {wanted['backend']}, "
                    f"{wanted['memory_budget_mb']:g} MB budget",
                ),
            )
        return plan

    def apply(self, plan: MMELocalPlan, *, reporter: Reporter = SILENT) -> SageMakerDetail:
        from mlops_cli.local.mme import http_json

        desired, url = plan.desired, plan.url
        with self._publishing(plan, reporter):
            if plan.register:
                http_json(
                    f"{url}/mme/endpoints/{self.spec.name}", method="PUT", body=self._registration()
                )
        return self.detail(
            desired.model,
            desired.version,
            region=self.spec.region or "us-east-1",
            runtime_url=url,
            backend=self.spec.local.backend,
        )

    def retire(
        self, model: str, version: int, detail: SageMakerDetail, *, reporter: Reporter = SILENT
    ) -> None:
        from mlops_cli.errors import ServerError
        from mlops_cli.local.mme import http_json

        target = self.spec.tarball_name(model, version)
        with running(reporter, f"unloading {target}"):
            self._delete_tarball(model, version)
            url = detail.runtime_url or self.url()
            try:
                http_json(f"{url}/mme/endpoints/{self.spec.name}/models/{target}", method="DELETE")
            except ServerError as exc:
                reporter.note(f"mme-local did not unload {target}: {exc.message}")

    def _observe(self, records: Sequence[DeploymentRecord]) -> list[DeploymentStatus]:
        url = self.url()
        observed = self._observed(url) or {}
        metrics = observed.get("models", {})
        loaded = {m["target"] for m in observed.get("loaded", [])}
        published = self._published_versions()
        found = []
        for record in records:
            model, version = record.model, record.version
            target = self.spec.tarball_name(model, version)
            usage = metrics.get(target, {})
            common: dict[str, Any] = {
                "model": model,
                "version": version,
                "target": self.id,
                "where": self.spec.name,
                "requests": usage.get("invocations"),
                "failures": usage.get("errors"),
                "latency_ms": usage.get("mean_invoke_ms"),
                "detail": usage,
            }
            state: State
            if not observed:
                state, note = "UNAVAILABLE", f"mme-local at {url} does not know the endpoint"
            elif version not in published.get(model, set()):
                state, note = "DRIFT", f"{target} is missing from the prefix"
            else:
                state = "READY"
                note = "loaded" if target in loaded else "not loaded (loads on first use)"
            found.append(DeploymentStatus(state=state, note=note, **common))
        return found + self._drift(records, published)


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
