"""A discrete-event simulation of on-demand loading on a fleet far larger than a test machine.

Pure: no I/O, no clock; the same inputs and seed give the same answer.

The model (what the router does for ``dynamic: true`` servers, :mod:`mlops_cli.router.ondemand`):

- Each server's memory is a cache of loaded models. A request for a loaded, READY model is a
  *hit*. Any other request is *cold*: it waits for the model's load, and however many requests
  arrive while it loads, it is loaded once (single flight: later ones wait what is left of it).
- Before a load, the least recently used models are unloaded until the new one fits (requests
  take no time here, so no model is ever "in flight" when it is chosen).
- A model's replicas take its requests in turn, as the router's replica rotation does.
- A load takes ``load_time_s + load_s_per_gb * size``; the p99 latency a cold load adds is read
  over all requests (most add 0) and over the cold ones.
- A failed server loses its cache; its models are placed again on the servers left and are cold
  on their new home.

Placements compared on the same trace: ``planner`` (:func:`~mlops_cli.placement.spread_hot` on
servers whose memory is scaled up by the fleet's overcommit, so each server gets an even share of
model memory and of requests, hot models spread over replicas; failures re-placed by
:func:`~mlops_cli.placement.rebalance`), and the naive baselines ``random`` and ``round-robin``
(one replica each; a failed server's models go to the next live server by the same rule).
``servers_needed`` is the planner's server count with every model resident (no cold request
after warm-up); with no server count given, that is the fleet simulated.

:func:`lru_hit_rate` is the ideal LRU (instant loads, one cache) used to check the real router.
"""

from __future__ import annotations

import bisect
import math
import random
import zlib
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from mlops_cli.placement.hot import spread_hot
from mlops_cli.placement.planner import lower_bound, plan, rebalance
from mlops_cli.placement.records import Item, NoFit, PlacementInputError, Plan, Server

POLICIES = ("planner", "random", "round-robin")
OVERCOMMIT_SLACK = 1.05  # the planner packs into scaled servers with this much room to spare
MAX_REPLICAS = 8  # hot models get at most this many replicas


@dataclass(frozen=True)
class Workload:
    """A generated trace: ``models`` with log-normal sizes (median, sigma of the log), requests
    arriving as a Poisson process at ``rate`` per second, a model drawn by Zipf(``zipf``) over
    ``tenants`` and then over that tenant's models (model ``i`` belongs to tenant ``i % tenants``)."""

    models: int
    requests: int
    size_median_mb: float = 500.0
    size_sigma: float = 1.0
    zipf: float = 1.1
    tenants: int = 1
    rate: float = 1000.0
    seed: int = 0


@dataclass(frozen=True)
class Trace:
    """Requests in time order: ``times[k]`` (seconds) for model ``models[k]``, an index into
    ``names`` and ``sizes_mb``."""

    names: tuple[str, ...]
    sizes_mb: tuple[float, ...]
    times: Sequence[float]
    models: Sequence[int]


@dataclass(frozen=True)
class FleetModel:
    """The fleet simulated: ``servers`` (None: as many as hold every model) of
    ``server_memory_mb`` each, load times, and ``fail_servers`` servers failing during the run."""

    server_memory_mb: float
    servers: int | None = None
    load_time_s: float = 2.0
    load_s_per_gb: float = 0.0
    fail_servers: int = 0
    seed: int = 0


@dataclass(frozen=True)
class Outcome:
    """What one placement policy gave on the trace."""

    policy: str
    requests: int
    hits: int
    cold: int
    first_loads: int  # (server, model) pairs loaded for the first time: the warm-up
    loads: int
    evictions: int
    cold_added_p99_ms: float  # over all requests
    cold_wait_p99_ms: float  # over cold requests
    replicas: int
    max_load_ratio: float  # the busiest server's requests over the mean of the live servers

    @property
    def hit_rate(self) -> float:
        return self.hits / self.requests if self.requests else 1.0

    @property
    def hit_rate_after_warmup(self) -> float:
        """Hits among the requests that were not a model's first on its server."""
        rest = self.requests - self.first_loads
        return self.hits / rest if rest > 0 else 1.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "requests": self.requests,
            "hit_rate": round(self.hit_rate, 6),
            "hit_rate_after_warmup": round(self.hit_rate_after_warmup, 6),
            "cold_fraction": round(self.cold / self.requests, 6) if self.requests else 0.0,
            "loads": self.loads,
            "evictions": self.evictions,
            "cold_added_p99_ms": round(self.cold_added_p99_ms, 3),
            "cold_wait_p99_ms": round(self.cold_wait_p99_ms, 3),
            "replicas": self.replicas,
            "max_load_ratio": round(self.max_load_ratio, 3),
        }


