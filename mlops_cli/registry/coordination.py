"""Leases and stored placements: what processes sharing a fleet coordinate through the registry.

Promises every backend keeps (``tests/conformance/test_lease_contract.py`` runs on each):

- **A lease is a lock with an expiry.** :meth:`Coordination.acquire_lease` succeeds when the
  lease is free (never taken, or released), expired (``now >= expires_at``), or already held by
  the same holder (then it is a renewal); otherwise it raises :class:`LeaseHeldError`, a
  ConflictError naming the holder and when its lease expires. So a holder that crashed blocks
  the others for at most its ttl.
- **Only the holder renews or releases.** :meth:`~Coordination.renew_lease` raises
  :class:`LeaseLostError` once another holder took the lease (or it was released);
  :meth:`~Coordination.release_lease` is idempotent and never releases another holder's lease.
- **Every lease write is a compare-and-swap** on the lease's revision: the decision (free,
  expired, whose) is made here, once, on the lease as read, and the backend stores the result
  only if the lease is still at the revision read (a SQLite statement under its write lock; a
  DynamoDB conditional put). A lost swap is read and decided again, so two processes that race
  for a free lease get one winner. Time is the caller's clock (``now``, default ``time.time()``);
  holders on clocks that disagree by more than a small part of the ttl defeat any lease.
- **A placement document is stored whole, with a revision.** :meth:`~Coordination.put_placement`
  stores a JSON object of at most :data:`MAX_PLACEMENT_BYTES` as the fleet's next revision,
  only if the fleet is at ``expect_revision`` (0: nothing stored yet; None: whatever is there),
  else ConflictError; it adds one to the registry revision in the same atomic write, so a router
  that polls :meth:`~mlops_cli.registry.base.Registry.registry_revision` sees it. Leases move no
  revision but their own.
"""

from __future__ import annotations

import json
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from mlops_cli.errors import ConflictError, UsageError
from mlops_cli.registry.records import Lease, PlacementRecord
from mlops_cli.registry.rules import check_name

MAX_LEASE_TTL_S = 86_400.0
MAX_PLACEMENT_BYTES = 4 * 1024 * 1024  # of the document's canonical JSON (UTF-8)
SWAP_TRIES = 16  # compare-and-swap rounds of one lease call before it gives up


class LeaseHeldError(ConflictError):
    """The lease is held by another holder until ``lease.expires_at``."""

    def __init__(self, lease: Lease, *, now: float, waited_s: float | None = None) -> None:
        waited = f" (waited {waited_s:g}s)" if waited_s is not None else ""
        super().__init__(
            f"{lease.name} is held by {lease.holder} until {utc(lease.expires_at)}"
            f" ({max(0.0, lease.expires_at - now):.0f}s from now){waited}",
            hint="retry once it is released, or wait longer (--lock-wait SECONDS); "
            "a holder that stopped renewing loses it by itself when it expires",
        )
        self.lease = lease


class LeaseLostError(ConflictError):
    """``holder`` no longer holds the lease ``name``: ``current`` is what is there now (or
    ``reason`` says why the holder must assume so)."""

    def __init__(
        self, name: str, holder: str, current: Lease | None, *, reason: str | None = None
    ) -> None:
        if reason is not None:
            now_there = reason
        elif current is None:
            now_there = "it was never taken"
        elif not current.holder:
            now_there = "it was released"
        else:
            now_there = f"{current.holder} holds it until {utc(current.expires_at)}"
        super().__init__(
            f"{holder} no longer holds {name}: {now_there}",
            hint="another process may have changed what the lease guarded; look before retrying",
        )
        self.name = name
        self.holder = holder
        self.current = current


def utc(moment: float) -> str:
    """A unix time as an ISO 8601 UTC timestamp, to the second."""
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds")


# -- the decisions, on the lease as read (pure) ------------------------------------------------


