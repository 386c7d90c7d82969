"""On-demand loading on dynamic Triton servers: more models deployed than fit loaded at once.

A server a fleet file marks ``dynamic: true`` has its deployed models written to its repository
and loaded only when a request needs one (as SageMaker's multi-model endpoints do). This router
process keeps, per dynamic server, what is loaded there, how much memory each loaded model takes
(its recorded memory), when each was last used and how many of its requests are in flight:

- A request for a loaded model goes on at once (a *warm* request).
- A request for a model that is not loaded waits for its load (a *cold* request). However many
  requests wait, the model is loaded once (single flight); they all go on when it is READY, and
  all get the load's error if it fails.
- Before a load, the least recently used models with no request in flight are unloaded until the
  new one fits. A model with a request in flight, or being loaded, is never evicted; when the idle
  ones do not free enough, the load waits until requests finish (bounded by the upstream timeout).

What is loaded is read from the server when the router first uses it (its repository index), so
models loaded by an earlier router process count. Several routers sharing one dynamic server each
keep their own view; a model another router unloaded is loaded again on its next request here.

Loads and unloads are blocking Triton repository calls, made on the service's thread pool.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field

from mlops_cli.router.table import TritonUpstream

Ready = Callable[[bool], None]  # ready(cold): go on with the request
Failed = Callable[[str], None]  # failed(reason): answer 503


@dataclass
class _Model:
    memory_mb: float
    last_used: float = 0.0
    in_flight: int = 0


@dataclass
class _Waiting:
    upstream: TritonUpstream
    waiters: list[tuple[Ready, Failed]] = field(default_factory=list)
    since: float = field(default_factory=time.monotonic)


@dataclass
class OnDemandStats:
    loads: dict[str, int] = field(default_factory=dict)  # triton name -> loads
    evictions: dict[str, int] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)


class DynamicServer:
    """One dynamic server as this router sees it; used on the event loop only."""

    def __init__(self, url: str, capacity_mb: float) -> None:
        self.url = url
        self.capacity_mb = capacity_mb
        self.loaded: dict[str, _Model] = {}
        self.loading: dict[str, _Waiting] = {}  # a load in progress
        self.queued: dict[str, _Waiting] = {}  # waiting for room
        self.unloading: dict[str, float] = {}  # name -> memory being freed
        self.synced = False
        self.syncing: list[Callable[[], None]] | None = None

    @property
    def used_mb(self) -> float:
        reserved = sum(w.upstream.memory_mb or 0.0 for w in self.loading.values())
        held = sum(model.memory_mb for model in self.loaded.values())
        return held + reserved + sum(self.unloading.values())


class OnDemand:
    """Every dynamic server of this router; see the module docstring."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        blocking: Executor,
        *,
        load_timeout_s: float,
        on_load: Callable[[str, float], None] | None = None,
        on_evict: Callable[[str], None] | None = None,
    ) -> None:
        self.loop = loop
        self.blocking = blocking
        self.load_timeout_s = load_timeout_s
        self.servers: dict[str, DynamicServer] = {}
        self.stats = OnDemandStats()
        self.on_load = on_load
        self.on_evict = on_evict

    def server(self, upstream: TritonUpstream) -> DynamicServer:
        found = self.servers.get(upstream.url)
        capacity = upstream.capacity_mb or 0.0
        if found is None:
            found = self.servers[upstream.url] = DynamicServer(upstream.url, capacity)
        found.capacity_mb = capacity  # the latest deployment record's figure
        return found

    # -- the request path --------------------------------------------------------------------------

    def acquire(self, upstream: TritonUpstream, ready: Ready, failed: Failed) -> None:
        """Call ``ready(cold)`` once ``upstream``'s model is loaded and counted in flight (now,
        when it is), or ``failed(reason)``. Every acquire that got ``ready`` must be followed by
        one :meth:`release`."""
        server = self.server(upstream)
        if not server.synced:
            self._sync(server, lambda: self.acquire(upstream, ready, failed))
            return
        name = upstream.name
        model = server.loaded.get(name)
        if model is not None:
            if not model.memory_mb and upstream.memory_mb:  # loaded before this router knew it
                model.memory_mb = upstream.memory_mb
            model.in_flight += 1
            model.last_used = time.monotonic()
            ready(False)
            return
        waiting = server.loading.get(name) or server.queued.get(name)
        if waiting is None:
            waiting = server.queued[name] = _Waiting(upstream)
        waiting.waiters.append((ready, failed))
        self._admit(server)

    def release(self, upstream: TritonUpstream) -> None:
        server = self.servers.get(upstream.url)
        model = server.loaded.get(upstream.name) if server is not None else None
        if model is None or server is None:
            return
        model.in_flight = max(0, model.in_flight - 1)
        model.last_used = time.monotonic()
        if model.in_flight == 0 and server.queued:
            self._admit(server)

    # -- loads and evictions -----------------------------------------------------------------------

    def _admit(self, server: DynamicServer) -> None:
        """Start the loads that fit (evicting idle models for them), oldest request first."""
        for name, waiting in sorted(server.queued.items(), key=lambda item: item[1].since):
            if name in server.unloading:  # loaded again once its unload is through
                continue
            memory = waiting.upstream.memory_mb or 0.0
            if memory > server.capacity_mb:
                del server.queued[name]
                self._fail(
                    server,
                    waiting,
                    f"{name} needs {memory:g} MB; the server has {server.capacity_mb:g} MB",
                )
                continue
            if server.used_mb + memory > server.capacity_mb and not self._evict_for(server, memory):
                if time.monotonic() - waiting.since > self.load_timeout_s:
                    del server.queued[name]
                    self._fail(
                        server, waiting, f"no room to load {name}: every loaded model is busy"
                    )
                continue
            del server.queued[name]
            server.loading[name] = waiting
            self._start_load(server, waiting)

    def _evict_for(self, server: DynamicServer, memory: float) -> bool:
        """Unload idle models, least recently used first, until ``memory`` fits; False (and
        nothing unloaded) when the idle ones do not free enough."""
        need = server.used_mb + memory - server.capacity_mb
        idle = sorted(
            (model.last_used, name) for name, model in server.loaded.items() if model.in_flight == 0
        )
        chosen, freed = [], 0.0
        for _, name in idle:
            if freed >= need:
                break
            chosen.append(name)
            freed += server.loaded[name].memory_mb
        if freed < need:
            return False
        for name in chosen:
            held = server.loaded.pop(name)
            server.unloading[name] = held.memory_mb
            self.stats.evictions[name] = self.stats.evictions.get(name, 0) + 1
            if self.on_evict is not None:
                self.on_evict(name)
            self._run(server, name, _unload, self._unloaded_callback(server, name))
        return True

    def _unloaded_callback(self, server: DynamicServer, name: str) -> Callable[[str | None], None]:
        def unloaded(_error: str | None) -> None:  # freed, or failed: counted free either way
            server.unloading.pop(name, None)
            if server.queued:
                self._admit(server)

        return unloaded

    def _start_load(self, server: DynamicServer, waiting: _Waiting) -> None:
        name = waiting.upstream.name
        started = time.monotonic()

        def done(error: str | None) -> None:
            server.loading.pop(name, None)
            if error is not None:
                self._fail(server, waiting, error)
                return
            self.stats.loads[name] = self.stats.loads.get(name, 0) + 1
            if self.on_load is not None:
                self.on_load(name, time.monotonic() - started)
            model = server.loaded[name] = _Model(
                waiting.upstream.memory_mb or 0.0, time.monotonic(), len(waiting.waiters)
            )
            for ready, _ in waiting.waiters:
                ready(True)
            if model.in_flight == 0 and server.queued:
                self._admit(server)

        timeout = self.load_timeout_s
        self._run(server, name, lambda url, n: _load(url, n, timeout), done)

    def _fail(self, server: DynamicServer, waiting: _Waiting, reason: str) -> None:
        name = waiting.upstream.name
        self.stats.failures[name] = self.stats.failures.get(name, 0) + 1
        for _, failed in waiting.waiters:
            failed(reason)

    def _run(
        self,
        server: DynamicServer,
        name: str,
        call: Callable[[str, str], None],
        done: Callable[[str | None], None],
    ) -> None:
        future = self.loop.run_in_executor(self.blocking, call, server.url, name)

        def finished(result: asyncio.Future[None]) -> None:
            error = result.exception()
            done(None if error is None else str(error).splitlines()[0][:300] or repr(error))

        future.add_done_callback(finished)

    def _sync(self, server: DynamicServer, then: Callable[[], None]) -> None:
        """Learn what the server has loaded (once), then go on."""
        if server.syncing is not None:
            server.syncing.append(then)
            return
        server.syncing = [then]
        future = self.loop.run_in_executor(self.blocking, _ready_names, server.url)

        def finished(result: asyncio.Future[set[str]]) -> None:
            names = set() if result.exception() else result.result()
            for name in names:
                # memory of a model loaded before this router: learnt when it is requested
                server.loaded.setdefault(name, _Model(0.0))
            server.synced = True
            pending, server.syncing = server.syncing or [], None
            for step in pending:
                step()

        future.add_done_callback(finished)


def _load(url: str, name: str, timeout: float) -> None:
    from mlops_cli.triton.client import TritonClient

    TritonClient(url, timeout=timeout).load(name, timeout=timeout)


def _unload(url: str, name: str) -> None:
    from mlops_cli.triton.client import TritonClient

    TritonClient(url, timeout=60.0).unload(name, wait=30.0)


def _ready_names(url: str) -> set[str]:
    from mlops_cli.triton.client import TritonClient

    return set(TritonClient(url, timeout=10.0).ready_models())
