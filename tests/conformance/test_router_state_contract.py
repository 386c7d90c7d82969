"""What routers rely on, checked on every backend: the registry revision (one cheap read that
moves with every change to any model, and with nothing else) and router heartbeats."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import pytest

from mlops_cli.errors import ConflictError, MlopsError, NotFoundError, UsageError
from mlops_cli.registry import Registry
from mlops_cli.registry.base import NAME_RULES, RegistryNameError, RouterHeartbeat
from tests.conformance.conftest import RegistryTarget, package, register, snapshot

pytestmark = [pytest.mark.integration]

MODEL = "fraud-detector"
NOW = 1_750_000_000.25

Call = Callable[[Registry], Any]


def nothing(registry: Registry) -> None:
    return None


def base_state(registry: Registry) -> None:
    """Three versions, @production at 1, acme routed to 1, every model public."""
    register(registry, MODEL, "p1", "p2", "p3")
    registry.set_alias(MODEL, "production", 1)
    registry.set_route("acme", MODEL, version=1)


def beat(router_id: str, *, at: float = NOW, **fields: Any) -> RouterHeartbeat:
    fields.setdefault("applied_revision", 7)
    fields.setdefault("in_flight", {f"{MODEL}@1": 3})
    return RouterHeartbeat(router_id=router_id, at=at, **fields)


# -- the registry revision ---------------------------------------------------------------------

# name -> (what to do first, the change whose count is checked)
CHANGES: dict[str, tuple[Call, Call]] = {
    "create model": (nothing, lambda r: register(r, "churn", "c1")),
    "register version": (nothing, lambda r: register(r, MODEL, "p4")),
    "register with alias": (
        nothing,
        lambda r: r.register_version(MODEL, package("p4"), alias="staging"),
    ),
    "register the same package anew": (
        nothing,
        lambda r: r.register_version(MODEL, package("p1"), new_version=True),
    ),
    "update model description": (nothing, lambda r: r.update_model(MODEL, description="new")),
    "make model private": (nothing, lambda r: r.update_model(MODEL, private_to=("acme",))),
    "change default alias": (nothing, lambda r: r.update_model(MODEL, default_alias="staging")),
    "archive version": (nothing, lambda r: r.archive_version(MODEL, 3)),
    "set alias": (nothing, lambda r: r.set_alias(MODEL, "staging", 2)),
    "move alias": (nothing, lambda r: r.set_alias(MODEL, "production", 2, expect_version=1)),
    "delete alias": (
        lambda r: r.set_alias(MODEL, "staging", 2),
        lambda r: r.delete_alias(MODEL, "staging"),
    ),
    "set route": (nothing, lambda r: r.set_route("globex", MODEL, alias="production")),
    "change route": (
        nothing,
        lambda r: r.set_route("acme", MODEL, version=1, canary_version=2, canary_percent=5),
    ),
    "delete route": (nothing, lambda r: r.delete_route("acme", MODEL)),
    "record deployment": (
        nothing,
        lambda r: r.record_deployment(MODEL, 2, "triton:local", detail={"url": "http://a"}),
    ),
    "record deployment again": (
        lambda r: r.record_deployment(MODEL, 2, "triton:local", detail={"url": "http://a"}),
        lambda r: r.record_deployment(MODEL, 2, "triton:local", detail={"url": "http://b"}),
    ),
    "remove deployment": (
        lambda r: r.record_deployment(MODEL, 2, "triton:local", detail={}),
        lambda r: r.remove_deployment(MODEL, 2, "triton:local"),
    ),
}


def test_an_empty_registry_is_at_revision_zero(registry: Registry) -> None:
    assert registry.registry_revision() == 0


@pytest.mark.parametrize("kind", sorted(CHANGES))
def test_every_kind_of_change_increases_the_registry_revision(
    registry: Registry, kind: str
) -> None:
    prepare, change = CHANGES[kind]
    base_state(registry)
    prepare(registry)
    before = registry.registry_revision()

    change(registry)

    after = registry.registry_revision()
    assert after > before, f"{kind} did not increase the registry revision"
    assert registry.registry_revision() == after  # reading does not move it


def test_the_revision_only_grows_through_a_sequence_of_changes(registry: Registry) -> None:
    seen = [registry.registry_revision()]
    register(registry, MODEL, "p1")
    seen.append(registry.registry_revision())
    registry.set_alias(MODEL, "production", 1)
    seen.append(registry.registry_revision())
    registry.set_route("acme", MODEL, alias="production")
    seen.append(registry.registry_revision())

    assert seen == sorted(set(seen)) and seen[0] == 0


REFUSED: list[tuple[str, Call, type[MlopsError]]] = [
    ("route to a private model", lambda r: r.set_route("globex", "secret", version=1), UsageError),
    (
        "conflicting alias",
        lambda r: r.set_alias(MODEL, "production", 2, expect_version=3),
        ConflictError,
    ),
    ("alias to a missing version", lambda r: r.set_alias(MODEL, "staging", 9), NotFoundError),
    ("route cas lost", lambda r: r.set_route("acme", MODEL, version=2, expect_revision=99), ConflictError),
    ("route to an absent model", lambda r: r.set_route("acme", "absent", version=1), NotFoundError),
    ("delete an absent route", lambda r: r.delete_route("nobody", MODEL), NotFoundError),
    ("delete an alias in use", lambda r: r.delete_alias(MODEL, "production"), ConflictError),
    ("archive a version in use", lambda r: r.archive_version(MODEL, 1), ConflictError),
    ("archive a deployed version", lambda r: r.archive_version(MODEL, 2), ConflictError),
    ("update an absent model", lambda r: r.update_model("absent", description="x"), NotFoundError),
    ("deploy a missing version", lambda r: r.record_deployment(MODEL, 9, "t", detail={}), NotFoundError),
    ("bad alias name", lambda r: r.set_alias(MODEL, "Bad", 1), RegistryNameError),
]  # fmt: skip

NO_OPS: list[tuple[str, Call]] = [
    ("register a registered package", lambda r: r.register_version(MODEL, package("p1"))),
    ("archive an archived version", lambda r: r.archive_version(MODEL, 3)),
    ("remove an absent deployment", lambda r: r.remove_deployment(MODEL, 1, "nowhere")),
    ("read everything", snapshot),
    ("read routing", lambda r: (r.routing_state("acme", MODEL), r.routing_revision(MODEL))),
    ("record a heartbeat", lambda r: r.record_heartbeat(beat("router-a"))),
    ("list heartbeats", lambda r: r.list_heartbeats()),
    ("remove a heartbeat", lambda r: r.remove_heartbeat("router-a")),
]


def test_refused_changes_reads_and_heartbeats_leave_the_revision_alone(
    registry: Registry,
) -> None:
    base_state(registry)
    register(registry, "secret", "s1")
    registry.update_model("secret", private_to=("initech",))
    registry.set_route("globex", MODEL, alias="production")
    registry.record_deployment(MODEL, 2, "triton:local", detail={})
    registry.archive_version(MODEL, 3)
    before = (registry.registry_revision(), registry.routing_revision(MODEL))

    for name, call, error in REFUSED:
        with pytest.raises(error):
            call(registry)
        now = (registry.registry_revision(), registry.routing_revision(MODEL))
        assert now == before, f"{name}: refused, yet the revisions moved"
    for name, call in NO_OPS:
        call(registry)
        now = (registry.registry_revision(), registry.routing_revision(MODEL))
        assert now == before, f"{name}: changed nothing, yet the revisions moved"


def test_deployment_records_move_the_models_routing_revision(registry: Registry) -> None:
    base_state(registry)
    register(registry, "churn", "c1")
    other = registry.routing_revision("churn")
    revisions = [registry.routing_revision(MODEL)]

    registry.record_deployment(MODEL, 2, "triton:local", detail={"url": "http://a"})
    revisions.append(registry.routing_revision(MODEL))
    registry.record_deployment(MODEL, 2, "triton:local", detail={"url": "http://b"})
    revisions.append(registry.routing_revision(MODEL))
    registry.remove_deployment(MODEL, 2, "triton:local")
    revisions.append(registry.routing_revision(MODEL))
    registry.remove_deployment(MODEL, 2, "triton:local")  # nothing left: nothing moves
    revisions.append(registry.routing_revision(MODEL))

    assert revisions[:4] == sorted(set(revisions[:4])), revisions
    assert revisions[4] == revisions[3]
    assert registry.get_model(MODEL).routing_revision == revisions[4]
    assert registry.routing_revision("churn") == other


def test_a_second_registry_on_the_uri_sees_the_change_with_its_revision(
    registry: Registry, registry_target: RegistryTarget
) -> None:
    base_state(registry)
    reader = registry_target.open()
    seen = reader.registry_revision()

    registry.set_alias(MODEL, "production", 3)

    assert reader.registry_revision() > seen
    assert reader.get_alias(MODEL, "production").version == 3


# -- heartbeats --------------------------------------------------------------------------------


def test_heartbeats_are_recorded_listed_by_router_and_replaced(registry: Registry) -> None:
    first = beat("router-b", applied_revision=4, address="10.0.0.2:8080", started_at=NOW - 60)
    registry.record_heartbeat(first)
    registry.record_heartbeat(beat("router-a", in_flight={}))
    registry.record_heartbeat(beat("Router.C:9", in_flight={"churn@2": 1}))

    listed = registry.list_heartbeats()
    assert [h.router_id for h in listed] == ["Router.C:9", "router-a", "router-b"]
    assert listed[2] == first
    assert listed[2].to_dict() == {
        "router_id": "router-b",
        "applied_revision": 4,
        "in_flight": {f"{MODEL}@1": 3},
        "at": NOW,
        "address": "10.0.0.2:8080",
        "started_at": NOW - 60,
    }
    assert (listed[2].in_flight_on(MODEL, 1), listed[2].in_flight_on(MODEL, 2)) == (3, 0)
    assert listed[1].in_flight == {}

    replacement = beat("router-b", applied_revision=5, in_flight={"churn@1": 2}, at=NOW + 1)
    registry.record_heartbeat(replacement)

    listed = registry.list_heartbeats()
    assert [h.router_id for h in listed] == ["Router.C:9", "router-a", "router-b"]
    assert listed[2] == replacement
    assert listed[2].in_flight_on(MODEL, 1) == 0  # replaced, not merged
    assert listed[2].address == ""


def test_zero_in_flight_entries_are_dropped(registry: Registry) -> None:
    heartbeat = beat("router-a", in_flight={f"{MODEL}@1": 0, f"{MODEL}@2": 5, "churn@1": 0})
    assert heartbeat.in_flight == {f"{MODEL}@2": 5}

    registry.record_heartbeat(heartbeat)

    assert registry.list_heartbeats()[0].in_flight == {f"{MODEL}@2": 5}


def test_max_age_keeps_only_recent_heartbeats(registry: Registry) -> None:
    for router_id, age in (("fresh", 1.0), ("edge", 10.0), ("stale", 10.5)):
        registry.record_heartbeat(beat(router_id, at=NOW - age))

    def ids(**kw: Any) -> list[str]:
        return [h.router_id for h in registry.list_heartbeats(now=NOW, **kw)]

    assert ids(max_age_s=10.0) == ["edge", "fresh"]
    assert ids(max_age_s=1.0) == ["fresh"]
    assert ids(max_age_s=0.5) == []
    assert ids() == ["edge", "fresh", "stale"]
    assert [h.router_id for h in registry.list_heartbeats(max_age_s=1e12)] == [
        "edge",
        "fresh",
        "stale",
    ]
    with pytest.raises(UsageError):
        registry.list_heartbeats(max_age_s=-1.0)


def test_remove_heartbeat_is_idempotent(registry: Registry) -> None:
    registry.record_heartbeat(beat("router-a"))
    registry.record_heartbeat(beat("router-b"))

    registry.remove_heartbeat("router-a")
    registry.remove_heartbeat("router-a")
    registry.remove_heartbeat("never-seen")

    assert [h.router_id for h in registry.list_heartbeats()] == ["router-b"]


BAD_ROUTER_IDS = ["", "router/1", "r" * 129, "router 1", "router#1"]
BAD_KEYS = ["fraud-detector", "Fraud@1", "fraud@0", "fraud@01", "fraud@x", "fraud@1@2", "@1"]
BAD_COUNTS: list[Any] = [-1, 1.5, "3", True]


def test_bad_heartbeats_are_refused_and_store_nothing(registry: Registry) -> None:
    kept = beat("router-a")
    registry.record_heartbeat(kept)
    attempts: list[tuple[str, RouterHeartbeat, type[Exception], str]] = [
        (f"id {i!r}", beat(i), RegistryNameError, NAME_RULES["router"]) for i in BAD_ROUTER_IDS
    ]
    attempts += [
        (
            f"key {k!r}",
            beat("router-a", in_flight={k: 1}),
            RegistryNameError,
            NAME_RULES["in-flight"],
        )
        for k in BAD_KEYS
    ]
    attempts += [
        (f"count {c!r}", beat("router-a", in_flight={f"{MODEL}@1": c}), UsageError, "in-flight")
        for c in BAD_COUNTS
    ]
    attempts += [
        ("revision", beat("router-a", applied_revision=-1), UsageError, "revision"),
        ("time", beat("router-a", at=float("nan")), UsageError, "unix time"),
    ]

    for name, heartbeat, error, said in attempts:
        with pytest.raises(error) as caught:
            registry.record_heartbeat(heartbeat)
        assert isinstance(caught.value, ValueError), name
        assert said in str(caught.value), f"{name}: {caught.value}"
        assert registry.list_heartbeats() == [kept], f"{name}: stored something"
    for router_id in BAD_ROUTER_IDS:
        with pytest.raises(RegistryNameError):
            registry.remove_heartbeat(router_id)


def worst_case_in_flight(entries: int) -> dict[str, int]:
    """``entries`` keys as long as the rules allow, and as hard to compress as hex gets."""
    return {
        f"{hashlib.sha256(str(i).encode()).hexdigest()}@{1_000_000_000 + i}": 2**62 + i
        for i in range(entries)
    }


def test_ten_thousand_in_flight_entries_fit_and_ten_thousand_one_do_not(
    registry: Registry,
) -> None:
    largest = beat("router-a", in_flight=worst_case_in_flight(10_000))
    registry.record_heartbeat(largest)
    assert registry.list_heartbeats() == [largest]

    with pytest.raises(UsageError, match="at most 10000"):
        registry.record_heartbeat(beat("router-a", in_flight=worst_case_in_flight(10_001)))
    with pytest.raises(UsageError, match="at most 10000"):
        registry.record_heartbeat(beat("router-b", in_flight=worst_case_in_flight(10_001)))
    assert registry.list_heartbeats() == [largest]

    # Long, short, long again, and gone: each read shows exactly the last write.
    short = beat("router-a", in_flight={"churn@1": 1}, at=NOW + 1)
    registry.record_heartbeat(short)
    assert registry.list_heartbeats() == [short]
    again = beat("router-a", in_flight=worst_case_in_flight(9_000), at=NOW + 2)
    registry.record_heartbeat(again)
    registry.record_heartbeat(beat("router-b"))
    assert registry.list_heartbeats() == [again, beat("router-b")]
    registry.remove_heartbeat("router-a")
    assert registry.list_heartbeats() == [beat("router-b")]


def test_two_registries_on_one_uri_see_each_others_heartbeats(
    registry: Registry, registry_target: RegistryTarget
) -> None:
    other = registry_target.open()

    registry.record_heartbeat(beat("router-a"))
    other.record_heartbeat(beat("router-b", in_flight={"churn@4": 2}))

    for reader in (registry, other):
        assert reader.list_heartbeats() == [
            beat("router-a"),
            beat("router-b", in_flight={"churn@4": 2}),
        ]
    other.remove_heartbeat("router-a")
    assert [h.router_id for h in registry.list_heartbeats()] == ["router-b"]
