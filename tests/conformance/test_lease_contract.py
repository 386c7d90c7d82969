"""The registry's leases and stored placements, checked on every backend (the promises of
:mod:`mlops_cli.registry.coordination`). Times are explicit (``now=``), so expiry is tested
without waiting for it."""

from __future__ import annotations

import secrets
import threading
from typing import Any

import pytest

from mlops_cli.errors import ConflictError, UsageError
from mlops_cli.registry import Registry
from mlops_cli.registry.base import (
    NAME_RULES,
    Lease,
    LeaseHeldError,
    LeaseLostError,
    RegistryNameError,
)
from mlops_cli.registry.coordination import MAX_PLACEMENT_BYTES, utc
from tests.conformance.conftest import RegistryTarget, register

pytestmark = [pytest.mark.integration]

NAME = "target:triton:gpu-fleet"
A, B = "runner-a:101:0a1b2c3d", "runner-b.example.com:202:4e5f6a7b"
NOW = 1_750_000_000.0
TTL = 30.0
FLEET = "gpu-fleet"
PLAN = {"assignments": {"fraud@3": ["a", "b"]}, "routing": {"fraud@3": ["a", "b"]}, "moves": 0}


# -- leases --------------------------------------------------------------------------------------


def test_a_free_lease_is_taken_and_read_back(registry: Registry) -> None:
    assert registry.get_lease(NAME) is None

    lease = registry.acquire_lease(NAME, A, TTL, now=NOW)

    assert lease == Lease(NAME, A, expires_at=NOW + TTL, acquired_at=NOW, revision=1)
    assert registry.get_lease(NAME) == lease
    assert registry.get_lease("target:triton:other") is None
    assert lease.to_dict() == {
        "name": NAME,
        "holder": A,
        "expires_at": NOW + TTL,
        "acquired_at": NOW,
        "revision": 1,
    }


def test_the_holder_taking_it_again_renews_it(registry: Registry) -> None:
    registry.acquire_lease(NAME, A, TTL, now=NOW)

    again = registry.acquire_lease(NAME, A, TTL, now=NOW + 10)
    renewed = registry.renew_lease(NAME, A, 5.0, now=NOW + 20)

    assert again == Lease(NAME, A, expires_at=NOW + 10 + TTL, acquired_at=NOW, revision=2)
    assert renewed == Lease(NAME, A, expires_at=NOW + 25, acquired_at=NOW, revision=3)
    assert registry.get_lease(NAME) == renewed


def test_another_holder_is_refused_until_the_lease_expires(registry: Registry) -> None:
    held = registry.acquire_lease(NAME, A, TTL, now=NOW)

    with pytest.raises(LeaseHeldError) as refused:
        registry.acquire_lease(NAME, B, TTL, now=NOW + TTL - 0.5)

    assert isinstance(refused.value, ConflictError)
    assert refused.value.lease == held
    message = str(refused.value)
    assert A in message and utc(NOW + TTL) in message, message
    assert registry.get_lease(NAME) == held  # the refusal wrote nothing

    taken = registry.acquire_lease(NAME, B, TTL, now=NOW + TTL)  # at the expiry: free

    assert taken == Lease(NAME, B, expires_at=NOW + 2 * TTL, acquired_at=NOW + TTL, revision=2)
    with pytest.raises(LeaseHeldError, match=B):
        registry.acquire_lease(NAME, A, TTL, now=NOW + TTL + 1)


def test_renewing_a_lost_lease_raises_and_changes_nothing(registry: Registry) -> None:
    registry.acquire_lease(NAME, A, TTL, now=NOW)
    taken = registry.acquire_lease(NAME, B, TTL, now=NOW + TTL + 1)

    with pytest.raises(LeaseLostError) as lost:
        registry.renew_lease(NAME, A, TTL, now=NOW + TTL + 2)

    assert isinstance(lost.value, ConflictError)
    assert B in str(lost.value) and A in str(lost.value)
    assert registry.get_lease(NAME) == taken
    with pytest.raises(LeaseLostError, match="never taken"):
        registry.renew_lease("target:triton:other", A, TTL)


def test_a_lease_past_its_expiry_that_nobody_took_is_still_renewable(registry: Registry) -> None:
    registry.acquire_lease(NAME, A, TTL, now=NOW)

    late = registry.renew_lease(NAME, A, TTL, now=NOW + TTL + 5)

    assert (late.holder, late.expires_at, late.acquired_at) == (A, NOW + 2 * TTL + 5, NOW)


def test_release_frees_only_the_holders_lease_and_is_idempotent(registry: Registry) -> None:
    held = registry.acquire_lease(NAME, A, TTL, now=NOW)

    assert registry.release_lease(NAME, B) is False  # not B's: left alone
    assert registry.get_lease(NAME) == held
    assert registry.release_lease(NAME, A) is True
    assert registry.get_lease(NAME) is None
    assert registry.release_lease(NAME, A) is False  # again: nothing to do
    assert registry.release_lease("target:never-taken", A) is False
    with pytest.raises(LeaseLostError, match="released"):
        registry.renew_lease(NAME, A, TTL, now=NOW + 1)

    # Free again long before the old expiry; the revision keeps growing (a fencing token).
    taken = registry.acquire_lease(NAME, B, TTL, now=NOW + 2)
    assert (taken.holder, taken.acquired_at) == (B, NOW + 2)
    assert taken.revision > held.revision + 1


