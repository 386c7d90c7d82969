"""The router's routing table (:mod:`mlops_cli.router.table`) gives the answers the registry's
resolution gives (:func:`mlops_cli.registry.routing.resolve_state`): on thousands of random
states, at the canary's edge, and on a real SQLite registry. :func:`mlops_cli.router.refresh.
refresh` rebuilds only what changed, with the servers of each version from its deployment
records; the refresher warns once about a registry that refuses its heartbeats."""

from __future__ import annotations

import concurrent.futures
import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mlops_cli.errors import MlopsError
from mlops_cli.registry import open_registry
from mlops_cli.registry.base import NewVersion, Registry
from mlops_cli.registry.records import AliasRecord, ModelRecord, RouteRecord, RoutingState
from mlops_cli.registry.routing import CANARY_BUCKETS, canary_bucket, resolve, resolve_state
from mlops_cli.router.refresh import Applied, Refresher, refresh
from mlops_cli.router.table import EMPTY, RoutingTable, TritonUpstream, build_entry

pytestmark = pytest.mark.unit

TENANTS = ("acme", "globex", "initech", "umbrella", "hooli")
OUTSIDER = "wayne"  # a tenant no route names
ALIASES = ("production", "stable", "beta")
GHOST_ALIAS = "ghost"  # an alias a route may name that never exists

Outcome = tuple[object, ...]


def outcome(call: Callable[[], tuple[int, str]]) -> Outcome:
    """What a resolution gave: the version and its source, or the error's public type (the
    first class of :mod:`mlops_cli.errors` it derives from) and its message."""
    try:
        version, source = call()
    except MlopsError as exc:
        public = next(c for c in type(exc).__mro__ if c.__module__ == "mlops_cli.errors")
        return ("error", public.__name__, exc.message)
    return ("ok", version, source)


def of_table(table: RoutingTable, tenant: str, model: str, key: str | None) -> Outcome:
    def call() -> tuple[int, str]:
        _, choice = table.resolve(tenant, model, key)
        return choice.version, choice.source

    return outcome(call)


def of_registry(registry: Registry, tenant: str, model: str, key: str | None) -> Outcome:
    def call() -> tuple[int, str]:
        found = resolve(registry, tenant, model, key)
        return found.version, found.source

    return outcome(call)


# -- random states, compared with resolve_state ------------------------------------------------


EDGE_PERCENTS = (0.0, 100.0, 0.005, 0.01, 50.0, 99.99, 99.995)  # around the bucket edges


def random_percent(rng: random.Random) -> float:
    return rng.choice((*EDGE_PERCENTS, float(rng.randint(0, 100)), rng.uniform(0, 100)))


def random_route(rng: random.Random, tenant: str, model: str, versions: int) -> RouteRecord:
    """A route to a version or an alias (existing or not), with or without a canary."""
    version: int | None = None
    alias: str | None = None
    if rng.random() < 0.5:
        version = rng.randint(1, versions + 1)  # versions + 1 does not exist
    else:
        alias = rng.choice((*ALIASES, GHOST_ALIAS))
    canary_version, percent = None, 0.0
    if rng.random() < 0.5:
        canary_version, percent = rng.randint(1, versions), random_percent(rng)
    return RouteRecord(
        tenant,
        model,
        version=version,
        alias=alias,
        canary_version=canary_version,
        canary_percent=percent,
        revision=rng.randint(1, 9),
    )


def random_model(
    rng: random.Random, name: str
) -> tuple[ModelRecord, list[AliasRecord], dict[str, RouteRecord]]:
    versions = rng.randint(1, 5)
    private_to: tuple[str, ...] = ()
    if rng.random() < 0.3:
        private_to = tuple(sorted(rng.sample(TENANTS, rng.randint(1, 3))))
    model = ModelRecord(
        name,
        default_alias=rng.choice(("production", "stable")),
        private_to=private_to,
        latest_version=versions,
        routing_revision=rng.randint(1, 1000),
    )
    aliases = [
        AliasRecord(name, alias, rng.randint(1, versions), revision=1)
        for alias in ALIASES
        if rng.random() < 0.5
    ]
    routes = {
        tenant: random_route(rng, tenant, name, versions)
        for tenant in TENANTS
        if rng.random() < 0.7
    }
    return model, aliases, routes


def state_of(
    model: ModelRecord, aliases: list[AliasRecord], route: RouteRecord | None
) -> RoutingState:
    """The RoutingState a registry returns: the alias the route names, else (no route) the
    model's default alias."""
    by_name = {alias.alias: alias for alias in aliases}
    if route is None:
        wanted: str | None = model.default_alias
    else:
        wanted = route.alias
    return RoutingState(model, route, by_name.get(wanted) if wanted else None)


