"""The lock on a shared target: a lease in the registry, held while a deploy or undeploy changes it.

Shared targets (a Triton fleet, a SageMaker endpoint, a local MME: :data:`SHARED_KINDS`) are
changed by mlops processes on several machines (CI runners, operators). Every deploy and
undeploy to one holds the lease ``target:<target id>`` (:func:`lease_name`; the registry's
leases: :mod:`mlops_cli.registry.coordination`) for the whole change, so that the loads and
unloads of two processes never interleave. The ``local`` target keeps its file lock: it is one
machine's server.

:func:`hold` waits for the lease (polling, at most ``wait_s``, telling the reporter who holds it
and until when), then holds it and releases it on exit. While held, a daemon thread renews it
every third of its ttl, so a process that dies (``kill -9``, a lost runner) blocks the target for
at most one ttl: ``MLOPS_LEASE_TTL_S`` seconds, default 60. A renewal that finds the lease taken
by another holder (this process stalled past its expiry), or that cannot reach the registry
before the lease runs out, marks the hold lost and reports it; the engine calls
:meth:`HeldLease.check` between its steps, which then raises :class:`LeaseLostError`, so the
process stops before its next change instead of racing the new holder.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import re
import secrets
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from mlops_cli.errors import MlopsError, UsageError
from mlops_cli.progress import SILENT, Reporter, running
from mlops_cli.registry.coordination import (
    MAX_LEASE_TTL_S,
    LeaseHeldError,
    LeaseLostError,
    utc,
)
from mlops_cli.registry.records import Lease

if TYPE_CHECKING:
    from mlops_cli.deploy.base import DeployTarget
    from mlops_cli.registry.base import Registry

DEFAULT_TTL_S = 60.0
DEFAULT_WAIT_S = 600.0
TTL_ENV = "MLOPS_LEASE_TTL_S"
POLL_S = 0.5  # between attempts while another process holds the lease (jittered)
SHARED_KINDS = frozenset({"triton", "sagemaker-mme", "sagemaker-ic", "mme-local"})


class Guard(Protocol):
    """What the engine checks between steps: raises once it must stop."""

    def check(self) -> None: ...


class Unguarded:
    """The guard of a target without a lease (its own ``lock()`` serialises it)."""

    def check(self) -> None:
        return None


def lease_name(target: DeployTarget[Any, Any]) -> str:
    return f"target:{target.id}"


def lease_ttl_s(environ: Mapping[str, str] | None = None) -> float:
    """The ttl of the leases this process takes: ``MLOPS_LEASE_TTL_S``, else 60 s."""
    text = (os.environ if environ is None else environ).get(TTL_ENV, "").strip()
    if not text:
        return DEFAULT_TTL_S
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= MAX_LEASE_TTL_S:  # NaN too
        raise UsageError(
            f"{TTL_ENV}={text!r} is not a number of seconds in (0, {MAX_LEASE_TTL_S:g}]",
            hint=f"unset it for the default of {DEFAULT_TTL_S:g}s",
        )
    return value


def new_holder() -> str:
    """This process, as a lease holder: ``host:pid:random`` (the random part tells apart two
    holds of one process, and a pid reused after a crash)."""
    host = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:80] or "host"
    return f"{host}:{os.getpid()}:{secrets.token_hex(4)}"


class HeldLease:
    """A lease this process holds, renewed on a daemon thread until :meth:`release`."""

    def __init__(self, registry: Registry, lease: Lease, ttl_s: float, reporter: Reporter):
        self.registry = registry
        self.lease = lease  # as last written
        self.ttl_s = ttl_s
        self.reporter = reporter
        self._lost: LeaseLostError | None = None
        self._stop = threading.Event()
        self._renewer = threading.Thread(
            target=self._renew, name=f"renew {lease.name}", daemon=True
        )

    @property
    def name(self) -> str:
        return self.lease.name

    @property
    def holder(self) -> str:
        return self.lease.holder

    @property
    def lost(self) -> bool:
        return self._lost is not None

    def check(self) -> None:
        """LeaseLostError once a renewal found the lease lost."""
        if self._lost is not None:
            raise self._lost

    def start(self) -> None:
        self._renewer.start()

    def release(self) -> None:
        """Stop renewing and give the lease up (unless lost). Never raises: a lease that could
        not be released expires by itself, which is reported."""
        self._stop.set()
        self._renewer.join(timeout=self.ttl_s)
        try:
            self.registry.release_lease(self.name, self.holder)
        except MlopsError as exc:
            self.reporter.note(
                f"could not release {self.name} ({exc.message}); "
                f"it expires at {utc(self.lease.expires_at)}"
            )

    def _renew(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            try:
                self.lease = self.registry.renew_lease(self.name, self.holder, self.ttl_s)
            except LeaseLostError as lost:
                self._lose(lost)
                return
            except Exception as exc:  # the registry did not answer: try again while it lasts
                if time.time() >= self.lease.expires_at:
                    reason = f"it expired while the registry did not answer ({exc})"
                    self._lose(LeaseLostError(self.name, self.holder, None, reason=reason))
                    return

    def _lose(self, lost: LeaseLostError) -> None:
        self._lost = lost
        self.reporter.note(f"lost the lock: {lost.message}; stopping before the next step")


def _wait(
    registry: Registry,
    name: str,
    holder: str,
    ttl_s: float,
    wait_s: float,
    reporter: Reporter,
    poll_s: float,
) -> Lease:
    started = time.monotonic()
    deadline = started + wait_s
    try:
        return registry.acquire_lease(name, holder, ttl_s)
    except LeaseHeldError as held:
        if wait_s <= 0:
            raise
        seen = held.lease
    with running(reporter, f"waiting for {name}") as task:
        announced = ""
        while True:
            if seen.holder != announced:
                announced = seen.holder
                left = max(0.0, seen.expires_at - time.time())
                task.update(f"waiting for {name} (held by {seen.holder})")
                reporter.note(
                    f"waiting for {name}: held by {seen.holder} until {utc(seen.expires_at)}"
                    f" ({left:.0f}s unless renewed)"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                waited = round(time.monotonic() - started, 1)
                raise LeaseHeldError(seen, now=time.time(), waited_s=waited or None)
            time.sleep(min(remaining, poll_s * random.uniform(0.8, 1.2)))
            try:
                lease = registry.acquire_lease(name, holder, ttl_s)
            except LeaseHeldError as held:
                seen = held.lease
                continue
            reporter.note(f"took {name} after waiting {time.monotonic() - started:.1f}s")
            return lease


@contextlib.contextmanager
def hold(
    registry: Registry,
    name: str,
    *,
    ttl_s: float | None = None,
    wait_s: float = DEFAULT_WAIT_S,
    reporter: Reporter = SILENT,
    holder: str | None = None,
    poll_s: float = POLL_S,
) -> Iterator[HeldLease]:
    """Hold the lease ``name`` for the body: wait for it at most ``wait_s`` (then
    LeaseHeldError naming the holder and its expiry; nothing is held), renew it every
    ``ttl_s / 3`` (default :func:`lease_ttl_s`), release it on exit."""
    ttl = lease_ttl_s() if ttl_s is None else ttl_s
    if not 0 <= wait_s < math.inf:
        raise UsageError(f"a lock wait is a number of seconds >= 0, not {wait_s!r}")
    lease = _wait(registry, name, holder or new_holder(), ttl, wait_s, reporter, poll_s)
    held = HeldLease(registry, lease, ttl, reporter)
    held.start()
    try:
        yield held
    finally:
        held.release()


def target_lease(
    registry: Registry,
    target: DeployTarget[Any, Any],
    *,
    wait_s: float = DEFAULT_WAIT_S,
    reporter: Reporter = SILENT,
) -> contextlib.AbstractContextManager[Guard]:
    """:func:`hold` of the target's lease for a shared target; nothing for any other kind."""
    if target.kind not in SHARED_KINDS:
        return contextlib.nullcontext(Unguarded())
    return hold(registry, lease_name(target), wait_s=wait_s, reporter=reporter)


__all__ = [
    "DEFAULT_TTL_S",
    "DEFAULT_WAIT_S",
    "SHARED_KINDS",
    "TTL_ENV",
    "Guard",
    "HeldLease",
    "LeaseHeldError",
    "LeaseLostError",
    "hold",
    "lease_name",
    "lease_ttl_s",
    "new_holder",
    "target_lease",
]