def test_a_swap_against_a_stale_revision_writes_nothing(registry: Registry) -> None:
    """The storage port's compare-and-swap, on which every lease decision rests: a writer that
    read revision 1 cannot overwrite revision 2."""
    first = registry.acquire_lease(NAME, A, TTL, now=NOW)
    second = registry.acquire_lease(NAME, A, TTL, now=NOW + 1)
    stale = Lease(NAME, B, expires_at=NOW + 99, acquired_at=NOW, revision=first.revision + 1)

    assert registry._swap_lease(stale, expect_revision=first.revision) is False
    assert registry._swap_lease(stale, expect_revision=0) is False  # it exists: not absent
    assert registry.get_lease(NAME) == second


def test_racing_holders_of_a_free_lease_get_one_winner(
    registry: Registry, registry_target: RegistryTarget
) -> None:
    racers = 8
    clients = [registry_target.open() for _ in range(racers)]
    barrier = threading.Barrier(racers, timeout=60)
    outcomes: dict[int, str] = {}

    def race(index: int) -> None:
        barrier.wait()
        try:
            clients[index].acquire_lease(NAME, f"racer:{index}:{secrets.token_hex(2)}", TTL)
            outcomes[index] = "won"
        except LeaseHeldError:
            outcomes[index] = "refused"
        except Exception as exc:
            outcomes[index] = repr(exc)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert sorted(outcomes.values()) == ["refused"] * (racers - 1) + ["won"], outcomes
    winner = next(i for i, outcome in outcomes.items() if outcome == "won")
    stored = registry.get_lease(NAME)
    assert stored is not None and stored.holder.startswith(f"racer:{winner}:")
    assert stored.revision == 1


BAD_LEASE_CALLS: list[tuple[str, Any, type[Exception], str]] = [
    ("empty name", lambda r: r.acquire_lease("", A, TTL), RegistryNameError, NAME_RULES["lease"]),
    ("name with #", lambda r: r.acquire_lease("target#x", A, TTL), RegistryNameError, "lease"),
    ("name with /", lambda r: r.get_lease("target/x"), RegistryNameError, "lease"),
    ("long name", lambda r: r.acquire_lease("t" * 201, A, TTL), RegistryNameError, "lease"),
    ("empty holder", lambda r: r.acquire_lease(NAME, "", TTL), RegistryNameError, NAME_RULES["holder"]),
    ("holder with space", lambda r: r.release_lease(NAME, "a b"), RegistryNameError, "holder"),
    ("zero ttl", lambda r: r.acquire_lease(NAME, A, 0), UsageError, "ttl"),
    ("negative ttl", lambda r: r.renew_lease(NAME, A, -1), UsageError, "ttl"),
    ("nan ttl", lambda r: r.acquire_lease(NAME, A, float("nan")), UsageError, "ttl"),
    ("infinite ttl", lambda r: r.acquire_lease(NAME, A, float("inf")), UsageError, "ttl"),
    ("boolean ttl", lambda r: r.acquire_lease(NAME, A, True), UsageError, "ttl"),
    ("ttl over a day", lambda r: r.acquire_lease(NAME, A, 86_401), UsageError, "ttl"),
    ("nan now", lambda r: r.acquire_lease(NAME, A, TTL, now=float("nan")), UsageError, "unix time"),
]  # fmt: skip


def test_bad_lease_calls_are_refused_and_store_nothing(registry: Registry) -> None:
    held = registry.acquire_lease(NAME, B, TTL, now=NOW)

    for label, call, error, said in BAD_LEASE_CALLS:
        with pytest.raises(error) as caught:
            call(registry)
        assert isinstance(caught.value, ValueError), label
        assert said in str(caught.value), f"{label}: {caught.value}"
        assert registry.get_lease(NAME) == held, label


def test_leases_move_no_registry_revision(registry: Registry) -> None:
    register(registry, "fraud", "p1")
    before = registry.registry_revision()

    registry.acquire_lease(NAME, A, TTL, now=NOW)
    registry.renew_lease(NAME, A, TTL, now=NOW + 1)
    registry.acquire_lease(NAME, B, TTL, now=NOW + 100)
    registry.release_lease(NAME, B)

    assert registry.registry_revision() == before


def test_two_registries_on_one_uri_share_leases_and_placements(
    registry: Registry, registry_target: RegistryTarget
) -> None:
    other = registry_target.open()

    held = registry.acquire_lease(NAME, A, TTL)
    with pytest.raises(LeaseHeldError, match=A):
        other.acquire_lease(NAME, B, TTL)
    stored = other.put_placement(FLEET, PLAN, expect_revision=0)

    assert other.get_lease(NAME) == held
    assert registry.get_placement(FLEET) == stored