def reference(state: RoutingState, tenant: str, key: str | None) -> Outcome:
    def call() -> tuple[int, str]:
        found = resolve_state(state, tenant, key)
        return found.version, found.source

    return outcome(call)


def test_the_table_agrees_with_resolve_state_on_random_states() -> None:
    rng = random.Random(20240611)
    compared: dict[str, int] = {}
    for number in range(400):
        model, aliases, routes = random_model(rng, f"m{number}")
        table = RoutingTable(1, {model.name: build_entry(model, aliases, routes.values(), {})})
        for tenant in (*TENANTS, OUTSIDER):
            route = routes.get(tenant)
            state = state_of(model, aliases, route)
            keys = [None, *(f"req-{rng.getrandbits(32):x}" for _ in range(2))]
            for key in keys:
                expected = reference(state, tenant, key)
                got = of_table(table, tenant, model.name, key)
                assert got == expected, (model, aliases, route, tenant, key)
                kind = f"{expected[0]}:{str(expected[2]).split()[0]}"
                compared[kind] = compared.get(kind, 0) + 1
    # Every kind of answer occurred, often: the generator covers what it claims to.
    assert sum(compared.values()) >= 7000
    for kind in ("ok:route", "ok:alias", "ok:canary", "error:model", "error:tenant", "error:route"):
        assert compared.get(kind, 0) >= 100, compared


def test_the_canary_edge_agrees_with_resolve_state() -> None:
    """A key whose bucket is the threshold stays on the route; one bucket more goes to the
    canary (percents that put the threshold exactly on random keys' buckets)."""
    rng = random.Random(11)
    for number in range(500):
        tenant, key = rng.choice(TENANTS), f"edge-{number}"
        bucket = canary_bucket(tenant, key)
        model = ModelRecord("m", latest_version=2, routing_revision=1)
        for threshold, side in ((bucket, "route"), (bucket + 1, "canary")):
            route = RouteRecord(
                tenant,
                "m",
                version=1,
                canary_version=2,
                canary_percent=threshold * 100 / CANARY_BUCKETS,
            )
            table = RoutingTable(1, {"m": build_entry(model, [], [route], {})})
            expected = reference(RoutingState(model, route, None), tenant, key)
            assert of_table(table, tenant, "m", key) == expected
            assert expected[2] == side, (tenant, key, threshold)


def test_a_model_the_table_does_not_hold_is_unknown_in_the_registry_words(
    tmp_path: Path,
) -> None:
    registry = open_registry(f"sqlite:///{tmp_path / 'r.db'}")
    registry.init()
    expected = of_registry(registry, "acme", "nope", None)

    assert expected[0] == "error"
    assert of_table(EMPTY, "acme", "nope", None) == expected
    assert of_table(refresh(registry, EMPTY), "acme", "nope", "k") == expected


# -- a real registry: refresh() and resolve() ----------------------------------------------------


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    backend = open_registry(f"sqlite:///{tmp_path / 'r.db'}")
    backend.init()
    return backend


def register(registry: Registry, model: str, count: int) -> None:
    for number in range(count):
        registry.register_version(
            model, NewVersion(f"{model}-{number}".encode().hex().ljust(64, "0"), f"file:///{model}")
        )


def populate(registry: Registry, rng: random.Random, models: int) -> list[str]:
    """Random models, versions, aliases, routes (with canaries) and privacy, written through the
    registry's API (so only states the registry allows)."""
    names = [f"model{number}" for number in range(models)]
    for name in names:
        versions = rng.randint(1, 4)
        register(registry, name, versions)
        for named in ALIASES:
            if rng.random() < 0.6:
                registry.set_alias(name, named, rng.randint(1, versions))
        present = [record.alias for record in registry.list_aliases(name)]
        for tenant in TENANTS:
            if rng.random() < 0.3:
                continue
            canary_version: int | None = None
            percent = 0.0
            if rng.random() < 0.5:
                canary_version = rng.randint(1, versions)
                percent = rng.choice((100.0, 0.01, rng.uniform(0.01, 100)))
            version: int | None = rng.randint(1, versions)
            alias: str | None = None
            if present and rng.random() < 0.5:
                version, alias = None, rng.choice(present)
            registry.set_route(
                tenant,
                name,
                version=version,
                alias=alias,
                canary_version=canary_version,
                canary_percent=percent,
            )
        if rng.random() < 0.3:
            registry.update_model(name, private_to=tuple(rng.sample(TENANTS, 2)))
        if rng.random() < 0.3:
            registry.update_model(name, default_alias=rng.choice((*ALIASES, "absent")))
    return names