@dataclass(frozen=True)
class Simulation:
    """The fleet simulated and each policy's outcome (``planner`` first)."""

    models: int
    requests: int
    model_memory_mb: float
    server_memory_mb: float
    servers: int
    servers_needed: int
    lower_bound: int
    failed: tuple[int, ...]
    outcomes: tuple[Outcome, ...]

    def outcome(self, policy: str) -> Outcome:
        return next(o for o in self.outcomes if o.policy == policy)

    def to_dict(self) -> dict[str, Any]:
        return {
            "models": self.models,
            "requests": self.requests,
            "model_memory_mb": round(self.model_memory_mb, 1),
            "server_memory_mb": self.server_memory_mb,
            "servers": self.servers,
            "servers_needed": self.servers_needed,
            "lower_bound": self.lower_bound,
            "failed_servers": len(self.failed),
            "policies": {o.policy: o.to_dict() for o in self.outcomes},
        }


# -- traces --------------------------------------------------------------------------------------


def generate_trace(workload: Workload, *, max_size_mb: float | None = None) -> Trace:
    """The trace ``workload`` describes; sizes are capped at ``max_size_mb`` (a server)."""
    if workload.models < 1 or workload.requests < 0 or workload.tenants < 1:
        raise PlacementInputError("a workload needs models >= 1, requests >= 0, tenants >= 1")
    if workload.rate <= 0 or workload.size_median_mb <= 0 or workload.size_sigma < 0:
        raise PlacementInputError("rate and size median must be positive, sigma not negative")
    rng = random.Random(workload.seed)
    mu = math.log(workload.size_median_mb)
    cap = max_size_mb if max_size_mb is not None else math.inf
    sizes = tuple(
        min(cap, rng.lognormvariate(mu, workload.size_sigma)) for _ in range(workload.models)
    )
    cumulative = _cumulative(_popularity(workload.models, workload.tenants, workload.zipf))
    total = cumulative[-1]
    models = [
        bisect.bisect_right(cumulative, rng.random() * total) for _ in range(workload.requests)
    ]
    models = [min(m, workload.models - 1) for m in models]
    now = 0.0
    times = []
    for _ in range(workload.requests):
        now += rng.expovariate(workload.rate)
        times.append(now)
    names = tuple(f"m{i:06d}@1" for i in range(workload.models))
    return Trace(names=names, sizes_mb=sizes, times=times, models=models)


def _popularity(models: int, tenants: int, s: float) -> list[float]:
    """Each model's share: Zipf over tenants times Zipf over the tenant's own models."""
    per_tenant = [0] * tenants
    weights = []
    for i in range(models):
        tenant = i % tenants
        rank = per_tenant[tenant] = per_tenant[tenant] + 1
        weights.append((tenant + 1) ** -s * rank**-s)
    return weights


def _cumulative(weights: Iterable[float]) -> list[float]:
    out: list[float] = []
    total = 0.0
    for weight in weights:
        total += weight
        out.append(total)
    return out


