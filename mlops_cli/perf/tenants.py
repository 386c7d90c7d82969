"""Whom a load test of the router sends as: ``--tenants``, ``--tenant-distribution`` and
``--api-keys`` turned into a :class:`~mlops_cli.perf.targets.TenantTraffic`.

Tenants are ``t1,t2`` or ``@FILE`` (one a line; blank lines and ``#`` comments skipped), at most
:data:`MAX_TENANTS` of them and :data:`MAX_TENANTS_FILE_BYTES` of file, each a valid tenant name
(the registry's rule), none twice: a tenant listed twice would silently weigh double. An API keys
file is YAML or JSON, ``{tenant: key}``, read with the project's bounded YAML loader; each key is
sent as ``Authorization: Bearer KEY``, so it must be printable ASCII without spaces. Without
``--tenants`` the keys file's tenants are used, in its order. Every refusal is a UsageError (exit 2)
naming the option, raised before any load is sent.
"""

from __future__ import annotations

from pathlib import Path

from mlops_cli.errors import UsageError
from mlops_cli.perf.router_wire import HEADER_TOKEN, check_tenant
from mlops_cli.perf.targets.base import TenantTraffic
from mlops_cli.perf.traffic import traffic_weights

MAX_TENANTS = 100_000
MAX_TENANTS_FILE_BYTES = 8 << 20
MAX_API_KEY_CHARS = 4096


def tenant_traffic(
    tenants: str | None, distribution: str | None, api_keys: str | None
) -> TenantTraffic | None:
    """The tenants the three flags mean; None when none of them was given."""
    if tenants is None and api_keys is None:
        if distribution is not None:
            raise UsageError(
                "--tenant-distribution needs tenants to spread the load over",
                hint="add --tenants t1,t2 (or @FILE), or --api-keys @FILE",
            )
        return None
    keys = read_api_keys(Path(api_keys.removeprefix("@"))) if api_keys is not None else None
    names = parse_tenants(tenants) if tenants is not None else tuple(keys or {})
    if not names:
        raise UsageError("--api-keys: the file names no tenant", hint="write 'TENANT: KEY' lines")
    distribution = distribution or "uniform"
    traffic_weights(1, distribution, option="--tenant-distribution")  # refuses a bad word
    ordered_keys = None
    if keys is not None:
        missing = [name for name in names if name not in keys]
        if missing:
            raise UsageError(
                f"--api-keys: no key for tenant {missing[0]!r}"
                + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""),
                hint="add 'TENANT: KEY' to the keys file for every tenant of --tenants",
            )
        ordered_keys = tuple(keys[name] for name in names)
    return TenantTraffic(names=names, distribution=distribution, api_keys=ordered_keys)


def parse_tenants(value: str) -> tuple[str, ...]:
    """``t1,t2`` or ``@FILE`` as tenant names; see the module docstring for what is refused."""
    if value.startswith("@"):
        names = [
            line.strip()
            for line in _read_bounded(Path(value[1:])).splitlines()
            if line.strip() and not line.lstrip().startswith("#")
        ]
    else:
        names = [part.strip() for part in value.split(",") if part.strip()]
    if not names:
        raise UsageError("--tenants: no tenant given", hint="write --tenants t1,t2 or @FILE")
    if len(names) > MAX_TENANTS:
        raise UsageError(
            f"--tenants: {len(names):,} tenants, more than the {MAX_TENANTS:,} allowed"
        )
    seen: set[str] = set()
    for name in names:
        check_tenant(name, option="--tenants")
        if name in seen:
            raise UsageError(
                f"--tenants: tenant {name!r} is listed twice",
                hint="list each tenant once; --tenant-distribution weighs them",
            )
        seen.add(name)
    return tuple(names)


def _read_bounded(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_TENANTS_FILE_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"--tenants: cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_TENANTS_FILE_BYTES:
        raise UsageError(
            f"--tenants: {path} is over {MAX_TENANTS_FILE_BYTES >> 20} MiB",
            hint=f"list at most {MAX_TENANTS:,} tenants, one a line",
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"--tenants: {path} is not UTF-8 text: {exc.reason}") from None


def read_api_keys(path: Path) -> dict[str, str]:
    """``{tenant: key}`` from a YAML or JSON file (bounded; see the module docstring)."""
    from mlops_cli.errors import ValidationError
    from mlops_cli.validation import read_yaml_file

    document = read_yaml_file(
        path,
        error_class=ValidationError,
        missing=UsageError(f"--api-keys: {path} does not exist"),
    )
    if not isinstance(document, dict) or not document:
        raise ValidationError("an API keys file maps each tenant to its key", source=str(path))
    keys: dict[str, str] = {}
    for tenant, key in document.items():
        if not isinstance(tenant, str):
            raise ValidationError(f"{tenant!r} is not a tenant name", source=str(path))
        check_tenant(tenant, option=f"--api-keys {path}")
        if not isinstance(key, str) or not HEADER_TOKEN.fullmatch(key):
            raise ValidationError(
                f"the key of {tenant!r} is not one word of printable ASCII "
                f"(at most {MAX_API_KEY_CHARS} characters)",
                source=str(path),
            )
        keys[tenant] = key
    if len(keys) > MAX_TENANTS:
        raise ValidationError(f"more than {MAX_TENANTS:,} tenants", source=str(path))
    return keys