def check_lease_args(name: str, holder: str, ttl_s: float | None = None) -> None:
    check_name("lease", name)
    check_name("holder", holder)
    if ttl_s is not None and not (
        isinstance(ttl_s, int | float)
        and not isinstance(ttl_s, bool)
        and 0 < ttl_s <= MAX_LEASE_TTL_S
    ):
        raise UsageError(
            f"a lease ttl is a number of seconds in (0, {MAX_LEASE_TTL_S:g}], not {ttl_s!r}"
        )


def clock(now: float | None) -> float:
    """``now``, checked, or the current unix time."""
    if now is None:
        return time.time()
    if isinstance(now, bool) or not isinstance(now, int | float) or not math.isfinite(now):
        raise UsageError(f"now {now!r} is not a finite unix time")
    return float(now)


def taken(current: Lease | None, name: str, holder: str, ttl_s: float, now: float) -> Lease:
    """The lease ``holder`` gets at ``now``; LeaseHeldError while another holder has it."""
    if current is not None and current.holder not in ("", holder) and not current.expired(now):
        raise LeaseHeldError(current, now=now)
    renewing = current is not None and current.holder == holder
    return Lease(
        name=name,
        holder=holder,
        expires_at=now + ttl_s,
        acquired_at=current.acquired_at if current is not None and renewing else now,
        revision=(current.revision if current is not None else 0) + 1,
    )


def renewed(current: Lease | None, name: str, holder: str, ttl_s: float, now: float) -> Lease:
    """The lease extended to ``now + ttl_s``; LeaseLostError unless ``holder`` still holds it.
    (A lease past its expiry that nobody took since is still the holder's: only another
    acquisition or a release changes the holder.)"""
    if current is None or current.holder != holder:
        raise LeaseLostError(name, holder, current)
    return replace(current, expires_at=now + ttl_s, revision=current.revision + 1)


def released(current: Lease, now: float) -> Lease:
    """The record a release leaves: no holder, expired, the revision moved on."""
    return replace(current, holder="", expires_at=now, revision=current.revision + 1)


def encode_placement(document: Mapping[str, Any]) -> str:
    """The document as stored (canonical JSON); UsageError for anything but a JSON object of at
    most :data:`MAX_PLACEMENT_BYTES`."""
    if not isinstance(document, Mapping):
        raise UsageError(f"a placement document is a JSON object, not {type(document).__name__}")
    try:
        text = json.dumps(dict(document), sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"a placement document must be plain JSON: {exc}") from None
    size = len(text.encode())
    if size > MAX_PLACEMENT_BYTES:
        raise UsageError(
            f"a placement document is at most {MAX_PLACEMENT_BYTES} bytes of JSON, not {size}",
            hint="store fewer or shorter entries (server and model names, not whole records)",
        )
    return text


def placement_moved(fleet: str, found: int, expected: int) -> ConflictError:
    now = "has no placement" if found == 0 else f"has its placement at revision {found}"
    wanted = "none" if expected == 0 else f"revision {expected}"
    return ConflictError(
        f"fleet {fleet} {now}; expected {wanted}; not stored",
        hint="read it again (get_placement), plan on that, and retry",
    )