def trace_from_rows(rows: Iterable[Sequence[str]], *, default_size_mb: float) -> Trace:
    """A recorded trace from CSV rows ``t,model[,memory_mb]`` (header row first); the first size
    given for a model counts, models without one get ``default_size_mb``."""
    it = iter(rows)
    header = [h.strip() for h in next(it, [])]
    if header[:2] != ["t", "model"]:
        raise PlacementInputError("a trace's header must be t,model[,memory_mb]")
    index: dict[str, int] = {}
    sizes: list[float] = []
    pairs: list[tuple[float, int]] = []
    for number, row in enumerate(it, start=2):
        try:
            when = float(row[0])
            name = row[1].strip()
            size = float(row[2]) if len(row) > 2 and row[2].strip() else None
        except (IndexError, ValueError) as exc:
            raise PlacementInputError(f"trace line {number}: {exc}") from exc
        if name not in index:
            index[name] = len(sizes)
            sizes.append(size if size is not None else default_size_mb)
        pairs.append((when, index[name]))
    pairs.sort(key=lambda pair: pair[0])
    return Trace(
        names=tuple(index),
        sizes_mb=tuple(sizes),
        times=[t for t, _ in pairs],
        models=[m for _, m in pairs],
    )


# -- placement -------------------------------------------------------------------------------------


def _items(trace: Trace) -> list[Item]:
    counts = [0] * len(trace.names)
    for m in trace.models:
        counts[m] += 1
    return [
        Item(
            model=name.rsplit("@", 1)[0],
            version=name.rsplit("@", 1)[-1] if "@" in name else 1,
            memory_mb=size,
            load=float(count),
        )
        for name, size, count in zip(trace.names, trace.sizes_mb, counts, strict=True)
    ]


def _planner_routes(
    trace: Trace, items: list[Item], servers: int, memory_mb: float
) -> list[list[int]]:
    """Each model's servers (indices) as the planner places them: each model counted by the memory
    it is expected to hold in an LRU cache (:func:`cached_share`), so that every server gets an
    even share of the working set and of requests, hot models spread over replicas."""
    shares = cached_share(items, servers * memory_mb)
    working = [
        Item(model=i.model, version=i.version, memory_mb=max(i.memory_mb * f, 0.001), load=i.load)
        for i, f in zip(items, shares, strict=True)
    ]
    fleet = [
        Server(name=f"s{i:05d}", memory_mb=memory_mb * OVERCOMMIT_SLACK) for i in range(servers)
    ]
    placed = spread_hot(fleet, working, spare=None, max_ratio=1.5)
    if isinstance(placed, NoFit):
        spare = Server(name="spare", memory_mb=memory_mb * OVERCOMMIT_SLACK)
        placed = plan(fleet, working, spare=spare)
    if isinstance(placed, NoFit):
        raise PlacementInputError(placed.describe())
    return _routes(trace, placed, {s.name: i for i, s in enumerate(fleet)}, servers)


def cached_share(items: Sequence[Item], capacity_mb: float) -> list[float]:
    """Each item's chance of being in an LRU cache of ``capacity_mb`` when requests for it come
    as a Poisson process with rate proportional to its ``load`` (Che's approximation: a model
    stays for the cache's characteristic time ``T`` after its last request, and ``T`` is the
    time at which the expected occupancy fills the cache)."""
    total = sum(i.load for i in items) or 1.0
    rates = [i.load / total for i in items]
    if sum(i.memory_mb for i in items) <= capacity_mb:
        return [1.0] * len(items)

    def occupancy(t: float) -> float:
        return sum(i.memory_mb * -math.expm1(-r * t) for i, r in zip(items, rates, strict=True))

    low, high = 0.0, 1.0
    while occupancy(high) < capacity_mb and high < 1e15:
        high *= 4
    for _ in range(40):
        mid = (low + high) / 2
        low, high = (mid, high) if occupancy(mid) < capacity_mb else (low, mid)
    return [-math.expm1(-r * high) for r in rates]


def _routes(trace: Trace, placed: Plan, number: dict[str, int], servers: int) -> list[list[int]]:
    routes = []
    for name in trace.names:
        found = [number[s] for s in placed.assignments.get(name, ()) if s in number]
        # a spare the planner had to open is folded back onto the fleet simulated
        extra = [
            zlib.crc32(s.encode()) % servers
            for s in placed.assignments.get(name, ())
            if s not in number
        ]
        routes.append((found + extra)[:MAX_REPLICAS] or [0])
    return routes


