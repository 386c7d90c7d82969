"""One place that builds AWS clients and translates botocore errors.

Clients honour the standard AWS configuration chain (profiles, ``AWS_REGION``, credentials,
``AWS_ENDPOINT_URL`` and the per-service ``AWS_ENDPOINT_URL_<SERVICE>``): mlops adds no variables
of its own. botocore is imported here, lazily, and nowhere in the command line.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from mlops_cli.errors import MlopsError, NotFoundError

_local = threading.local()


class CredentialsError(MlopsError):
    """AWS credentials are missing, expired or refused."""


class EndpointUnreachableError(MlopsError):
    """The AWS endpoint (or its local stand-in) cannot be reached."""


def client(service: str, *, max_pool: int = 16) -> Any:
    """A boto3 client for ``service``, cached per thread and pool size."""
    key = (service, max_pool)
    cache: dict[tuple[str, int], Any] = getattr(_local, "clients", None) or {}
    _local.clients = cache
    if key not in cache:
        # botocore directly: the same configuration chain as boto3, without boto3's import cost.
        import botocore.session
        from botocore.config import Config

        session = botocore.session.get_session()
        config = Config(
            max_pool_connections=max_pool,
            retries={"mode": "standard", "max_attempts": 5},
            connect_timeout=5,
            read_timeout=60,
            tcp_keepalive=True,
        )
        # AWS_REGION is the variable the AWS CLI v2 and most SDKs read; botocore reads only
        # AWS_DEFAULT_REGION (and the profile), so honour it here.
        region = os.environ.get("AWS_REGION") if not os.environ.get("AWS_DEFAULT_REGION") else None
        from botocore.exceptions import BotoCoreError

        try:  # credentials are resolved here: partial keys or a missing profile fail now
            cache[key] = session.create_client(service, region_name=region, config=config)
        except BotoCoreError as exc:
            raise translate(exc, what=f"creating the AWS {service} client") from None
    return cache[key]


def reset_clients() -> None:
    """Forget cached clients (after the environment changed, e.g. in tests)."""
    _local.clients = {}


CREDENTIAL_CODES = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "ExpiredTokenException",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "AccessDeniedException",
}
CREDENTIALS_HINT = "set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE naming a configured profile"
NOT_FOUND_CODES = {"NoSuchBucket", "NoSuchKey", "404", "NotFound", "ResourceNotFoundException"}


def translate(exc: BaseException, *, what: str) -> MlopsError:
    """Turn a botocore exception into the matching mlops error (returned, to be raised)."""
    from botocore.exceptions import (
        ClientError,
        ConnectionClosedError,
        CredentialRetrievalError,
        EndpointConnectionError,
        NoAuthTokenError,
        NoCredentialsError,
        PartialCredentialsError,
        ProfileNotFound,
        SSOError,
        TokenRetrievalError,
    )

    if isinstance(exc, NoCredentialsError):
        return CredentialsError(f"{what}: no AWS credentials found", hint=CREDENTIALS_HINT)
    if isinstance(exc, PartialCredentialsError | ProfileNotFound | CredentialRetrievalError):
        return CredentialsError(
            f"{what}: AWS credentials are incomplete: {exc}", hint=CREDENTIALS_HINT
        )
    if isinstance(exc, NoAuthTokenError | SSOError | TokenRetrievalError):
        return CredentialsError(
            f"{what}: AWS credentials are missing or expired: {exc}",
            hint="log in again (aws sso login), or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
        )
    if isinstance(exc, EndpointConnectionError | ConnectionClosedError):
        return EndpointUnreachableError(
            f"{what}: cannot reach {getattr(exc, 'kwargs', {}).get('endpoint_url', 'the endpoint')}",
            hint="check the network, AWS_REGION and AWS_ENDPOINT_URL",
        )
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        message = error.get("Message") or code
        if code in CREDENTIAL_CODES:
            return CredentialsError(
                f"{what}: AWS refused the credentials ({code}: {message})",
                hint="check the profile or keys, and that they may access this resource",
            )
        if code in NOT_FOUND_CODES:
            return NotFoundError(f"{what}: {message} ({code})")
        return MlopsError(f"{what}: {code}: {message}")
    return MlopsError(
        f"{what}: {type(exc).__name__}: {exc}",
        hint="check the AWS configuration (AWS_REGION, AWS_ENDPOINT_URL, the profile)",
    )
