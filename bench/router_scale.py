"""Part 3 of the router benchmark: the routing table at scale, and how fast a change reaches two
routers.

The population (seeded, the same every run): ``models`` models of three versions each
(``@production`` -> 1, ``@staging`` -> 2, each version served by one Triton server), every tenth
model private to the tenants routed to it; ``routes`` routes spread evenly over the models, each
to a tenant drawn from ``tenants``: 60% to a version, 25% to an alias, 15% to a version with a 10%
canary to another.

In process: the table built from those records with :func:`mlops_cli.router.table.build_entry`;
its memory (tracemalloc: everything the table keeps, names included, after the records are
dropped), and :meth:`RoutingTable.resolve` over a random mix (60% a routed (tenant, model) with a
request key, 39% a tenant and a public model it has no route to, 1% an outsider asking for a
private model: a 404) timed against the same loop doing only the two dictionary lookups.

Propagation: the same population written to a SQLite registry through the registry API, two
routers started on it (``--refresh 0.25``), then route changes, each after a random pause (so
that changes fall anywhere in the refresh period): the time from the write until both routers
answer ``GET /v2/models/<m>`` for that tenant with the new version.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import random
import shutil
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from router_load import Verdict, print_verdicts

from mlops_cli.errors import NotFoundError
from mlops_cli.registry.records import AliasRecord, ModelRecord, RouteRecord
from mlops_cli.router.table import RoutingTable, TritonUpstream, build_entry
from tests.servers.router import RouterClient

VERSIONS = (1, 2, 3)
REFRESH_S = 0.25
PRIVATE_EVERY = 10
SEED = 7
MIX = 600_000  # resolves per timed pass
PASSES = 3


@dataclass(frozen=True)
class Population:
    models: tuple[ModelRecord, ...]
    aliases: dict[str, tuple[AliasRecord, ...]]
    routes: dict[str, tuple[RouteRecord, ...]]
    tenants: tuple[str, ...]


def make_population(models: int, tenants: int, routes: int) -> Population:
    rng = random.Random(SEED)
    names = tuple(f"t{n:05d}" for n in range(tenants))
    records: list[ModelRecord] = []
    aliases: dict[str, tuple[AliasRecord, ...]] = {}
    by_model: dict[str, tuple[RouteRecord, ...]] = {}
    per_model = routes // models
    for number in range(models):
        model = f"m{number:04d}"
        chosen = rng.sample(names, min(per_model, tenants))
        by_model[model] = tuple(_route(rng, tenant, model, i) for i, tenant in enumerate(chosen))
        private = tuple(sorted(chosen)) if number % PRIVATE_EVERY == 0 else ()
        records.append(ModelRecord(model, private_to=private, latest_version=3, routing_revision=1))
        aliases[model] = (
            AliasRecord(model, "production", 1, 1),
            AliasRecord(model, "staging", 2, 1),
        )
    return Population(tuple(records), aliases, by_model, names)


def _route(rng: random.Random, tenant: str, model: str, index: int) -> RouteRecord:
    kind = index % 20
    if kind < 12:
        return RouteRecord(tenant, model, version=rng.choice(VERSIONS), revision=1)
    if kind < 17:
        return RouteRecord(tenant, model, alias=rng.choice(("production", "staging")), revision=1)
    version = rng.choice(VERSIONS)
    canary = VERSIONS[version % 3]
    return RouteRecord(
        tenant, model, version=version, canary_version=canary, canary_percent=10.0, revision=1
    )


def serving(model: str, url: str) -> dict[int, tuple[TritonUpstream, ...]]:
    return {v: (TritonUpstream(url, f"{model}-v{v}"),) for v in VERSIONS}


def build_table(population: Population, url: str) -> RoutingTable:
    return RoutingTable(
        1,
        {
            model.name: build_entry(
                model,
                population.aliases[model.name],
                population.routes[model.name],
                serving(model.name, url),
            )
            for model in population.models
        },
    )


def table_memory(models: int, tenants: int, routes: int) -> tuple[RoutingTable, float, float]:
    """The table, the MB it keeps (records dropped), and the seconds its build took."""
    gc.collect()
    tracemalloc.start()
    population = make_population(models, tenants, routes)
    started = time.perf_counter()
    table = build_table(population, "http://127.0.0.1:1")
    built = time.perf_counter() - started
    del population
    gc.collect()
    kept = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return table, kept / 1e6, built


def mix(population: Population, count: int) -> list[tuple[str, str, str]]:
    rng = random.Random(SEED + 1)
    routed = [route for found in population.routes.values() for route in found]
    public = [m.name for m in population.models if not m.private_to]
    private = {m.name: set(m.private_to) for m in population.models if m.private_to}
    queries = []
    for number in range(count):
        draw = rng.random()
        key = f"k{number}"
        if draw < 0.60:
            route = rng.choice(routed)
            queries.append((route.tenant, route.model, key))
        elif draw < 0.99:
            queries.append((rng.choice(population.tenants), rng.choice(public), key))
        else:
            model = rng.choice(list(private))
            outsider = rng.choice([t for t in population.tenants[:200] if t not in private[model]])
            queries.append((outsider, model, key))
    return queries


def time_resolves(table: RoutingTable, queries: list[tuple[str, str, str]]) -> tuple[float, int]:
    """Resolves per second, and how many were refused (NotFoundError: a 404 or no route)."""
    resolve = table.resolve
    refused = 0
    started = time.perf_counter()
    for tenant, model, key in queries:
        try:
            resolve(tenant, model, key)
        except NotFoundError:
            refused += 1
    return len(queries) / (time.perf_counter() - started), refused


def time_lookups(table: RoutingTable, queries: list[tuple[str, str, str]]) -> float:
    models = table.models
    started = time.perf_counter()
    for tenant, model, _key in queries:
        entry = models.get(model)
        if entry is not None:
            entry.routes.get(tenant)
    return len(queries) / (time.perf_counter() - started)


def in_process(models: int, tenants: int, routes: int) -> list[Verdict]:
    table, megabytes, built = table_memory(models, tenants, routes)
    population = make_population(models, tenants, routes)
    queries = mix(population, MIX)
    resolves, lookups = [], []
    for _ in range(PASSES):
        lookups.append(time_lookups(table, queries))
        rate, refused = time_resolves(table, queries)
        resolves.append(rate)
    rate, base = statistics.median(resolves), statistics.median(lookups)
    print(f"\nPart 3a: table of {models:,} models, {tenants:,} tenants, {routes:,} routes")
    print(f"  built from records in {built:.2f} s (tracemalloc on); {megabytes:.1f} MB kept")
    print(f"  resolve      {', '.join(f'{r:,.0f}' for r in resolves)} /s (median {rate:,.0f})")
    print(f"  dict lookups {', '.join(f'{r:,.0f}' for r in lookups)} /s (median {base:,.0f})")
    print(f"  of each pass, {refused:,} refused (404: private model); {MIX:,} resolves a pass")
    print(f"  resolve costs {base / rate:.2f}x the bare lookups ({1e9 / rate:.0f} ns each)")
    return [
        Verdict("table memory", f"{megabytes:.1f} MB", "< 200 MB", megabytes < 200),
        Verdict("resolves per second", f"{rate:,.0f}", ">= 500,000", rate >= 500_000),
    ]


def fill_registry(uri: str, population: Population, upstream: str) -> float:
    """The population written through the registry API; the seconds it took."""
    from mlops_cli.registry import open_registry
    from mlops_cli.registry.records import NewVersion

    registry = open_registry(uri)
    registry.init()
    started = time.perf_counter()
    for model in population.models:
        name = model.name
        for version in VERSIONS:
            new = NewVersion(f"sha256:{name}-{version}", f"file:///bench/{name}/{version}")
            registry.register_version(name, new, alias="production" if version == 1 else None)
            detail = {
                "where": "bench",
                "triton_name": f"{name}-v{version}",
                "servers": [{"name": "s", "url": upstream}],
            }
            registry.record_deployment(name, version, "triton:bench", detail=detail)
        registry.set_alias(name, "staging", 2)
        if model.private_to:
            registry.update_model(name, private_to=model.private_to)
        for route in population.routes[name]:
            registry.set_route(
                route.tenant,
                name,
                version=route.version,
                alias=route.alias,
                canary_version=route.canary_version,
                canary_percent=route.canary_percent,
            )
    return time.perf_counter() - started


def propagation(models: int, tenants: int, routes: int, changes: int) -> list[Verdict]:
    import tests.servers.router as harness
    from tests.servers.delay_http import DelayServer

    harness.READY_TIMEOUT_S = 600.0  # start-up is one of the figures: let it take what it takes
    population = make_population(models, tenants, routes)
    work = Path(tempfile.mkdtemp(prefix="mlops-bench-router-scale-"))
    uri = f"sqlite:///{work / 'registry.db'}"
    with DelayServer() as upstream, _removed(work):
        filled = fill_registry(uri, population, upstream.url)
        size = (work / "registry.db").stat().st_size / 1e6
        print(f"\nPart 3b: registry filled through the API in {filled:.1f} s ({size:.0f} MB)")
        started = time.perf_counter()
        first = harness.RouterProcess(uri, "--trust-tenant-header", "--refresh", str(REFRESH_S))
        second = harness.RouterProcess(uri, "--trust-tenant-header", "--refresh", str(REFRESH_S))
        with first, second:
            startup = time.perf_counter() - started
            print(f"  two routers ready in {startup:.1f} s (started one after the other)")
            times = change_routes(uri, population, [first.url, second.url], changes)
    lost = sum(1 for t in times if t is None)
    seen = sorted(t for t in times if t is not None)
    p50 = statistics.median(seen) if seen else float("inf")
    p99 = seen[min(len(seen) - 1, int(len(seen) * 0.99))] if seen else float("inf")
    print(
        f"  {changes} changes: both routers answer the new version after p50 {p50 * 1000:.0f} ms,"
        f" p99 {p99 * 1000:.0f} ms, max {seen[-1] * 1000 if seen else float('inf'):.0f} ms"
        f" ({lost} not seen within 10 s)"
    )
    return [
        Verdict("router start-up (2)", f"{startup:.1f} s", "-", None),
        Verdict("propagation p50", f"{p50 * 1000:.0f} ms", "-", None),
        Verdict("propagation p99", f"{p99 * 1000:.0f} ms", "< 1000 ms", p99 < 1.0 and not lost),
    ]


@contextlib.contextmanager
def _removed(folder: Path) -> Iterator[None]:
    try:
        yield
    finally:
        gc.collect()  # the registries' SQLite connections closed first, or they leave a WAL
        shutil.rmtree(folder, ignore_errors=True)


def change_routes(
    uri: str, population: Population, urls: list[str], changes: int
) -> list[float | None]:
    """Seconds until every router at ``urls`` answers with the new version, per change."""
    from mlops_cli.registry import open_registry

    registry = open_registry(uri)
    rng = random.Random(SEED + 2)
    candidates = [
        r
        for found in population.routes.values()
        for r in found
        if r.version is not None and r.canary_version is None
    ]
    clients = [RouterClient(url) for url in urls]
    times: list[float | None] = []
    for route in rng.sample(candidates, changes):
        new = VERSIONS[route.version % 3]  # type: ignore[operator]
        time.sleep(rng.uniform(0, REFRESH_S))
        written = time.monotonic()
        registry.set_route(route.tenant, route.model, version=new)
        times.append(until_seen(clients, route, str(new), written))
    return times


def until_seen(
    clients: list[RouterClient], route: RouteRecord, version: str, written: float
) -> float | None:
    pending = list(clients)
    headers = {"X-Tenant-Id": route.tenant}
    while pending:
        if time.monotonic() - written > 10.0:
            return None
        for client in list(pending):
            status, _, data = client.get(f"/v2/models/{route.model}", headers)
            if status == 200 and json.loads(data).get("versions") == [version]:
                pending.remove(client)
        time.sleep(0.002)
    return time.monotonic() - written


def scale_part(models: int, tenants: int, routes: int, changes: int) -> None:
    verdicts = in_process(models, tenants, routes)
    verdicts += propagation(models, tenants, routes, changes)
    print_verdicts(
        f"Part 3 verdicts ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores)", verdicts
    )