def _replaced(
    trace: Trace,
    items: list[Item],
    routes: list[list[int]],
    dead: set[int],
    servers: int,
    memory_mb: float,
) -> list[list[int]]:
    """The planner's routes once ``dead`` servers are gone: their replicas placed again."""
    total = sum(trace.sizes_mb)
    live = [i for i in range(servers) if i not in dead]
    scale = max(1.0, total * OVERCOMMIT_SLACK / (len(live) * memory_mb))
    fleet = [Server(name=f"s{i:05d}", memory_mb=memory_mb * scale) for i in live]
    current = Plan(
        assignments={
            name: tuple(f"s{s:05d}" for s in dict.fromkeys(route) if s not in dead)
            for name, route in zip(trace.names, routes, strict=True)
        },
        servers=tuple(s.name for s in fleet),
        lower_bound=0,
    )
    single = [Item(model=i.model, version=i.version, memory_mb=i.memory_mb) for i in items]
    again = rebalance(current, fleet, single, max_moves=0)
    if isinstance(again, NoFit):
        raise PlacementInputError(again.describe())
    number = {f"s{i:05d}": i for i in live}
    out = []
    for name, route in zip(trace.names, routes, strict=True):
        kept = [s for s in route if s not in dead]
        out.append(kept or [number[s] for s in again.assignments[name]])
    return out


def _naive(policy: str, models: int, live: list[int], seed: int) -> list[list[int]]:
    if policy == "round-robin":
        return [[live[i % len(live)]] for i in range(models)]
    rng = random.Random(seed)
    return [[live[rng.randrange(len(live))]] for _ in range(models)]


# -- the replay ------------------------------------------------------------------------------------


def simulate(trace: Trace, fleet: FleetModel, *, policies: Sequence[str] = POLICIES) -> Simulation:
    """Replay ``trace`` on ``fleet`` under each placement policy (see the module docstring)."""
    unknown = [p for p in policies if p not in POLICIES]
    if unknown:
        raise PlacementInputError(f"unknown policy {unknown[0]!r}; valid: {', '.join(POLICIES)}")
    if fleet.server_memory_mb <= 0:
        raise PlacementInputError("server memory must be positive")
    too_large = [
        n for n, s in zip(trace.names, trace.sizes_mb, strict=True) if s > fleet.server_memory_mb
    ]
    if too_large:
        raise PlacementInputError(
            f"{len(too_large)} model(s) larger than a server ({fleet.server_memory_mb:,.0f} MB), "
            f"such as {too_large[0]}"
        )
    items = _items(trace)
    whole = Server(name="spare", memory_mb=fleet.server_memory_mb)
    bound = lower_bound(
        [],
        [Item(model=i.model, version=i.version, memory_mb=i.memory_mb) for i in items],
        spare=whole,
    )
    resident = plan(
        [],
        [Item(model=i.model, version=i.version, memory_mb=i.memory_mb) for i in items],
        spare=whole,
    )
    needed = resident.servers_used if isinstance(resident, Plan) else bound
    servers = fleet.servers if fleet.servers is not None else needed
    if servers < 1 or fleet.fail_servers >= servers:
        raise PlacementInputError(f"{servers} server(s) cannot lose {fleet.fail_servers}")
    rng = random.Random(fleet.seed)
    failed = tuple(rng.sample(range(servers), fleet.fail_servers))
    end = trace.times[-1] if trace.times else 0.0
    fail_at = [end * (k + 1) / (len(failed) + 1) for k in range(len(failed))]
    outcomes = []
    for policy in policies:
        if policy == "planner":
            routes = _planner_routes(trace, items, servers, fleet.server_memory_mb)
        else:
            routes = _naive(policy, len(trace.names), list(range(servers)), fleet.seed)
        outcomes.append(_replay(trace, fleet, policy, items, routes, servers, failed, fail_at))
    return Simulation(
        models=len(trace.names),
        requests=len(trace.times),
        model_memory_mb=sum(trace.sizes_mb),
        server_memory_mb=fleet.server_memory_mb,
        servers=servers,
        servers_needed=needed,
        lower_bound=bound,
        failed=failed,
        outcomes=tuple(outcomes),
    )


