"""Races between real processes: version numbering and alias compare-and-swap, on every backend.

Children are started with the 'spawn' context (fresh interpreters, no state inherited by fork)
and given the registry URI and, for DynamoDB, the moto server's AWS variables explicitly. Every
wait is bounded: the barrier, the result queue and the joins.

DynamoDB runs on the session's moto server, whose launcher serialises DynamoDB requests: stock
moto's threaded server does not isolate concurrent transactions (a failed one restores a stale
copy of the table), and these tests must measure the registry, not moto.
"""

from __future__ import annotations

import multiprocessing
import queue
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mlops_cli.registry import Registry
from tests.conformance import race_workers
from tests.conformance.conftest import BACKENDS, RegistryTarget, make_target, package, register

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODEL = "fraud-detector"
BARRIER_TIMEOUT = 60.0
DEADLINE = 120.0


@pytest.fixture(params=BACKENDS)
def race_target(request: pytest.FixtureRequest, tmp_path: Path) -> RegistryTarget:
    return make_target(request.param, request, tmp_path)


@pytest.fixture
def race_registry(race_target: RegistryTarget) -> Registry:
    return race_target.open()


def run_children(
    body: Callable[..., None], per_child: list[tuple[Any, ...]], expected: int
) -> list[tuple[Any, ...]]:
    """Run ``body(*args, barrier, results, timeout)`` in one spawned process per ``per_child``
    entry; return the ``expected`` results (fails on a child's error or the deadline)."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(len(per_child))
    results = context.Queue()
    children = [
        context.Process(target=body, args=(*args, barrier, results, BARRIER_TIMEOUT), daemon=True)
        for args in per_child
    ]
    for child in children:
        child.start()
    deadline = time.monotonic() + DEADLINE
    collected: list[tuple[Any, ...]] = []
    try:
        while len(collected) < expected:
            try:
                item = results.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"only {len(collected)} of {expected} results within {DEADLINE} s")
            if item[0] == "error":
                pytest.fail(f"child {item[1]} failed:\n{item[2]}")
            collected.append(item)
        for child in children:
            child.join(timeout=max(1.0, deadline - time.monotonic()))
            assert child.exitcode == 0, f"child {child.pid} exited with {child.exitcode}"
    finally:
        for child in children:
            if child.is_alive():
                child.kill()
                child.join(timeout=10)
        results.close()
    return collected


def test_concurrent_registrations_get_consecutive_versions(
    race_target: RegistryTarget, race_registry: Registry
) -> None:
    processes = 16
    packages = [package(f"racer-{i}") for i in range(processes)]

    outcomes = run_children(
        race_workers.register_one,
        [(race_target.uri, race_target.env, MODEL, i, packages[i]) for i in range(processes)],
        expected=processes,
    )

    version_of = {index: version for _, index, version, _ in outcomes}
    assert all(created for *_, created in outcomes)
    assert sorted(version_of.values()) == list(range(1, processes + 1))
    assert race_registry.get_model(MODEL).latest_version == processes
    stored = {v.version: v.package_digest for v in race_registry.list_versions(MODEL)}
    assert stored == {version_of[i]: packages[i].package_digest for i in range(processes)}


def test_racing_alias_updates_have_one_winner_per_round(
    race_target: RegistryTarget, race_registry: Registry
) -> None:
    processes, rounds = 8, 4
    # Version 1 is the start; child i writes version 2 + round * processes + i in each round, so
    # no write ever re-writes the version the others expect (which would let them win too).
    register(race_registry, MODEL, *(f"p{n}" for n in range(1 + processes * rounds)))
    initial = race_registry.set_alias(MODEL, "production", 1)
    targets = [[2 + r * processes + i for r in range(rounds)] for i in range(processes)]

    outcomes = run_children(
        race_workers.race_alias,
        [
            (race_target.uri, race_target.env, MODEL, "production", i, targets[i])
            for i in range(processes)
        ],
        expected=processes * rounds,
    )

    by_round: dict[int, list[tuple[Any, ...]]] = defaultdict(list)
    for outcome in outcomes:
        by_round[outcome[2]].append(outcome)
    expected_seen, previous_revision = 1, initial.revision
    for round_no in range(rounds):
        seen = {outcome[3] for outcome in by_round[round_no]}
        assert seen == {expected_seen}, f"round {round_no}: children read {seen}"
        winners = [o for o in by_round[round_no] if o[0] == "won"]
        assert len(winners) == 1, f"round {round_no}: {len(winners)} winners"
        assert len(by_round[round_no]) - len(winners) == processes - 1
        _, index, _, _, version, revision = winners[0]
        assert version == targets[index][round_no]
        assert revision > previous_revision
        expected_seen, previous_revision = version, revision

    final = race_registry.get_alias(MODEL, "production")
    assert (final.version, final.revision) == (expected_seen, previous_revision)
    assert sum(o[0] == "won" for o in outcomes) == rounds
