"""The SageMaker control plane of one multi-model endpoint, on boto3 (botocore) alone.

What the endpoint should be comes from :mod:`mlops_cli.deploy.sagemaker_documents` (the Model,
EndpointConfig, autoscaling and alarm documents, named by digest). :meth:`ControlPlane.plan`
describes what exists (never mutates) and says what differs; :meth:`ControlPlane.apply` changes
only that. A failed endpoint update is rolled back to the previous EndpointConfig; a failed
creation is deleted; either way the error carries SageMaker's ``FailureReason``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlops_cli import aws
from mlops_cli.deploy.base import Action
from mlops_cli.deploy.sagemaker_calls import (
    EndpointFailedError,
    EndpointTimeoutError,
    ResourceCalls,
    Scaling,
    missing,
)
from mlops_cli.deploy.sagemaker_documents import (
    SCALABLE_DIMENSION,
    EndpointDocuments,
    alarm_differs,
)
from mlops_cli.deploy.sagemaker_endpoint import EndpointSpec
from mlops_cli.errors import MlopsError
from mlops_cli.progress import SILENT, Reporter, running

IN_PROGRESS = ("Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting")
FAILED = ("Failed", "UpdateRollbackFailed")


@dataclass
class Observed:
    status: str
    config_name: str
    failure_reason: str = ""
    instance_type: str | None = None


@dataclass
class ControlPlan:
    """What :meth:`ControlPlane.apply` will do; also the names it decided."""

    model_name: str
    config_name: str
    create_model: bool = False
    create_config: bool = False
    endpoint: str = "keep"  # create | update | keep
    previous_config: str | None = None
    scaling: bool = False
    alarms: list[dict[str, Any]] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)

    @property
    def changes(self) -> bool:
        return bool(
            self.create_model
            or self.create_config
            or self.endpoint != "keep"
            or self.scaling
            or self.alarms
        )


class ControlPlane(EndpointDocuments, ResourceCalls):
    """Reads and changes one endpoint's resources in AWS (documents: :class:`EndpointDocuments`)."""

    def __init__(
        self,
        spec: EndpointSpec,
        *,
        region: str,
        image: str,
        instance_type: str,
        poll_seconds: float = 15.0,
    ) -> None:
        super().__init__(spec, image=image, instance_type=instance_type)
        self.region = region
        self.poll_seconds = poll_seconds
        self.what = f"endpoint {spec.name}"

    # -- observation --------------------------------------------------------------------------

    def observe(self) -> Observed | None:
        try:
            found = self._client("sagemaker").describe_endpoint(EndpointName=self.spec.name)
        except Exception as exc:
            if missing(exc):
                return None
            raise aws.translate(exc, what=f"{self.what}: DescribeEndpoint") from None
        variants = found.get("ProductionVariants") or [{}]
        return Observed(
            status=str(found.get("EndpointStatus")),
            config_name=str(found.get("EndpointConfigName")),
            failure_reason=str(found.get("FailureReason") or ""),
            instance_type=variants[0].get("CurrentInstanceType") or None,
        )

    def serving_image(self, observed: Observed) -> str | None:
        """The image the existing endpoint's model runs (None when its config or model is gone)."""
        try:
            config = self._client("sagemaker").describe_endpoint_config(
                EndpointConfigName=observed.config_name
            )
            variants = config.get("ProductionVariants") or [{}]
            model = self._client("sagemaker").describe_model(ModelName=variants[0]["ModelName"])
        except Exception as exc:
            if missing(exc) or isinstance(exc, KeyError):
                return None
            raise aws.translate(exc, what=f"{self.what}: DescribeModel") from None
        image = (model.get("PrimaryContainer") or {}).get("Image")
        return str(image) if image else None

    def _exists(self, operation: str, **params: Any) -> bool:
        try:
            getattr(self._client("sagemaker"), operation)(**params)
            return True
        except Exception as exc:
            if missing(exc):
                return False
            raise aws.translate(exc, what=f"{self.what}: {operation}") from None

    def _scaling(self) -> Scaling | None:
        scaling = self.spec.autoscaling
        if scaling is None:
            return None
        return Scaling(
            resource_id=self.resource_id(),
            dimension=SCALABLE_DIMENSION,
            min=scaling.min,
            max=scaling.max,
            policy_name=self.policy_name(),
            configuration=self.scaling_configuration(),
        )

    def _scaling_matches(self) -> bool:
        scaling = self._scaling()
        return scaling is None or scaling.matches(self)

    def _alarms_to_put(self) -> list[dict[str, Any]]:
        wanted = self.alarm_documents()
        if not wanted:
            return []
        found = self._call(
            "cloudwatch", "describe_alarms", AlarmNames=[a["AlarmName"] for a in wanted]
        ).get("MetricAlarms", [])
        by_name = {a["AlarmName"]: a for a in found}
        return [alarm for alarm in wanted if alarm_differs(by_name.get(alarm["AlarmName"]), alarm)]

    def plan(self) -> ControlPlan:
        """Describe what exists and decide what to change (no mutating call)."""
        model_name, config_name = self.model_name(), self.config_name()
        plan = ControlPlan(model_name=model_name, config_name=config_name)
        observed = self.observe()
        if observed is not None and observed.status in FAILED:
            raise EndpointFailedError(
                f"endpoint {self.spec.name} is {observed.status}: "
                f"{observed.failure_reason or 'no reason given'}",
                hint=f"delete it (aws sagemaker delete-endpoint --endpoint-name {self.spec.name})"
                " and deploy again",
            )
        name = self.spec.name
        plan.create_model = self.has_model and not self._exists(
            "describe_model", ModelName=model_name
        )
        plan.create_config = not self._exists(
            "describe_endpoint_config", EndpointConfigName=config_name
        )
        if plan.create_model:
            plan.actions.append(Action("create", "sagemaker-model", where=model_name))
        if plan.create_config:
            plan.actions.append(
                Action(
                    "create",
                    "endpoint-config",
                    where=config_name,
                    detail=f"{self.spec.instance_count} x {self.instance_type}",
                )
            )
        if observed is None:
            plan.endpoint = "create"
            plan.actions.append(Action("create", "endpoint", where=name, detail=config_name))
        elif observed.config_name != config_name:
            plan.endpoint, plan.previous_config = "update", observed.config_name
            plan.actions.append(
                Action(
                    "update",
                    "endpoint",
                    where=name,
                    detail=f"{observed.config_name} -> {config_name}",
                )
            )
        scaling = self.spec.autoscaling
        if scaling is not None:
            plan.scaling = plan.endpoint != "keep" or not self._scaling_matches()
            if plan.scaling:
                plan.actions.append(
                    Action(
                        "put",
                        "autoscaling",
                        where=name,
                        detail=f"{scaling.min}-{scaling.max} instances, "
                        f"{scaling.target_invocations_per_instance:g} invocations/instance",
                    )
                )
        plan.alarms = self.alarm_documents() if observed is None else self._alarms_to_put()
        for alarm in plan.alarms:
            plan.actions.append(Action("put", "alarm", where=alarm["AlarmName"]))
        return plan

    # -- changes ------------------------------------------------------------------------------

    def apply(self, plan: ControlPlan, *, reporter: Reporter = SILENT) -> None:
        """Make the endpoint match; on failure undo what this call created."""
        created: list[tuple[str, dict[str, Any]]] = []
        try:
            if plan.create_model:
                self._call(
                    "sagemaker",
                    "create_model",
                    ModelName=plan.model_name,
                    Tags=self.tags(),
                    **self.model_document(),
                )
                created.append(("delete_model", {"ModelName": plan.model_name}))
            if plan.create_config:
                self._call(
                    "sagemaker",
                    "create_endpoint_config",
                    EndpointConfigName=plan.config_name,
                    Tags=self.tags(),
                    **self.config_document(),
                )
                created.append(("delete_endpoint_config", {"EndpointConfigName": plan.config_name}))
            if plan.endpoint == "create":
                self._create_endpoint(plan.config_name, reporter)
            elif plan.endpoint == "update":
                assert plan.previous_config is not None
                self._update_endpoint(plan.config_name, plan.previous_config, reporter)
        except BaseException:
            for operation, params in reversed(created):
                self._clean_up(reporter, "sagemaker", operation, **params)
            raise
        if plan.scaling:
            self._put_scaling()
        for alarm in plan.alarms:
            self._call("cloudwatch", "put_metric_alarm", **alarm)

    def _create_endpoint(self, config_name: str, reporter: Reporter) -> None:
        self._call(
            "sagemaker",
            "create_endpoint",
            EndpointName=self.spec.name,
            EndpointConfigName=config_name,
            Tags=self.tags(),
        )
        observed = self.wait(reporter, "creating")
        if observed.status != "InService":
            self._clean_up(reporter, "sagemaker", "delete_endpoint", EndpointName=self.spec.name)
            raise EndpointFailedError(
                f"endpoint {self.spec.name} failed to create: {observed.failure_reason}",
                hint="fix the cause, then deploy again (the failed endpoint was deleted)",
            )

    def _update_endpoint(self, config_name: str, previous: str, reporter: Reporter) -> None:
        self._call(
            "sagemaker",
            "update_endpoint",
            EndpointName=self.spec.name,
            EndpointConfigName=config_name,
        )
        observed = self.wait(reporter, "updating")
        if observed.status == "InService" and observed.config_name == config_name:
            return
        reason = observed.failure_reason or f"the endpoint is {observed.status}"
        failed = f"endpoint {self.spec.name} update to {config_name} failed: {reason}"
        try:
            self.rollback(previous, reporter)
        except MlopsError as exc:  # the update's failure stays the error; the rollback's is added
            raise EndpointFailedError(
                f"{failed}; rolling back to {previous} failed too: {exc.message}",
                hint="check the endpoint in the console; deploy again once it is InService",
            ) from None
        raise EndpointFailedError(f"{failed}; rolled back to {previous}")

    def rollback(self, previous: str, reporter: Reporter) -> None:
        """Serve ``previous`` again: SageMaker may have rolled back itself; else update back to
        it; a Failed endpoint (which only accepts DeleteEndpoint) is recreated on it."""
        observed = self.observe()
        if observed is not None and (observed.status, observed.config_name) == (
            "InService",
            previous,
        ):
            return
        name = self.spec.name
        with running(reporter, f"rolling {name} back to {previous}"):
            try:
                self._client("sagemaker").update_endpoint(
                    EndpointName=name, EndpointConfigName=previous
                )
            except Exception as exc:
                if aws.error_code(exc) != "ValidationException":
                    raise aws.translate(exc, what=f"{self.what}: rollback") from None
                if not self.has_model:  # its components would go with it: not ours to delete
                    raise EndpointFailedError(
                        f"endpoint {name} cannot be updated back to {previous}: "
                        f"{getattr(exc, 'response', {}).get('Error', {}).get('Message', exc)}",
                        hint="its inference components keep it: fix it in the console",
                    ) from None
                self._call("sagemaker", "delete_endpoint", EndpointName=name)
                self._gone(self.observe, timeout_s=self.spec.wait_timeout, poll_s=self.poll_seconds)
                self._call(
                    "sagemaker",
                    "create_endpoint",
                    EndpointName=name,
                    EndpointConfigName=previous,
                    Tags=self.tags(),
                )
        self.wait(reporter, "rolling back")

    def wait(self, reporter: Reporter, doing: str) -> Observed:
        """Poll until the endpoint leaves Creating/Updating."""
        return self._settle(
            self.observe,
            doing=doing,
            in_progress=IN_PROGRESS,
            timeout_s=self.spec.wait_timeout,
            poll_seconds=self.poll_seconds,
            reporter=reporter,
        )

    def _put_scaling(self) -> None:
        scaling = self._scaling()
        assert scaling is not None
        scaling.put(self)


__all__ = [
    "ControlPlan",
    "ControlPlane",
    "EndpointFailedError",
    "EndpointTimeoutError",
    "Observed",
]
