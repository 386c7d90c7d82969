"""The drain of a cut-over: wait on evidence that no router still sends to the old version.

Every router heartbeats into the registry the registry revision it has applied and its requests
in flight per version (:mod:`mlops_cli.router.refresh`). After the switch, a deploy reads the
registry revision R and waits until every live router (a heartbeat younger than
:data:`STALE_AFTER_S`) has applied R or later and has nothing in flight on a version it is about to
unload. A router that applied R resolves no new request to the old version, and one with nothing
in flight on it has finished with it, so unloading then loses no router request.

Processes that cache routing without heartbeating (a library :class:`~mlops_cli.registry.routing.
Router`, perftest following a name) refresh within :data:`~mlops_cli.registry.routing.
ROUTER_CACHE_TTL_S`, so the drain also lasts at least that long from the switch. The wait is
bounded (``--drain``); routers that had not confirmed by then are named in the result.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mlops_cli.progress import SILENT, Reporter
from mlops_cli.registry.base import Registry
from mlops_cli.registry.routing import ROUTER_CACHE_TTL_S

STALE_AFTER_S = 5.0  # a router whose heartbeat is older than this is gone
POLL_S = 0.05


@dataclass
class Drain:
    """What the drain waited for and how long."""

    revision: int  # the registry revision every router had to apply
    seconds: float = 0.0
    routers: list[str] = field(default_factory=list)  # the live routers waited on
    unconfirmed: list[str] = field(default_factory=list)  # those that had not confirmed in time

    def to_dict(self) -> dict[str, Any]:
        return {
            "revision": self.revision,
            "seconds": round(self.seconds, 3),
            "routers": self.routers,
            "unconfirmed": self.unconfirmed,
        }


def pending_routers(
    registry: Registry, model: str, versions: Sequence[int], revision: int
) -> tuple[list[str], list[str]]:
    """(live routers, those of them still behind ``revision`` or with a request in flight on one
    of ``versions`` of ``model``)."""
    live = registry.list_heartbeats(max_age_s=STALE_AFTER_S)
    pending = [
        beat.router_id
        for beat in live
        if beat.applied_revision < revision
        or any(beat.in_flight_on(model, version) for version in versions)
    ]
    return [beat.router_id for beat in live], pending


def wait_for_routers(
    registry: Registry,
    model: str,
    versions: Sequence[int],
    *,
    switched_at: float,
    bound_s: float,
    reporter: Reporter = SILENT,
) -> Drain:
    """Wait (see the module docstring) from ``switched_at`` (``time.monotonic()`` of the switch)
    for at least :data:`ROUTER_CACHE_TTL_S` and at most ``bound_s`` seconds."""
    drain = Drain(registry.registry_revision())
    deadline = switched_at + max(bound_s, ROUTER_CACHE_TTL_S)
    floor = switched_at + ROUTER_CACHE_TTL_S
    noted = False
    while True:
        live, pending = pending_routers(registry, model, versions, drain.revision)
        drain.routers = sorted(set(drain.routers) | set(live))
        now = time.monotonic()
        if not pending and now >= floor:
            break
        if now >= deadline:
            drain.unconfirmed = pending
            break
        if pending and not noted:
            reporter.note(f"waiting for {len(pending)} router(s) to finish with the old version")
            noted = True
        time.sleep(min(POLL_S if pending else floor - now, max(0.0, deadline - now)) or POLL_S)
    drain.seconds = time.monotonic() - switched_at
    return drain
