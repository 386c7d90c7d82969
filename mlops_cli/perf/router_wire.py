"""The tenant router's wire contract as its clients see it: the load target
(:mod:`mlops_cli.perf.targets.router`) and ``mlops invoke --via-router``
(:mod:`mlops_cli.api.router_client`). Plain Python, cheap to import.

The router takes KServe v2 requests for a stable, versionless model name
(``POST /v2/models/{model}/infer``, ``.../generate_stream`` for server-sent events,
``GET /v2/models/{model}`` for the signature). The caller is a tenant, named by
``Authorization: Bearer KEY`` or, on a router that trusts it, ``X-Tenant-Id``; ``X-Request-Key``
keeps a caller on one side of a canary split. Every answer (errors too, once the version was
resolved) says which version served it (``X-Model-Version``) and why (``X-Model-Source``:
route, alias or canary); an answer that waited for its model to be loaded on a dynamic server says
``X-Model-Load: cold`` (a warm one has no such header); an error is a status and
``{"error": "one line"}``. The router's ``/metrics`` counts on-demand loads and evictions per
Triton model name (``mlops_router_model_loads_total{name}``,
``mlops_router_model_evictions_total{name}``).
"""

from __future__ import annotations

import re
from urllib.parse import quote, urlsplit

from mlops_cli.errors import UsageError

TENANT_HEADER = "X-Tenant-Id"
AUTH_HEADER = "Authorization"
REQUEST_KEY_HEADER = "X-Request-Key"
VERSION_HEADER = "X-Model-Version"
SOURCE_HEADER = "X-Model-Source"
LOAD_HEADER = "X-Model-Load"
METRICS_PATH = "/metrics"
LOADS_METRIC = "mlops_router_model_loads_total"
EVICTIONS_METRIC = "mlops_router_model_evictions_total"
MAX_VERSION_DIGITS = 10
# An API key or a request key travels as one header token: visible ASCII, no space.
HEADER_TOKEN = re.compile(r"[\x21-\x7e]{1,4096}")


def model_path(model: str, action: str = "") -> str:
    """``/v2/models/{model}`` and its ``infer``, ``generate`` and ``generate_stream`` actions."""
    path = f"/v2/models/{quote(model, safe='')}"
    return f"{path}/{action}" if action else path


def parse_version(value: bytes | str | None) -> int | None:
    """An ``X-Model-Version`` value as a version number; None when absent or not one."""
    if value is None:
        return None
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    text = text.strip()
    if not text.isascii() or not text.isdigit() or len(text) > MAX_VERSION_DIGITS:
        return None
    return int(text) or None


def parse_cold(value: bytes | str | None) -> bool:
    """Whether an ``X-Model-Load`` value says the answer waited for a load (``cold``)."""
    if value is None:
        return False
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    return text.strip().lower() == "cold"


def identity_headers(*, tenant: str | None, api_key: str | None) -> dict[str, str]:
    """The headers naming the caller: the API key, the tenant, or both."""
    headers = {}
    if api_key is not None:
        headers[AUTH_HEADER] = f"Bearer {api_key}"
    if tenant is not None:
        headers[TENANT_HEADER] = tenant
    return headers


def router_base(url: str) -> str:
    """``router://HOST:PORT`` (or ``http(s)://HOST:PORT``) as the HTTP base URL to connect to."""
    parts = urlsplit(url)
    scheme = "http" if parts.scheme == "router" else parts.scheme
    return f"{scheme}://{parts.netloc}"


ROUTER_SCHEMES = ("http", "https", "router")


def check_router_url(url: str) -> tuple[str, str, int]:
    """``(scheme, host, port)`` to connect to for ``http(s)://HOST:PORT`` or
    ``router://HOST:PORT`` (plain HTTP); a UsageError for anything else."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if (
        parts.scheme not in ROUTER_SCHEMES
        or not parts.hostname
        or port == -1
        or parts.path.strip("/")
        or parts.query
    ):
        raise UsageError(
            f"{url!r} is not a router URL",
            hint="give http://HOST:PORT (or router://HOST:PORT) of `mlops router serve`",
        )
    scheme = "https" if parts.scheme == "https" else "http"
    return scheme, parts.hostname, port or (443 if scheme == "https" else 80)


def check_tenant(name: str, *, option: str = "--tenant") -> None:
    """Refuse (UsageError naming ``option``) a tenant name outside the registry's rule."""
    from mlops_cli.registry.rules import NAME_RULES, TENANT_NAME

    if not TENANT_NAME.fullmatch(name):
        shown = name if len(name) <= 40 else name[:40] + "..."
        raise UsageError(f"{option}: {shown!r} is not a tenant name: {NAME_RULES['tenant']}")


def check_caller(*, tenant: str | None, api_key: str | None, request_key: str | None) -> None:
    """Refuse (UsageError) what cannot name a caller in a header: a tenant outside the
    registry's rule, an API key or request key that is not one header token."""
    if tenant is not None:
        check_tenant(tenant)
    for option, value in (("--api-key", api_key), ("--request-key", request_key)):
        if value is not None and not HEADER_TOKEN.fullmatch(value):
            raise UsageError(
                f"{option} must be one word of printable ASCII (at most 4096 characters)"
            )
