"""The one factory of AWS clients: every client mlops uses is built by :func:`client`.

What a client needs is decided by what it is used for, in one table (:data:`USES`):

- ``control``: control planes (SageMaker, Application Auto Scaling, CloudWatch, IAM, DynamoDB).
  Standard retries (6 attempts in all), a short connect timeout, a minute to read.
- ``runtime``: ``invoke_endpoint`` for a user waiting on an answer. Fewer retries (a retried
  inference doubles the wait), and two minutes to read: a multi-model endpoint loads the model
  on its first invocation.
- ``transfer``: S3 data, many parallel parts. Standard retries, a larger connection pool.
- ``measure``: perftest. No retries at all (a retry would hide a failure from the measurement);
  the run passes its own timeout and pool size.

The rest is the standard AWS configuration chain and nothing project-specific: credentials and
profiles as botocore resolves them; the endpoint from ``AWS_ENDPOINT_URL_<SERVICE>``, then
``AWS_ENDPOINT_URL``, then the profile's ``endpoint_url`` (botocore reads all three); the region
from the caller (an endpoint file's ``region``), else ``AWS_REGION``, else ``AWS_DEFAULT_REGION``
and the profile (``AWS_REGION`` first, as the AWS CLI v2 and the SDKs read it; botocore alone
reads only the other two). ``endpoint_url`` and ``unsigned`` are for the loopback stand-ins
(mme-local checks no signature).

botocore is imported on the first call, never at import time, so ``mlops --help`` stays fast.
Clients are cached per thread (a botocore session is not thread-safe to build clients from) and
per exact set of options; :func:`reset_clients` forgets them after the environment changed.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any, Literal

from mlops_cli.aws.errors import translate

Use = Literal["control", "runtime", "transfer", "measure"]


@dataclass(frozen=True)
class ClientProfile:
    """How the clients of one use are built."""

    attempts: int  # in all, the first included (botocore's total_max_attempts); 1: no retry
    connect_timeout: float
    read_timeout: float
    max_pool: int


USES: dict[Use, ClientProfile] = {
    "control": ClientProfile(attempts=6, connect_timeout=5, read_timeout=60, max_pool=16),
    "runtime": ClientProfile(attempts=4, connect_timeout=5, read_timeout=120, max_pool=16),
    "transfer": ClientProfile(attempts=6, connect_timeout=5, read_timeout=60, max_pool=16),
    "measure": ClientProfile(attempts=1, connect_timeout=10, read_timeout=60, max_pool=16),
}

# The use a service's clients get when the caller names none.
DEFAULT_USE: dict[str, Use] = {"s3": "transfer", "sagemaker-runtime": "runtime"}

_local = threading.local()


def default_region() -> str | None:
    """The region a client built without one gets: ``AWS_REGION``, else botocore's chain
    (``AWS_DEFAULT_REGION``, the profile); ``None`` when nothing names one."""
    if os.environ.get("AWS_REGION"):
        return os.environ["AWS_REGION"]
    import botocore.session

    region = botocore.session.get_session().get_config_variable("region")
    return str(region) if region else None


def client(
    service: str,
    *,
    use: Use | None = None,
    region: str | None = None,
    endpoint_url: str | None = None,
    unsigned: bool = False,
    max_pool: int | None = None,
    read_timeout: float | None = None,
) -> Any:
    """A botocore client for ``service`` built as :data:`USES` says for ``use``.

    ``max_pool`` and ``read_timeout`` override the use's values (a transfer with more parts in
    flight; a perftest with its own timeout). Credentials are resolved here, so missing or
    partial ones raise :class:`~mlops_cli.aws.errors.CredentialsError` now."""
    profile = USES[use or DEFAULT_USE.get(service, "control")]
    pool = max_pool or profile.max_pool
    timeout = read_timeout or profile.read_timeout
    key = (service, use, region, endpoint_url, unsigned, pool, timeout)
    cache: dict[tuple[Any, ...], Any] = getattr(_local, "clients", None) or {}
    _local.clients = cache
    if key not in cache:
        cache[key] = _build(
            service,
            profile,
            region=region or default_region(),
            endpoint_url=endpoint_url,
            unsigned=unsigned,
            max_pool=pool,
            read_timeout=timeout,
        )
    return cache[key]


def _build(
    service: str,
    profile: ClientProfile,
    *,
    region: str | None,
    endpoint_url: str | None,
    unsigned: bool,
    max_pool: int,
    read_timeout: float,
) -> Any:
    # botocore directly: the same configuration chain as boto3, without boto3's import cost.
    import botocore.session
    from botocore import UNSIGNED
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError

    config = Config(
        max_pool_connections=max_pool,
        # total_max_attempts counts the first attempt; botocore's "max_attempts" does not.
        retries={"mode": "standard", "total_max_attempts": profile.attempts},
        connect_timeout=min(profile.connect_timeout, read_timeout),
        read_timeout=read_timeout,
        tcp_keepalive=True,
        **({"signature_version": UNSIGNED} if unsigned else {}),
    )
    session = botocore.session.get_session()
    try:  # credentials are resolved here: partial keys or a missing profile fail now
        return session.create_client(
            service, region_name=region, endpoint_url=endpoint_url, config=config
        )
    except BotoCoreError as exc:
        raise translate(exc, what=f"creating the AWS {service} client") from None


def reset_clients() -> None:
    """Forget cached clients (after the environment changed, e.g. in tests)."""
    _local.clients = {}


__all__ = [
    "DEFAULT_USE",
    "USES",
    "ClientProfile",
    "Use",
    "client",
    "default_region",
    "reset_clients",
]
