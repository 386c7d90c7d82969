"""botocore's exceptions, translated once into the mlops hierarchy.

Every AWS call of mlops goes through a client from :mod:`mlops_cli.aws.clients` and, when it
fails, through :func:`translate` (S3 calls through :class:`mlops_cli.aws.s3.S3Prefix`, which adds
the bucket's own hints). Callers see :class:`CredentialsError`, :class:`EndpointUnreachableError`,
:class:`~mlops_cli.errors.NotFoundError` or :class:`~mlops_cli.errors.MlopsError`, never a
botocore type, so the command line prints one line with a hint instead of "internal error".
botocore is imported inside :func:`translate` only: importing this module costs nothing.
"""

from __future__ import annotations

from mlops_cli.errors import MlopsError, NotFoundError


class CredentialsError(MlopsError):
    """AWS credentials are missing, expired or refused."""


class EndpointUnreachableError(MlopsError):
    """The AWS endpoint (or its local stand-in) cannot be reached."""


CREDENTIAL_CODES = frozenset(
    {
        "AccessDenied",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "AccessDeniedException",
    }
)
CREDENTIALS_HINT = "set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE naming a configured profile"
NOT_FOUND_CODES = frozenset(
    {"NoSuchBucket", "NoSuchKey", "404", "NotFound", "ResourceNotFoundException"}
)


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ``ClientError`` (``""`` for anything else)."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return ""
    return str(response.get("Error", {}).get("Code", ""))


def is_botocore_error(exc: BaseException) -> bool:
    """Whether ``exc`` comes from botocore (and so must be translated before it travels on)."""
    return type(exc).__module__.startswith("botocore")


def translate(exc: BaseException, *, what: str) -> MlopsError:
    """Turn a botocore exception into the matching mlops error (returned, to be raised).

    ``what`` says what was being done (``"uploading a blob (s3://b/p)"``); it starts the message.
    An mlops error passes through unchanged."""
    if isinstance(exc, MlopsError):
        return exc
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


__all__ = [
    "CREDENTIALS_HINT",
    "CredentialsError",
    "EndpointUnreachableError",
    "error_code",
    "is_botocore_error",
    "translate",
]
