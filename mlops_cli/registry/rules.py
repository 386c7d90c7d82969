"""The registry's rules and their messages, written once for every backend.

A backend (``sqlite``, ``dynamodb``) stores records and keeps each change atomic; it never decides
on its own whether a change is allowed, nor how a refusal reads. That lives here:

- **Names and arguments** are checked when a change is built (:func:`check_name`, the ``__post_init__``
  of every change), so a bad call fails before the first read or write.
- **A change checks itself against a** :class:`~mlops_cli.registry.changes.ModelView` (see
  :mod:`mlops_cli.registry.changes`): the model as the backend read it inside its atomic context. The order of the checks is the precedence of the errors, the same on every
  backend: the model exists, the tenant may see it, the versions named exist and are active, the
  alias named exists, the expected version or revision holds, nothing still uses what goes away.
- **Every error about the registry's content is built by a function here**, so the backends say
  the same words and the same hints (``tests/conformance/test_same_answers.py`` compares them).

How a check and its write stay atomic is the backend's own business: SQLite reads the view and
writes in one ``BEGIN IMMEDIATE`` transaction; DynamoDB writes with conditions and, when refused,
reads the view and asks the change why. When the view shows nothing wrong, another writer got in
between, and the answer is the change's ``lost_race()``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from mlops_cli.errors import ConflictError, MlopsError, NotFoundError, UsageError
from mlops_cli.registry.records import (
    ModelRecord,
    NewVersion,
    RouterHeartbeat,
)

MODEL_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
ALIAS_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
TENANT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
TAG_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$")
ROUTER_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
IN_FLIGHT_KEY = re.compile(rf"^{MODEL_NAME.pattern[1:-1]}@[1-9][0-9]{{0,9}}$")
LEASE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$")  # e.g. target:triton:gpu-fleet
LEASE_HOLDER = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")  # e.g. host:pid:random
FLEET_NAME = MODEL_NAME  # as fleet files spell it (schemas/fleet.schema.json)
MAX_IN_FLIGHT_ENTRIES = 10_000  # versions one heartbeat may report
MAX_IN_FLIGHT_COUNT = 2**63 - 1
MAX_ADDRESS_CHARS = 255

NAME_RULES = {
    "model": "1-64 characters of a-z 0-9 . _ -, starting with a letter or digit",
    "alias": "1-32 characters of a-z 0-9 _ -, starting with a letter",
    "tenant": "1-128 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit",
    "tag": "tag keys: 1-63 characters of A-Z a-z 0-9 . _ / -, starting with a letter or digit",
    "router": "router ids: 1-128 characters of A-Z a-z 0-9 . _ : -",
    "in-flight": "in-flight keys: MODEL@VERSION, a model name and a version number from 1",
    "lease": "lease names: 1-200 characters of A-Z a-z 0-9 . _ : -, starting with a letter or digit",
    "holder": "lease holders: 1-128 characters of A-Z a-z 0-9 . _ : -",
    "fleet": "fleet names: 1-64 characters of a-z 0-9 . _ -, starting with a letter or digit",
}
_PATTERNS = {
    "model": MODEL_NAME,
    "alias": ALIAS_NAME,
    "tenant": TENANT_NAME,
    "tag": TAG_KEY,
    "router": ROUTER_ID,
    "in-flight": IN_FLIGHT_KEY,
    "lease": LEASE_NAME,
    "holder": LEASE_HOLDER,
    "fleet": FLEET_NAME,
}

Expectation = int | Literal["absent"] | None  # what an alias must point at for a change to apply


class RegistryNameError(UsageError):
    """A name outside the rules; the message prints the rule."""


class PrivateModelError(UsageError):
    """A route would send a tenant to a model private to other tenants."""


class RegistryUnavailableError(MlopsError):
    """The registry backend cannot be reached, or keeps throttling after retries."""


def check_name(kind: str, value: str) -> str:
    """Return ``value`` if it is a valid ``kind`` name (model, alias, tenant, tag, router,
    in-flight, lease, holder, fleet)."""
    if not isinstance(value, str) or not _PATTERNS[kind].fullmatch(value):
        raise RegistryNameError(f"invalid {kind} name {value!r}: {NAME_RULES[kind]}")
    return value


# -- the messages ----------------------------------------------------------------------------


def model_missing(model: str) -> NotFoundError:
    """An unknown model; also what a tenant hears of a model private to others (word for word)."""
    return NotFoundError(f"model {model} does not exist", hint="mlops models list")


def version_missing(model: str, version: int) -> NotFoundError:
    return NotFoundError(
        f"model {model} has no version {version}", hint=f"mlops models versions {model}"
    )


def version_archived(model: str, version: int) -> NotFoundError:
    return NotFoundError(
        f"version {version} of model {model} is archived",
        hint=f"use an active version (mlops models versions {model})",
    )


def alias_missing(model: str, alias: str) -> NotFoundError:
    return NotFoundError(
        f"model {model} has no alias @{alias}", hint=f"mlops alias set {model} {alias} VERSION"
    )


def route_missing(tenant: str, model: str) -> NotFoundError:
    return NotFoundError(
        f"tenant {tenant} has no route to {model}",
        hint=f"mlops route set {tenant} {model} VERSION",
    )


def model_private(model: ModelRecord, tenant: str) -> PrivateModelError:
    return PrivateModelError(
        f"model {model.name} is private to other tenants; {tenant} cannot be routed to it",
        hint=f"mlops models update {model.name} --private-to TENANTS,{tenant} (or --public) first",
    )


def alias_moved(
    model: str, alias: str, found: int | None, expected: int | Literal["absent"], *, action: str
) -> ConflictError:
    """A compare-and-swap on an alias lost: it points at ``found`` (None: it does not exist)."""
    now = "does not exist" if found is None else f"points at version {found}"
    wanted = "to be absent" if expected == "absent" else f"version {expected}"
    if found is None:
        hint = "it does not exist now: retry with --expect-version none"
    elif expected == "absent":
        hint = f"it exists now, at {found}: retry with --expect-version {found}"
    else:
        hint = f"it now points at {found}, not {expected}: retry with --expect-version {found}"
    return ConflictError(
        f"alias @{alias} of {model} {now}; expected {wanted}; not {action}", hint=hint
    )


def route_moved(
    tenant: str, model: str, found: int | None, expected: int, *, action: str
) -> ConflictError:
    """A compare-and-swap on a route lost: it is at revision ``found`` (None: it does not exist)."""
    now = "does not exist" if found is None else f"is at revision {found}"
    # A change names the revision it expected; a deletion the number it was given.
    wanted = f"revision {expected}" if action == "changed" else str(expected)
    return ConflictError(
        f"the route of {tenant} to {model} {now}; expected {wanted}; not {action}",
        hint=f"read it again (mlops route get {tenant} {model}) and retry",
    )


def alias_in_use(model: str, alias: str, tenants: Sequence[str]) -> ConflictError:
    return ConflictError(
        f"alias @{alias} of {model} is used by the routes of {', '.join(tenants)}; not deleted",
        hint=f"point those routes elsewhere first (mlops route set TENANT {model} VERSION)",
    )


def version_in_use(model: str, version: int, users: Sequence[str]) -> ConflictError:
    return ConflictError(
        f"version {version} of model {model} is in use by {', '.join(users)}; not archived",
        hint="point those aliases and routes at another version, and undeploy it, first",
    )


def changed_meanwhile(what: str) -> ConflictError:
    return ConflictError(f"{what}: the model changed meanwhile", hint="retry")


# -- argument checks (before any read or write) ------------------------------------------------


def check_new_version(model: str, new: NewVersion, alias: str | None) -> None:
    check_name("model", model)
    if alias is not None:
        check_name("alias", alias)
    for key in new.tags:
        check_name("tag", key)
    if not new.package_digest or not new.package_uri:
        raise UsageError("a version needs a package digest and a package URI")


def check_route_visibility(model: ModelRecord, tenant: str) -> None:
    """Only a model ``tenant`` may see can be routed to."""
    if not model.visible_to(tenant):
        raise model_private(model, tenant)


def check_route_args(
    version: int | None, alias: str | None, canary_version: int | None, canary_percent: float
) -> None:
    if (version is None) == (alias is None):
        raise UsageError("a route names exactly one of a version or an @alias")
    if alias is not None:
        check_name("alias", alias)
    if not 0 <= canary_percent <= 100:
        raise UsageError(f"canary percent {canary_percent} is outside 0-100")
    if (canary_version is None) != (canary_percent == 0):
        raise UsageError(
            "a canary needs both a version and a percent above 0", hint="--canary VERSION:PERCENT"
        )


def check_heartbeat(heartbeat: RouterHeartbeat) -> None:
    """A heartbeat the registry may store: a valid router id, numbers that are numbers, and at
    most :data:`MAX_IN_FLIGHT_ENTRIES` in-flight entries with valid keys and counts >= 0."""
    check_name("router", heartbeat.router_id)
    if not _is_int(heartbeat.applied_revision) or heartbeat.applied_revision < 0:
        raise UsageError(f"applied revision {heartbeat.applied_revision!r} is not an integer >= 0")
    for key in ("at", "started_at"):
        value = getattr(heartbeat, key)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise UsageError(f"heartbeat {key} {value!r} is not a finite unix time")
    if not isinstance(heartbeat.address, str) or len(heartbeat.address) > MAX_ADDRESS_CHARS:
        raise UsageError(f"a router address is a string of at most {MAX_ADDRESS_CHARS} characters")
    if len(heartbeat.in_flight) > MAX_IN_FLIGHT_ENTRIES:
        raise UsageError(
            f"a heartbeat reports at most {MAX_IN_FLIGHT_ENTRIES} in-flight versions,"
            f" not {len(heartbeat.in_flight)}"
        )
    for key, count in heartbeat.in_flight.items():
        check_name("in-flight", key)
        if not _is_int(count) or not 0 <= count <= MAX_IN_FLIGHT_COUNT:
            raise UsageError(f"in-flight count of {key} is {count!r}, not an integer >= 0")


def check_max_age(max_age_s: float | None) -> None:
    if max_age_s is not None and not max_age_s >= 0:  # NaN too
        raise UsageError(f"max age {max_age_s} is not a number of seconds >= 0")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class ModelUpdate:
    """New settings of a model (None: unchanged; ``private_to=()`` makes it public)."""

    description: str | None = None
    default_alias: str | None = None
    private_to: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.default_alias is not None:
            check_name("alias", self.default_alias)
        for tenant in self.private_to or ():
            check_name("tenant", tenant)
        if self.private_to is not None:  # stored sorted and without repeats
            object.__setattr__(self, "private_to", tuple(sorted(set(self.private_to))))


@dataclass(frozen=True)
class VersionMetrics:
    """Measured memory and latency of a version (None: leave that one as it is)."""

    memory_mb: float | None = None
    latency_ms: float | None = None
    gpu_memory_mb: float | None = None

    def __post_init__(self) -> None:
        for key, value in self.measured().items():
            if not (math.isfinite(value) and value >= 0):
                raise UsageError(f"{key} must be a finite number >= 0, not {value}")

    def measured(self) -> dict[str, float]:
        values = {
            "memory_mb": self.memory_mb,
            "latency_ms": self.latency_ms,
            "gpu_memory_mb": self.gpu_memory_mb,
        }
        return {key: value for key, value in values.items() if value is not None}


__all__ = [
    "MAX_IN_FLIGHT_ENTRIES",
    "NAME_RULES",
    "ModelUpdate",
    "PrivateModelError",
    "RegistryNameError",
    "RegistryUnavailableError",
    "VersionMetrics",
    "check_heartbeat",
    "check_max_age",
    "check_name",
    "check_new_version",
    "check_route_args",
    "check_route_visibility",
]