# -- placements ----------------------------------------------------------------------------------


def test_placement_put_and_get(registry: Registry) -> None:
    assert registry.get_placement(FLEET) is None

    first = registry.put_placement(FLEET, PLAN, expect_revision=0)
    second = registry.put_placement(FLEET, {**PLAN, "moves": 1}, expect_revision=1)
    third = registry.put_placement(FLEET, {"assignments": {}})  # no expectation: any revision

    assert (first.fleet, first.revision, dict(first.document)) == (FLEET, 1, PLAN)
    assert (second.revision, second.document["moves"]) == (2, 1)
    assert (third.revision, dict(third.document)) == (3, {"assignments": {}})
    found = registry.get_placement(FLEET)
    assert found is not None
    assert found.to_dict() == third.to_dict() and found.updated_at
    assert registry.get_placement("cpu-fleet") is None


def test_a_placement_put_against_another_revision_is_refused(registry: Registry) -> None:
    registry.put_placement(FLEET, PLAN)
    current = registry.put_placement(FLEET, {**PLAN, "moves": 2})
    before = registry.registry_revision()

    with pytest.raises(ConflictError) as stale:
        registry.put_placement(FLEET, {"lost": True}, expect_revision=1)
    with pytest.raises(ConflictError) as absent:
        registry.put_placement(FLEET, {"lost": True}, expect_revision=0)
    with pytest.raises(ConflictError) as ahead:
        registry.put_placement("cpu-fleet", {"lost": True}, expect_revision=1)

    assert "revision 2" in str(stale.value) and "expected revision 1" in str(stale.value)
    assert "expected none" in str(absent.value)
    assert "has no placement" in str(ahead.value)
    assert registry.get_placement(FLEET) == current
    assert registry.get_placement("cpu-fleet") is None
    assert registry.registry_revision() == before


def test_every_placement_put_moves_the_registry_revision(registry: Registry) -> None:
    seen = [registry.registry_revision()]
    for moves in range(3):
        registry.put_placement(FLEET, {**PLAN, "moves": moves})
        seen.append(registry.registry_revision())
    registry.put_placement("cpu-fleet", PLAN)
    seen.append(registry.registry_revision())

    assert seen == sorted(set(seen)), seen


def padded(size: int) -> dict[str, str]:
    """A document whose canonical JSON is exactly ``size`` bytes, of random hex (which
    compresses about half: several items' worth on DynamoDB)."""
    room = size - len('{"pad":""}')
    return {"pad": secrets.token_hex(room // 2 + 1)[:room]}


def test_placements_up_to_the_size_bound_are_stored_whole(registry: Registry) -> None:
    largest = padded(MAX_PLACEMENT_BYTES)
    stored = registry.put_placement(FLEET, largest, expect_revision=0)
    assert len(stored.document_json().encode()) == MAX_PLACEMENT_BYTES
    before = registry.registry_revision()

    with pytest.raises(UsageError, match=f"at most {MAX_PLACEMENT_BYTES} bytes"):
        registry.put_placement(FLEET, padded(MAX_PLACEMENT_BYTES + 1))

    found = registry.get_placement(FLEET)
    assert found is not None and found.revision == 1 and found.document == largest
    assert registry.registry_revision() == before

    # Long, short, long again: each read shows exactly the last write.
    registry.put_placement(FLEET, PLAN, expect_revision=1)
    assert registry.get_placement(FLEET) == registry.get_placement(FLEET)
    found = registry.get_placement(FLEET)
    assert found is not None and dict(found.document) == PLAN
    again = padded(MAX_PLACEMENT_BYTES // 2)
    registry.put_placement(FLEET, again, expect_revision=2)
    found = registry.get_placement(FLEET)
    assert found is not None and (found.revision, found.document) == (3, again)


BAD_PLACEMENTS: list[tuple[str, Any, type[Exception]]] = [
    ("bad fleet name", lambda r: r.put_placement("GPU fleet", PLAN), RegistryNameError),
    ("bad fleet name on read", lambda r: r.get_placement("gpu#fleet"), RegistryNameError),
    ("a list", lambda r: r.put_placement(FLEET, [1, 2]), UsageError),
    ("a set inside", lambda r: r.put_placement(FLEET, {"servers": {"a"}}), UsageError),
    ("NaN inside", lambda r: r.put_placement(FLEET, {"load": float("nan")}), UsageError),
    ("negative revision", lambda r: r.put_placement(FLEET, PLAN, expect_revision=-1), UsageError),
    ("boolean revision", lambda r: r.put_placement(FLEET, PLAN, expect_revision=True), UsageError),
]  # fmt: skip


def test_bad_placements_are_refused_and_store_nothing(registry: Registry) -> None:
    stored = registry.put_placement(FLEET, PLAN)
    before = registry.registry_revision()

    for label, call, error in BAD_PLACEMENTS:
        with pytest.raises(error) as caught:
            call(registry)
        assert isinstance(caught.value, ValueError), label
        assert registry.get_placement(FLEET) == stored, label
        assert registry.registry_revision() == before, label
