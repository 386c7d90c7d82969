"""A deploy's drain (:func:`mlops_cli.deploy.drain.wait_for_routers`) waits on router heartbeats
in a real SQLite registry: at least the cache floor, until every live router has applied the
switch and finished with the old version, at most the bound; stale routers are not waited on.

The later heartbeat that releases a drain is written by a thread :data:`DELAY_S` after the
switch."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from mlops_cli.deploy import drain
from mlops_cli.deploy.drain import STALE_AFTER_S, wait_for_routers
from mlops_cli.registry import open_registry
from mlops_cli.registry.base import NewVersion, Registry
from mlops_cli.registry.records import RouterHeartbeat

pytestmark = pytest.mark.unit

FLOOR_S = 0.2  # ROUTER_CACHE_TTL_S, made small for these tests
DELAY_S = 0.6  # when the releasing heartbeat is written
BOUND_S = 10.0
SLACK_S = 2.0  # scheduling on a loaded machine; far below BOUND_S, so a wrong wait still shows
ROUTER = "host-a:101:abc"


@pytest.fixture(autouse=True)
def short_floor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(drain, "ROUTER_CACHE_TTL_S", FLOOR_S)


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    """answer v1 and v2, @production -> 2 (the switch done): revision R = registry_revision()."""
    backend = open_registry(f"sqlite:///{tmp_path / 'r.db'}")
    backend.init()
    for number in range(2):
        backend.register_version("answer", NewVersion(f"{number:064x}", f"file:///p/{number}"))
    backend.set_alias("answer", "production", 2)
    return backend


def beat(
    registry: Registry,
    router_id: str,
    revision: int,
    in_flight: Mapping[str, int] | None = None,
    *,
    age_s: float = 0.0,
) -> None:
    registry.record_heartbeat(
        RouterHeartbeat(
            router_id=router_id,
            applied_revision=revision,
            in_flight=dict(in_flight or {}),
            at=time.time() - age_s,
            address="127.0.0.1:8700",
        )
    )


Planned = list[tuple[str, int, dict[str, int]]]


@pytest.fixture
def release(registry: Registry) -> Iterator[Callable[[Planned], None]]:
    """``release(beats)``: write these heartbeats DELAY_S from now, from a thread (as a router
    would)."""
    done = threading.Event()
    threads: list[threading.Thread] = []

    def start(planned: Planned) -> None:
        def write() -> None:
            if not done.wait(DELAY_S):
                for router_id, revision, in_flight in planned:
                    beat(registry, router_id, revision, in_flight)

        threads.append(threading.Thread(target=write))
        threads[-1].start()

    yield start
    done.set()
    for thread in threads:
        thread.join()


def wait(
    registry: Registry, *, switched_at: float | None = None, bound_s: float = BOUND_S
) -> drain.Drain:
    switched = time.monotonic() if switched_at is None else switched_at
    return wait_for_routers(registry, "answer", [1], switched_at=switched, bound_s=bound_s)


def test_with_no_live_router_the_drain_lasts_the_floor(registry: Registry) -> None:
    result = wait(registry)

    assert FLOOR_S <= result.seconds < FLOOR_S + SLACK_S
    assert result.revision == registry.registry_revision()
    assert (result.routers, result.unconfirmed) == ([], [])


def test_a_router_behind_the_revision_is_waited_on_until_it_applies_it(
    registry: Registry, release: Callable[[Planned], None]
) -> None:
    revision = registry.registry_revision()
    beat(registry, ROUTER, revision - 1)
    beat(registry, "host-b:7:def", revision)  # already current: not waited on
    switched = time.monotonic()
    release([(ROUTER, revision, {})])

    result = wait(registry, switched_at=switched)

    assert DELAY_S <= result.seconds < BOUND_S
    assert result.routers == ["host-a:101:abc", "host-b:7:def"]
    assert result.unconfirmed == []


def test_a_router_with_requests_in_flight_on_the_old_version_is_waited_on(
    registry: Registry, release: Callable[[Planned], None]
) -> None:
    revision = registry.registry_revision()
    beat(registry, ROUTER, revision, {"answer@1": 3, "answer@2": 5})
    switched = time.monotonic()
    release([(ROUTER, revision, {"answer@1": 0, "answer@2": 5})])

    result = wait(registry, switched_at=switched)

    assert DELAY_S <= result.seconds < BOUND_S
    assert (result.routers, result.unconfirmed) == ([ROUTER], [])


def test_requests_in_flight_on_other_versions_do_not_hold_the_drain(registry: Registry) -> None:
    registry.register_version("other", NewVersion("f" * 64, "file:///other"))
    revision = registry.registry_revision()
    beat(registry, ROUTER, revision, {"answer@2": 9, "other@1": 4})

    result = wait(registry)

    assert FLOOR_S <= result.seconds < FLOOR_S + SLACK_S
    assert (result.routers, result.unconfirmed) == ([ROUTER], [])


def test_a_stale_heartbeat_is_not_waited_on(registry: Registry) -> None:
    revision = registry.registry_revision()
    beat(registry, ROUTER, revision - 1, {"answer@1": 2}, age_s=STALE_AFTER_S + 1)

    result = wait(registry)

    assert FLOOR_S <= result.seconds < FLOOR_S + SLACK_S
    assert (result.routers, result.unconfirmed) == ([], [])


def test_a_router_that_never_confirms_is_named_after_the_bound(registry: Registry) -> None:
    revision = registry.registry_revision()
    beat(registry, ROUTER, revision - 1)
    beat(registry, "host-b:7:def", revision, {"answer@1": 1})
    beat(registry, "host-c:9:fed", revision)

    result = wait(registry, bound_s=0.8)

    assert 0.8 <= result.seconds < 0.8 + SLACK_S
    assert result.routers == [ROUTER, "host-b:7:def", "host-c:9:fed"]
    assert result.unconfirmed == [ROUTER, "host-b:7:def"]
    assert result.to_dict()["unconfirmed"] == [ROUTER, "host-b:7:def"]
