"""The calls every SageMaker control plane here makes, in one place: boto3 calls of one resource
with errors translated in its name, best-effort clean-up while another error is on its way, and
the Application Auto Scaling target and target-tracking policy of one scalable resource (an
endpoint variant's instances, an inference component's copies)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from mlops_cli import aws
from mlops_cli.errors import MlopsError
from mlops_cli.progress import Reporter, running


class EndpointFailedError(MlopsError):
    """The endpoint or a component is (or went) Failed; carries SageMaker's reason."""


class EndpointTimeoutError(MlopsError):
    """The endpoint or a component did not settle in time."""


class _HasStatus(Protocol):
    @property
    def status(self) -> str: ...


S = TypeVar("S", bound=_HasStatus)


def missing(exc: BaseException) -> bool:
    """Whether a botocore error says the resource does not exist."""
    message = str(getattr(exc, "response", {}).get("Error", {}).get("Message", ""))
    return aws.error_code(exc) in ("ValidationException", "ResourceNotFound") and (
        "Could not find" in message or "not found" in message.lower()
    )


class ResourceCalls:
    """boto3 calls about one resource (``what``, e.g. ``endpoint search``) in one region."""

    region: str
    what: str

    def _client(self, service: str) -> Any:
        return aws.client(service, use="control", region=self.region)

    def _call(self, service: str, operation: str, **params: Any) -> Any:
        try:
            return getattr(self._client(service), operation)(**params)
        except Exception as exc:
            if aws.is_botocore_error(exc):
                raise aws.translate(exc, what=f"{self.what}: {operation}") from None
            raise

    def _clean_up(self, reporter: Reporter, service: str, operation: str, **params: Any) -> None:
        """Best-effort clean-up while another error is on its way: a failure is only a note."""
        try:
            self._call(service, operation, **params)
        except Exception as exc:  # the caller re-raises the error that matters
            reason = exc.message if isinstance(exc, MlopsError) else f"{type(exc).__name__}: {exc}"
            reporter.note(f"clean-up {operation} did not succeed: {reason}")

    def _gone(
        self, observe: Callable[[], object | None], *, timeout_s: float, poll_s: float
    ) -> None:
        """Poll ``observe`` until it finds nothing (backing off from 50 ms up to ``poll_s``);
        EndpointTimeoutError after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        delay = 0.05
        while observe() is not None:
            if time.monotonic() > deadline:
                raise EndpointTimeoutError(f"{self.what} was not deleted in time")
            time.sleep(delay)
            delay = min(delay * 2, poll_s)

    def _settle(
        self,
        observe: Callable[[], S | None],
        *,
        doing: str,
        in_progress: tuple[str, ...],
        timeout_s: float,
        poll_seconds: float,
        reporter: Reporter,
    ) -> S:
        """Poll ``observe`` until the resource leaves ``in_progress`` (backing off from 50 ms
        up to ``poll_seconds``); EndpointFailedError if it disappears, EndpointTimeoutError
        after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        delay = 0.05
        with running(reporter, f"{doing} {self.what}") as task:
            while True:
                observed = observe()
                if observed is None:
                    raise EndpointFailedError(f"{self.what} disappeared while {doing}")
                if observed.status not in in_progress:
                    return observed
                task.update(f"{doing} {self.what}: {observed.status}")
                if time.monotonic() > deadline:
                    raise EndpointTimeoutError(
                        f"{self.what} still {observed.status} after {timeout_s:g} s",
                        hint="raise wait_timeout in the endpoint file, or check the console",
                    )
                time.sleep(delay)
                delay = min(delay * 2, poll_seconds)


@dataclass(frozen=True)
class Scaling:
    """One scalable resource's target (capacity bounds) and target-tracking policy."""

    resource_id: str
    dimension: str
    min: int
    max: int
    policy_name: str
    configuration: dict[str, Any]

    def _key(self) -> dict[str, str]:
        return {
            "ServiceNamespace": "sagemaker",
            "ResourceId": self.resource_id,
            "ScalableDimension": self.dimension,
        }

    def matches(self, calls: ResourceCalls) -> bool:
        """Whether Application Auto Scaling already has this target and policy."""
        key = self._key()
        targets = calls._call(
            "application-autoscaling",
            "describe_scalable_targets",
            ServiceNamespace=key["ServiceNamespace"],
            ResourceIds=[self.resource_id],
            ScalableDimension=self.dimension,
        ).get("ScalableTargets", [])
        if not any(
            t.get("MinCapacity") == self.min and t.get("MaxCapacity") == self.max for t in targets
        ):
            return False
        policies = calls._call(
            "application-autoscaling",
            "describe_scaling_policies",
            PolicyNames=[self.policy_name],
            **key,
        ).get("ScalingPolicies", [])
        return any(
            p.get("TargetTrackingScalingPolicyConfiguration") == self.configuration
            for p in policies
        )

    def put(self, calls: ResourceCalls) -> None:
        """Register the target and put the policy (both calls are idempotent)."""
        key = self._key()
        calls._call(
            "application-autoscaling",
            "register_scalable_target",
            MinCapacity=self.min,
            MaxCapacity=self.max,
            **key,
        )
        calls._call(
            "application-autoscaling",
            "put_scaling_policy",
            PolicyName=self.policy_name,
            PolicyType="TargetTrackingScaling",
            TargetTrackingScalingPolicyConfiguration=self.configuration,
            **key,
        )


__all__ = [
    "EndpointFailedError",
    "EndpointTimeoutError",
    "ResourceCalls",
    "Scaling",
    "missing",
]