class Coordination(ABC):
    """The lease and placement part of :class:`~mlops_cli.registry.base.Registry`: template
    methods written once, over a storage port of four methods."""

    # -- leases ------------------------------------------------------------------------------

    def acquire_lease(
        self, name: str, holder: str, ttl_s: float, *, now: float | None = None
    ) -> Lease:
        """Take ``name`` for ``holder`` until ``now + ttl_s`` (see the module's promises);
        LeaseHeldError while another holder has it."""
        check_lease_args(name, holder, ttl_s)
        at = clock(now)
        return self._swap(name, lambda current: taken(current, name, holder, ttl_s, at))

    def renew_lease(
        self, name: str, holder: str, ttl_s: float, *, now: float | None = None
    ) -> Lease:
        """Extend ``holder``'s lease to ``now + ttl_s``; LeaseLostError once it is not
        ``holder``'s any more."""
        check_lease_args(name, holder, ttl_s)
        at = clock(now)
        return self._swap(name, lambda current: renewed(current, name, holder, ttl_s, at))

    def release_lease(self, name: str, holder: str) -> bool:
        """Give ``name`` up, if ``holder`` holds it (True); a lease held by another holder, or
        free, is left as it is (False). Idempotent."""
        check_lease_args(name, holder)
        for _ in range(SWAP_TRIES):
            current = self._read_lease(name)
            if current is None or current.holder != holder:
                return False
            if self._swap_lease(released(current, time.time()), expect_revision=current.revision):
                return True
        raise ConflictError(f"lease {name} kept changing while it was released", hint="retry")

    def get_lease(self, name: str) -> Lease | None:
        """The lease as stored, expired or not (``expired(now)`` tells); None when it was never
        taken or was released."""
        check_name("lease", name)
        found = self._read_lease(name)
        return found if found is not None and found.holder else None

    def _swap(self, name: str, decide: Callable[[Lease | None], Lease]) -> Lease:
        for _ in range(SWAP_TRIES):
            current = self._read_lease(name)
            wanted = decide(current)
            expect = current.revision if current is not None else 0
            if self._swap_lease(wanted, expect_revision=expect):
                return wanted
        raise ConflictError(f"lease {name} kept changing while it was written", hint="retry")

    # -- placements --------------------------------------------------------------------------

    def put_placement(
        self, fleet: str, document: Mapping[str, Any], *, expect_revision: int | None = None
    ) -> PlacementRecord:
        """Store ``document`` as the fleet's next placement revision (see the module's
        promises); ConflictError when the fleet is not at ``expect_revision``."""
        check_name("fleet", fleet)
        if expect_revision is not None and (
            isinstance(expect_revision, bool)
            or not isinstance(expect_revision, int)
            or expect_revision < 0
        ):
            raise UsageError(f"expected revision {expect_revision!r} is not an integer >= 0")
        encoded = encode_placement(document)
        stored = self._swap_placement(fleet, encoded, expect_revision)
        if stored is None:  # only ever with an expectation
            current = self._read_placement(fleet)
            found = current.revision if current is not None else 0
            raise placement_moved(fleet, found, expect_revision or 0)
        return stored

    def get_placement(self, fleet: str) -> PlacementRecord | None:
        """The fleet's placement at its latest revision; None when none was ever stored."""
        check_name("fleet", fleet)
        return self._read_placement(fleet)

    # -- the storage port (names and arguments are checked already) --------------------------

    @abstractmethod
    def _read_lease(self, name: str) -> Lease | None:
        """The stored lease, a released one (``holder == ""``) included; None: never taken."""

    @abstractmethod
    def _swap_lease(self, lease: Lease, *, expect_revision: int) -> bool:
        """Store ``lease`` if the stored one is at ``expect_revision`` (0: none stored), as one
        atomic conditional write; False, writing nothing, otherwise. Moves no other revision."""

    @abstractmethod
    def _read_placement(self, fleet: str) -> PlacementRecord | None: ...

    @abstractmethod
    def _swap_placement(
        self, fleet: str, document_json: str, expect_revision: int | None
    ) -> PlacementRecord | None:
        """Store the document as revision (stored revision + 1) if the stored revision is
        ``expect_revision`` (0: none stored; None: any), adding one to the registry revision in
        the same atomic write; None, writing nothing, when the expectation fails (without one,
        a write that lost a race is tried again). A reader sees the old document or the new
        one, whole."""


__all__ = [
    "MAX_LEASE_TTL_S",
    "MAX_PLACEMENT_BYTES",
    "Coordination",
    "LeaseHeldError",
    "LeaseLostError",
    "encode_placement",
    "utc",
]
