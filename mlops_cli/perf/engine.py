"""One load step in one process: closed loop (N users, each sending its next request when the last
one finished) or open loop (requests at intended times, constant or Poisson, whatever the server
does).

Every latency is measured from the request's *intended* start. In the open loop that is its slot
in the schedule, so a stalled server cannot hide: requests keep coming, on new connections if
needed, and each one's wait counts (no coordinated omission). The scheduler sends a request up to
one timer tick early rather than late (the event loop's timers have millisecond resolution);
such a request is measured from when it was actually sent. How late requests left (``lag``)
is recorded separately: that is the generator falling behind, and it is reported.

Requests are assigned to the measurement window of their intended start; requests intended
during warmup are sent and not counted. With a target that sends as tenants, each request goes as
a tenant drawn from the target's tenants (a seeded draw per worker), and its answer is counted per
tenant and per version served; with a target that reports on-demand loads (the router), each
successful answer's latency is also recorded per model as cold (it waited for its model to be
loaded) or warm. A worker of a multi-process run is the same engine with
its share of the users or of the rate, started at a common instant.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from mlops_cli.perf.histogram import Histogram
from mlops_cli.perf.targets import Target
from mlops_cli.perf.traffic import WeightedDraw, traffic_weights
from mlops_cli.perf.windows import WindowStats

EARLY_NS = 1_000_000  # send up to this much before the intended time (one timer tick)
UNREACHABLE_AFTER = 50  # consecutive connection failures with no success: the target is gone
CONNECT_BACKOFF_S = 0.01


@dataclass(frozen=True)
class StepPlan:
    """What one worker runs. ``rate`` is this worker's share; ``phase`` offsets a constant
    schedule so that several workers interleave instead of sending together."""

    mode: str  # "closed" | "open"
    concurrency: int
    rate: float
    arrival: str  # "constant" | "poisson"
    warmup_s: float
    window_s: float
    max_windows: int
    requests: int | None
    timeout_s: float
    phase_ns: int = 0
    seed: int = 0


class Control(Protocol):
    """Where a worker reports finished windows and learns when to stop."""

    async def ready(self) -> int:
        """Called once the target is open; returns the common start (``monotonic_ns``)."""

    def window_done(self, window: WindowStats) -> None: ...

    def stop_after(self) -> int | None:
        """The last window to keep, once the controller has decided (else None)."""


@dataclass
class StepRecord:
    windows: list[WindowStats]
    sent: int
    cpu_ns: int
    measured_ns: int  # from the end of warmup to the end of sending (or the last window kept)
    aborted: str | None
    waited_long: int = 0  # requests that waited over 10 ms for a connection (client cap)


class _Done:
    __slots__ = ("engine", "model", "sent", "start", "tenant", "user", "version")

    def __init__(self, engine: StepEngine, start: int, sent: int, model: int, user: int) -> None:
        self.engine = engine
        self.start = start
        self.sent = sent
        self.model = model
        self.user = user
        self.version: int | None = None  # the registry version served, when routing is followed
        self.tenant = -1  # the tenant sent as (its index), for a target that sends as tenants

    def __call__(
        self,
        kind: str | None,
        tokens: list[int] | None,
        served: int | None = None,
        cold: bool | None = None,
    ) -> None:
        self.engine.finished(self, kind, tokens, served, cold)


class StepEngine:
    def __init__(
        self,
        target: Target,
        requests: Sequence[tuple[int, Any]],
        plan: StepPlan,
        control: Control,
    ) -> None:
        self.target = target
        self.requests = requests  # (model index, prepared request), already in traffic order
        self.plan = plan
        self.control = control
        self.window_ns = int(plan.window_s * 1e9)
        self._set_start(time.monotonic_ns())
        self.windows: list[WindowStats] = []
        self.next_index = 0
        self.sent = 0
        self.measured_sent = 0
        self.stopping = False
        self.stop_ns = 0
        self.connect_failures = 0
        self.aborted: str | None = None
        self.stopped = asyncio.Event()
        self.reported = 0  # windows handed to the controller so far
        self.last_done_ns = 0
        self.request_cap = plan.requests if plan.requests is not None else -1
        self.submit: Callable[[Any, Any], None] = target.submit
        self.follows_routing = target.follows_routing
        self.reports_loads = target.reports_loads
        self.draw_tenant: WeightedDraw | None = None
        tenants = target.spec.tenants
        if target.sends_as_tenants and tenants is not None:
            weights = traffic_weights(len(tenants.names), tenants.distribution)
            self.draw_tenant = WeightedDraw(weights, seed=f"tenants-{plan.seed}")

    def _set_start(self, start_ns: int) -> None:
        self.start_ns = start_ns
        self.m0 = start_ns + int(self.plan.warmup_s * 1e9)
        self.end_ns = self.m0 + self.plan.max_windows * self.window_ns

    # -- sending ---------------------------------------------------------------------------------

    def _send(self, start: int, sent: int, user: int, done: _Done | None = None) -> None:
        model, prepared = self.requests[self.next_index]
        self.next_index += 1
        if self.next_index == len(self.requests):
            self.next_index = 0
        self.sent += 1
        if start >= self.m0:
            self.measured_sent += 1
            if self.measured_sent == self.request_cap:
                self.stop()
        if done is None:
            done = _Done(self, start, sent, model, user)
        else:  # a closed-loop user reuses its one completion object
            done.start = done.sent = start
            done.model = model
        if self.follows_routing:
            done.version = self.target.served_version(prepared)
        if self.draw_tenant is not None:
            done.tenant = tenant = self.draw_tenant()
            self.target.submit_as(prepared, tenant, done)
        else:
            self.submit(prepared, done)

    def _fire(self, user: int, now: int = 0, done: _Done | None = None) -> None:
        if self.stopping:
            return
        now = now or time.monotonic_ns()
        if now >= self.end_ns:
            self.stop()
            return
        self._send(now, now, user, done)

    async def _open_loop(self) -> None:
        rng = random.Random(self.plan.seed)
        interval = 1e9 / self.plan.rate
        poisson = self.plan.arrival == "poisson"
        t = float(self.start_ns + self.plan.phase_ns)
        while not self.stopping:
            now = time.monotonic_ns()
            while t <= now + EARLY_NS:
                intended = int(t)
                if intended >= self.end_ns:
                    self.stop()
                    return
                if intended >= self.m0:
                    self._window(intended).lag.record(max(0, now - intended) // 1000)
                self._send(min(intended, now), now, -1)
                if self.stopping:
                    return
                t += rng.expovariate(1.0) * interval if poisson else interval
                now = time.monotonic_ns()
            await asyncio.sleep(max(0.0, (t - EARLY_NS - now) / 1e9))

    # -- recording -------------------------------------------------------------------------------

    def _window(self, start: int) -> WindowStats:
        index = (start - self.m0) // self.window_ns
        while len(self.windows) <= index:
            self.windows.append(WindowStats(len(self.windows)))
        return self.windows[index]

    def finished(
        self,
        done: _Done,
        kind: str | None,
        tokens: list[int] | None,
        served: int | None = None,
        cold: bool | None = None,
    ) -> None:
        """Record one answer (or failure); ``served`` is the version the answer says served it,
        ``cold`` whether it waited for its model to be loaded."""
        now = time.monotonic_ns()
        start = done.start
        if kind == "connect":
            self.connect_failures += 1
            if self.connect_failures >= UNREACHABLE_AFTER and not self.aborted:
                self.aborted = "the target stopped accepting connections (connection refused)"
                self.stop()
        elif kind is None:
            self.connect_failures = 0
        windows = self.windows
        if kind is None and self.m0 <= now < self.end_ns:
            index = (now - self.m0) // self.window_ns
            window = windows[index] if index < len(windows) else self._window(now)
            window.completed += 1  # throughput counts answers as they arrive
            self.last_done_ns = now
        if self.m0 <= start < self.end_ns:
            index = (start - self.m0) // self.window_ns
            window = windows[index] if index < len(windows) else self._window(start)
            counts = window.per_model.get(done.model)
            if counts is None:
                counts = window.per_model[done.model] = [0, 0, 0]
            if kind is None:
                latency_us = (now - start) // 1000
                window.ok += 1
                window.latency.record(latency_us)
                counts[0] += 1
                counts[2] += latency_us
                if self.reports_loads:
                    load_key = (done.model, 1 if cold else 0)
                    split = window.per_load.get(load_key)
                    if split is None:
                        split = window.per_load[load_key] = Histogram()
                    split.record(latency_us)
                if tokens:
                    self._tokens(window, start, tokens)
            else:
                window.errors[kind] = window.errors.get(kind, 0) + 1
                counts[1] += 1
            version = done.version if served is None else served
            if version is not None:
                by_version = window.per_version.get((done.model, version))
                if by_version is None:
                    by_version = window.per_version[(done.model, version)] = [0, 0]
                by_version[0 if kind is None else 1] += 1
            if done.tenant >= 0:
                key = (done.tenant, done.model, -1 if version is None else version)
                by_tenant = window.per_tenant.get(key)
                if by_tenant is None:
                    by_tenant = window.per_tenant[key] = [0, 0]
                by_tenant[0 if kind is None else 1] += 1
        if done.user >= 0 and not self.stopping:
            if kind == "connect":
                asyncio.get_running_loop().call_later(CONNECT_BACKOFF_S, self._fire, done.user)
            else:
                self._fire(done.user, time.monotonic_ns(), done)

    @staticmethod
    def _tokens(window: WindowStats, start: int, tokens: list[int]) -> None:
        if window.ttft is None:
            window.ttft = Histogram()
            window.itl = Histogram()
        assert window.itl is not None
        window.ttft.record((tokens[0] - start) // 1000)
        for before, after in itertools.pairwise(tokens):
            window.itl.record((after - before) // 1000)
        window.tokens += len(tokens)

    # -- control ---------------------------------------------------------------------------------

    def stop(self) -> None:
        if not self.stopping:
            self.stopping = True
            self.stop_ns = time.monotonic_ns()
            self.stopped.set()

    async def _clock(self) -> None:
        """At each window's end (plus a little grace for late answers) report it; poll the
        controller's decision in between."""
        grace = min(self.window_ns // 10, 50_000_000)
        while not self.stopping:
            due = self.m0 + (self.reported + 1) * self.window_ns + grace
            now = time.monotonic_ns()
            if now >= due:
                self.control.window_done(self._window(self.m0 + self.reported * self.window_ns))
                self.reported += 1
                if self.reported >= self.plan.max_windows:
                    self.stop()
            last = self.control.stop_after()
            if last is not None and self.reported > last:
                self.stop()
            await asyncio.sleep(min(max(0.0, (due - now) / 1e9), 0.05))

    async def run(self) -> StepRecord:
        await self.target.start()
        self.submit = self.target.submitter()
        self._set_start(await self.control.ready())
        # A timer may fire a tick early: a request sent before the start would count as warmup.
        while (wait_ns := self.start_ns - time.monotonic_ns()) > 0:
            await asyncio.sleep(wait_ns / 1e9)
        cpu_start = time.process_time_ns()
        clock = asyncio.get_running_loop().create_task(self._clock())
        if self.plan.mode == "closed":
            for user in range(self.plan.concurrency):
                self._fire(user)
            await self.stopped.wait()
        else:
            await self._open_loop()
            self.stop()
        drain_until = time.monotonic_ns() + int(self.plan.timeout_s * 1e9)
        while self.target.in_flight() and time.monotonic_ns() < drain_until:
            await asyncio.sleep(0.005)
        cpu_ns = time.process_time_ns() - cpu_start
        clock.cancel()
        await asyncio.gather(clock, return_exceptions=True)
        for window in self.windows[self.reported :]:  # windows that ended with the sending
            self.control.window_done(window)
        await self.target.close()
        end = min(self.stop_ns, self.end_ns)
        if self.plan.requests is not None and self.measured_sent >= self.plan.requests:
            end = max(end, min(self.last_done_ns, self.end_ns))  # until the last answer
        measured = max(0, end - self.m0)
        return StepRecord(
            self.windows, self.sent, cpu_ns, measured, self.aborted, self.target.waited_long()
        )