def test_a_table_refreshed_from_a_registry_agrees_with_resolve(registry: Registry) -> None:
    rng = random.Random(7)
    names = populate(registry, rng, 6)
    table = refresh(registry, EMPTY)
    keys = [None, *(f"key-{number}" for number in range(12))]
    kinds: set[str] = set()
    for name in (*names, "ghost"):
        for tenant in (*TENANTS, OUTSIDER):
            for key in keys:
                got = of_table(table, tenant, name, key)
                assert got == of_registry(registry, tenant, name, key), (tenant, name, key)
                kinds.add(f"{got[0]}:{str(got[2]).split()[0]}")
    assert kinds == {"ok:route", "ok:alias", "ok:canary", "error:model", "error:tenant"}


def triton_detail(name: str, *urls: str) -> dict[str, object]:
    return {
        "where": "gpu-fleet",
        "triton_name": name,
        "servers": [{"name": f"s{i}", "url": url, "grpc_url": ""} for i, url in enumerate(urls)],
        "repository": "s3://bucket/repo",
    }


def test_refresh_loads_everything_then_only_what_changed(registry: Registry) -> None:
    register(registry, "answer", 2)
    register(registry, "other", 1)
    registry.set_alias("answer", "production", 1)
    registry.set_alias("other", "production", 1)

    first = refresh(registry, EMPTY)
    assert first.revision == registry.registry_revision() > 0
    assert sorted(first.models) == ["answer", "other"]
    assert first.resolve("acme", "answer")[1].version == 1

    assert refresh(registry, first) is first  # nothing moved: the same table

    registry.set_route("acme", "answer", version=2)
    second = refresh(registry, first)
    assert second is not first and second.revision > first.revision
    assert second.models["other"] is first.models["other"]  # shared, not rebuilt
    assert second.models["answer"] is not first.models["answer"]
    assert second.resolve("acme", "answer")[1].version == 2
    assert second.resolve("globex", "answer")[1].version == 1


def test_deployment_records_give_and_take_a_versions_upstreams(registry: Registry) -> None:
    register(registry, "answer", 2)
    register(registry, "other", 1)
    registry.set_alias("answer", "production", 1)
    table = refresh(registry, EMPTY)
    assert table.models["answer"].upstreams(2) == ()

    registry.record_deployment(
        "answer",
        2,
        "triton:gpu-fleet",
        detail=triton_detail("answer-v2", "http://10.0.0.1:8000/", "http://10.0.0.2:8000"),
    )
    deployed = refresh(registry, table)
    assert deployed.models["answer"].upstreams(2) == (
        TritonUpstream("http://10.0.0.1:8000", "answer-v2"),
        TritonUpstream("http://10.0.0.2:8000", "answer-v2"),
    )
    assert deployed.models["answer"].upstreams(1) == ()
    assert deployed.models["other"] is table.models["other"]

    registry.remove_deployment("answer", 2, "triton:gpu-fleet")
    removed = refresh(registry, deployed)
    assert removed.models["answer"].upstreams(2) == ()
    assert removed.models["answer"].serving == {}


def test_a_registry_that_refuses_heartbeats_is_warned_about_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Reads of a registry whose file cannot be created succeed (it reads as empty), writes fail:
    the refresher says so once, not on every step (4 lines a second at the default refresh)."""
    (tmp_path / "file").write_text("not a folder\n", encoding="utf-8")
    registry = open_registry(f"sqlite:///{tmp_path / 'file' / 'r.db'}")

    def call_in_loop(function: Callable[[], Applied]) -> concurrent.futures.Future[Applied]:
        future: concurrent.futures.Future[Applied] = concurrent.futures.Future()
        future.set_result(function())
        return future

    refresher = Refresher(
        registry,
        router_id="host-a:1:abc",
        address="127.0.0.1:8700",
        interval=0.01,
        call_in_loop=call_in_loop,
        apply=lambda table: Applied(table.revision, {}),
        set_down=lambda urls: None,
    )
    refresher.start()
    time.sleep(0.3)  # about 30 steps
    refresher.stop()

    warnings = capsys.readouterr().err.strip().splitlines()
    assert len(warnings) == 1, warnings
    assert "cannot open registry" in warnings[0]
