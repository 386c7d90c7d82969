"""Keeping the router's table current, and telling the registry what the router serves.

:func:`refresh` is one step: one cheap read of the registry revision; only when it moved, one
listing of the models, and for each model whose routing revision moved, its aliases, routes and
deployment records. Unchanged models are shared with the previous table, so a route change costs
one model's records, not the registry's.

:class:`Refresher` runs that step every ``interval`` seconds on a thread of its own (registries
block; the event loop never waits on one). A new table is handed to the event loop, which swaps it
in and, in the same callback, reads its requests in flight: so a heartbeat's "applied revision R,
nothing in flight on v1" is one instant of the loop, and no request resolved before the swap can
still be starting after it. The heartbeat goes to the registry when what it says changed, and at
least every :data:`HEARTBEAT_S`. A registry that cannot be reached keeps the last table (requests
keep flowing) and shows in the table's age (``/metrics``, ``/health/ready``).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from mlops_cli.registry.base import Registry
from mlops_cli.registry.records import RouterHeartbeat
from mlops_cli.router.table import (
    EMPTY,
    ModelEntry,
    RoutingTable,
    TritonUpstream,
    build_entry,
    serving_of,
)

HEARTBEAT_S = 1.0  # a heartbeat at least this often (deploy.drain.STALE_AFTER_S: gone after 5)
HEALTH_S = 1.0  # how often each Triton server's readiness is checked
HEALTH_TIMEOUT_S = 0.5


def refresh(registry: Registry, table: RoutingTable) -> RoutingTable:
    """``table`` brought up to the registry's revision (``table`` itself when nothing moved)."""
    revision = registry.registry_revision()
    if revision == table.revision:
        return table
    models: dict[str, ModelEntry] = {}
    for record in registry.list_models():
        held = table.models.get(record.name)
        if held is not None and held.routing_revision == record.routing_revision:
            models[record.name] = held
            continue
        models[record.name] = build_entry(
            record,
            registry.list_aliases(record.name),
            registry.list_routes(model=record.name),
            serving_of(registry.list_deployments(record.name)),
        )
    return RoutingTable(revision, models)


@dataclass(frozen=True)
class Applied:
    """What the event loop reports after taking a table: the revision it serves and its
    requests in flight (``model@version`` -> count, only counts above zero)."""

    revision: int
    in_flight: Mapping[str, int]


class Refresher:
    """Refreshes the table and heartbeats on its own thread; see the module docstring.

    ``apply(table)`` runs on the event loop (through ``call_in_loop``) and returns
    :class:`Applied`; it is called with the same table when nothing changed, to read what is in
    flight. ``set_down(urls)`` gets the Triton servers that failed their last readiness check."""

    def __init__(
        self,
        registry: Registry,
        *,
        router_id: str,
        address: str,
        interval: float,
        call_in_loop: Callable[[Callable[[], Applied]], concurrent.futures.Future[Applied]],
        apply: Callable[[RoutingTable], Applied],
        set_down: Callable[[frozenset[str]], None],
    ) -> None:
        self.registry = registry
        self.router_id = router_id
        self.address = address
        self.interval = interval
        self.call_in_loop = call_in_loop
        self.apply = apply
        self.set_down = set_down
        self.table = EMPTY
        self.loaded_at = 0.0  # monotonic time of the last successful refresh; 0: never
        self.failures = 0
        self.started_at = time.time()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="router-refresh", daemon=True)
        self._last_beat: tuple[int, dict[str, int]] | None = None
        self._beat_at = 0.0
        self._health_at = 0.0
        self._warned = False

    @property
    def loaded(self) -> bool:
        return self.loaded_at > 0.0

    def age(self) -> float:
        """Seconds since the table was last confirmed current (inf before the first load)."""
        return time.monotonic() - self.loaded_at if self.loaded_at else float("inf")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        with contextlib.suppress(Exception):
            self.registry.remove_heartbeat(self.router_id)

    def step(self) -> None:
        """One refresh, apply and (when due) heartbeat."""
        refreshed = False
        try:
            table = refresh(self.registry, self.table)
        except Exception as exc:  # unreachable registry: keep serving the last table
            self.failures += 1
            self._warn(f"router: cannot refresh the routing table: {exc}")
            table = self.table
        else:
            self.loaded_at = time.monotonic()
            refreshed = True
        applied = self.call_in_loop(lambda: self.apply(table)).result(timeout=30)
        self.table = table
        self._heartbeat(applied)  # raises when the registry refuses it (warned by _run)
        if refreshed:
            self._warned = False  # read and heartbeat both went through: warn again next time
        if time.monotonic() - self._health_at >= HEALTH_S:
            self._health_at = time.monotonic()
            self.set_down(self._check_servers(table))

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.step()
            except Exception as exc:  # the loop closing, a heartbeat that failed: try again
                self._warn(f"router: refresh step failed: {exc}")
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def _heartbeat(self, applied: Applied) -> None:
        said = (applied.revision, dict(applied.in_flight))
        now = time.monotonic()
        if said == self._last_beat and now - self._beat_at < HEARTBEAT_S:
            return
        if applied.revision < 0:  # nothing loaded yet: nothing to report
            return
        self.registry.record_heartbeat(
            RouterHeartbeat(
                router_id=self.router_id,
                applied_revision=applied.revision,
                in_flight=dict(applied.in_flight),
                at=time.time(),
                address=self.address,
                started_at=self.started_at,
            )
        )
        self._last_beat, self._beat_at = said, now

    def _check_servers(self, table: RoutingTable) -> frozenset[str]:
        urls = {
            upstream.url
            for entry in table.models.values()
            for found in entry.serving.values()
            for upstream in found
            if isinstance(upstream, TritonUpstream)
        }
        return frozenset(url for url in sorted(urls) if not _ready(url))

    def _warn(self, message: str) -> None:
        if not self._warned:
            print(message, file=sys.stderr, flush=True)
            self._warned = True


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=HEALTH_TIMEOUT_S) as reply:
            return bool(reply.status == 200)
    except (OSError, ValueError):
        return False
