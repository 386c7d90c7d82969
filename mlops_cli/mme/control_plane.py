"""The SageMaker control plane as mme-local reads it in inference-components mode.

Four describes, each answering the service's document or None when the resource does not exist
(SageMaker answers ``ValidationException`` "Could not find ..." for those). Anything else (the
control plane unreachable, credentials missing or refused) raises
:class:`ControlPlaneUnavailableError`, already translated from botocore. The client is the one
factory's (:func:`mlops_cli.aws.client`), so ``AWS_ENDPOINT_URL(_SAGEMAKER)`` points it at the
moto server in tests and at nothing else. Blocking: call it from a worker thread.
"""

from __future__ import annotations

from typing import Any, Protocol

from mlops_cli.errors import MlopsError

_NOT_FOUND_CODES = frozenset({"ValidationException", "ResourceNotFound", "ValidationError"})


class ControlPlaneUnavailableError(MlopsError):
    """The control plane could not be asked (unreachable, credentials, throttling)."""


class ControlPlane(Protocol):
    """What mme-local reads from SageMaker; each returns None for a resource that does not exist."""

    def endpoint(self, name: str) -> dict[str, Any] | None: ...

    def endpoint_config(self, name: str) -> dict[str, Any] | None: ...

    def inference_component(self, name: str) -> dict[str, Any] | None: ...

    def model(self, name: str) -> dict[str, Any] | None: ...


class SageMakerControlPlane:
    """:class:`ControlPlane` over the ``sagemaker`` client of the standard AWS configuration."""

    def endpoint(self, name: str) -> dict[str, Any] | None:
        return self._describe("describe_endpoint", EndpointName=name)

    def endpoint_config(self, name: str) -> dict[str, Any] | None:
        return self._describe("describe_endpoint_config", EndpointConfigName=name)

    def inference_component(self, name: str) -> dict[str, Any] | None:
        return self._describe("describe_inference_component", InferenceComponentName=name)

    def model(self, name: str) -> dict[str, Any] | None:
        return self._describe("describe_model", ModelName=name)

    def _describe(self, operation: str, **request: str) -> dict[str, Any] | None:
        from botocore.exceptions import BotoCoreError, ClientError

        from mlops_cli.aws import client, error_code, translate

        try:
            document: dict[str, Any] = getattr(client("sagemaker", use="control"), operation)(
                **request
            )
        except ClientError as exc:
            if error_code(exc) in _NOT_FOUND_CODES:
                return None
            raise ControlPlaneUnavailableError(translate(exc, what=operation).message) from None
        except (BotoCoreError, MlopsError) as exc:
            raise ControlPlaneUnavailableError(translate(exc, what=operation).message) from None
        return document


__all__ = ["ControlPlane", "ControlPlaneUnavailableError", "SageMakerControlPlane"]