def _replay(
    trace: Trace,
    fleet: FleetModel,
    policy: str,
    items: list[Item],
    routes: list[list[int]],
    servers: int,
    failed: tuple[int, ...],
    fail_at: list[float],
) -> Outcome:
    capacity = fleet.server_memory_mb
    sizes = trace.sizes_mb
    load_s = [fleet.load_time_s + fleet.load_s_per_gb * s / 1024 for s in sizes]
    caches: list[OrderedDict[int, float]] = [OrderedDict() for _ in range(servers)]
    used = [0.0] * servers
    turn = [0] * len(sizes)
    seen: set[tuple[int, int]] = set()
    waits: list[float] = []
    hits = loads = evictions = 0
    dead: set[int] = set()
    pending = list(zip(fail_at, failed, strict=True))
    replicas = sum(len(r) for r in routes)
    served = [0] * servers
    for now, m in zip(trace.times, trace.models, strict=True):
        while pending and pending[0][0] <= now:
            _, gone = pending.pop(0)
            dead.add(gone)
            caches[gone].clear()
            used[gone] = 0.0
            routes = _after_failure(policy, trace, items, routes, dead, servers, fleet)
        route = routes[m]
        server = route[turn[m] % len(route)] if len(route) > 1 else route[0]
        turn[m] += 1
        served[server] += 1
        cache = caches[server]
        ready = cache.get(m)
        if ready is not None:
            cache.move_to_end(m)
            if ready <= now:
                hits += 1
            else:
                waits.append(ready - now)
            continue
        size = sizes[m]
        while used[server] + size > capacity and cache:
            gone_model, _ = cache.popitem(last=False)
            used[server] -= sizes[gone_model]
            evictions += 1
        used[server] += size
        cache[m] = now + load_s[m]
        loads += 1
        seen.add((server, m))
        waits.append(load_s[m])
    return Outcome(
        policy=policy,
        requests=len(trace.times),
        hits=hits,
        cold=len(waits),
        first_loads=len(seen),
        loads=loads,
        evictions=evictions,
        cold_added_p99_ms=_p99_with_zeros(waits, len(trace.times)) * 1000,
        cold_wait_p99_ms=_p99_with_zeros(waits, len(waits)) * 1000,
        replicas=replicas,
        max_load_ratio=max(served) * (servers - len(dead)) / max(1, len(trace.times)),
    )


def _after_failure(
    policy: str,
    trace: Trace,
    items: list[Item],
    routes: list[list[int]],
    dead: set[int],
    servers: int,
    fleet: FleetModel,
) -> list[list[int]]:
    if policy == "planner":
        return _replaced(trace, items, routes, dead, servers, fleet.server_memory_mb)
    live = [i for i in range(servers) if i not in dead]
    fresh = _naive(policy, len(routes), live, fleet.seed)
    return [r if r[0] not in dead else fresh[m] for m, r in enumerate(routes)]


def _p99_with_zeros(waits: list[float], total: int) -> float:
    """The 99th percentile of ``total`` values: ``waits`` and zeros for the rest."""
    if total == 0 or not waits:
        return 0.0
    rank = math.ceil(0.99 * total)  # 1-based rank of the p99 value in ascending order
    zeros = total - len(waits)
    if rank <= zeros:
        return 0.0
    return sorted(waits)[rank - zeros - 1]


def lru_hit_rate(models: Iterable[int], sizes_mb: Sequence[float], capacity_mb: float) -> float:
    """The hit rate of one ideal LRU cache of ``capacity_mb`` (instant loads) on ``models``."""
    cache: OrderedDict[int, None] = OrderedDict()
    used = 0.0
    hits = total = 0
    for m in models:
        total += 1
        if m in cache:
            cache.move_to_end(m)
            hits += 1
            continue
        while used + sizes_mb[m] > capacity_mb and cache:
            gone, _ = cache.popitem(last=False)
            used -= sizes_mb[gone]
        cache[m] = None
        used += sizes_mb[m]
    return hits / total if total else 1.0
