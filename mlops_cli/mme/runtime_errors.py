"""The errors mme-local answers, in the shape SageMaker's runtime gives them.

Each is an :class:`AgentError`: the HTTP status, the error code that goes in
``x-amzn-ErrorType`` (what boto3 reports as the error's ``Code``) and a message worded as
SageMaker words it, so that clients and their retry rules see what they would see on AWS. The
agent raises them; the HTTP front (:mod:`mlops_cli.mme.server`) writes them. Nothing here does I/O.
"""

from __future__ import annotations

from typing import Any

ACCOUNT = "000000000000"  # mme-local has no account; messages keep SageMaker's shape


class AgentError(Exception):
    """A SageMaker runtime error: HTTP status, error code (``x-amzn-ErrorType``), message."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"Message": self.message, "ErrorCode": self.code, **self.extra}


def not_ready(target: str, why: str) -> AgentError:
    """429: the model could not be made ready within the invocation timeout."""
    return AgentError(
        429,
        "ModelNotReadyException",
        f"Model {target} is not ready: {why}, and did not become ready within the invocation "
        "timeout. Retry the request.",
    )


def model_error(endpoint: str, target: str, status: int, text: str) -> AgentError:
    """424: the container answered the invocation with HTTP ``status`` and ``text``."""
    side = "client" if status < 500 else "server"
    return AgentError(
        424,
        "ModelError",
        f"Received {side} error ({status}) from model {target} with message "
        f'"{text}". See the mme-local log for more information.',
        OriginalStatusCode=status,
        OriginalMessage=text,
        LogStreamArn=f"arn:aws:logs:local:{ACCOUNT}:log-group:/aws/sagemaker/Endpoints/{endpoint}",
    )


def extract_failed(why: str) -> AgentError:
    """400: the model's archive is one SageMaker could not extract either (unsafe, corrupt)."""
    return AgentError(400, "ValidationError", f"Failed to extract model data: {why}")


def insufficient_storage(endpoint: Any, target: str, why: str) -> AgentError:
    """507: the model's archive would take more disk than ``endpoint`` (an EndpointState) has
    left; refused before anything was written."""
    budget_mb = endpoint.disk_budget_bytes / 2**20
    return AgentError(
        507,
        "InsufficientStorage",
        f"Failed to extract model data for TargetModel {target}: {why}; endpoint "
        f"{endpoint.name} has {budget_mb:g} MB of disk for models. Nothing was written.",
    )


def download_failed(bucket: str, key: str, target: str, exc: Exception) -> AgentError:
    """400 when the model's object is missing or forbidden (S3's error code says which), else
    500: the fetch itself failed."""
    from mlops_cli.aws.errors import CredentialsError
    from mlops_cli.errors import NotFoundError

    if isinstance(exc, NotFoundError | CredentialsError):  # as mlops_cli.aws.s3 translates them
        return AgentError(
            400,
            "ValidationError",
            f"Failed to download model data(bucket: {bucket}, key: {key}). Please "
            "ensure that there is an object located at the URL and that the role passed "
            "to CreateModel has permissions to download the model.",
        )
    return AgentError(500, "InternalFailure", f"Failed to download model data for {target}: {exc}")
