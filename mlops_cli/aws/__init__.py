"""The one AWS boundary of mlops: clients, S3 prefixes, and the translation of botocore errors.

- :mod:`mlops_cli.aws.clients`: the one client factory (region, endpoint, signing, retries,
  timeouts and pool size, chosen per use in one table), honouring the standard AWS
  configuration chain and adding no variable of its own.
- :mod:`mlops_cli.aws.s3`: ``s3://bucket/prefix`` parsed once (:class:`S3Location`) and the
  operations on a prefix (:class:`S3Prefix`), translated once.
- :mod:`mlops_cli.aws.errors`: botocore exceptions -> mlops errors with hints.

Nothing here imports botocore at import time, and nothing in the command line imports botocore.
"""

from __future__ import annotations

from mlops_cli.aws.clients import USES, Use, client, default_region, reset_clients
from mlops_cli.aws.errors import (
    CREDENTIALS_HINT,
    CredentialsError,
    EndpointUnreachableError,
    error_code,
    is_botocore_error,
    translate,
)
from mlops_cli.aws.s3 import S3Object, S3Prefix
from mlops_cli.aws.s3_location import S3Location, translate_s3
from mlops_cli.aws.s3_stream import S3ObjectWriter

__all__ = [
    "CREDENTIALS_HINT",
    "USES",
    "CredentialsError",
    "EndpointUnreachableError",
    "S3Location",
    "S3Object",
    "S3ObjectWriter",
    "S3Prefix",
    "Use",
    "client",
    "default_region",
    "error_code",
    "is_botocore_error",
    "reset_clients",
    "translate",
    "translate_s3",
]
