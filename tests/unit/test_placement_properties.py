"""The placement planner's promises on generated inputs (seeded, a few hundred cases, no servers).

For any fleet and items: a plan never puts more on a server than it can hold in any dimension
(host memory after headroom, all GPUs' memory, one GPU's memory), keeps the replicas of an item
on distinct servers, honours required labels and devices, uses at least the lower bound of
servers, and is the same for the same input (whatever order the items come in). Adding an item
moves nothing else. Rebalancing reports exactly the moves that turn the old plan into the new
one, and keeps within its move budget. Hot spreading keeps every server under 1.5x the mean load.
The checks recompute everything from the items and servers, not from the planner's state.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace

import pytest

from mlops_cli.placement import (
    Item,
    NoFit,
    Packer,
    Plan,
    Server,
    add,
    plan,
    rebalance,
    server_loads,
    spread_hot,
)

pytestmark = pytest.mark.unit

KINDS = ("a10g", "l4")
ZONES = ("a", "b")
SLACK = 1e-6  # MB: sums of fractional sizes in floats


def random_servers(rng: random.Random) -> list[Server]:
    servers = []
    for index in range(rng.randint(2, 10)):
        gpus = rng.choice((0, 1, 2))
        servers.append(
            Server(
                name=f"s{index}",
                memory_mb=float(rng.choice((1024, 2048, 4096))),
                gpu_memory_mb=float(rng.choice((0, 1024, 2048))) if gpus else 0.0,
                gpu_kind=rng.choice(KINDS) if gpus else None,
                gpu_count=gpus,
                labels={"zone": rng.choice(ZONES)},
                headroom_mb=float(rng.choice((0, 0, 128))),
                headroom_fraction=rng.choice((0.0, 0.0, 0.1)),
                used_mb=float(rng.choice((0, 0, 100))),
            )
        )
    return servers


def random_item(rng: random.Random, index: int) -> Item:
    gpu = rng.random() < 0.1
    return Item(
        model=f"m{index}",
        version=rng.randint(1, 3),
        memory_mb=round(rng.uniform(1, 1500), 1),
        gpu_memory_mb=round(rng.uniform(0, 900), 1) if gpu and rng.random() < 0.7 else 0.0,
        device="gpu" if gpu else "cpu",
        gpu_kind=rng.choice((None, None, *KINDS)) if gpu else None,
        replicas=rng.choice((1, 1, 1, 1, 2, 2, 3)),
        labels={"zone": rng.choice(ZONES)} if rng.random() < 0.1 else {},
        load=rng.paretovariate(1.2),
    )


def random_items(rng: random.Random, low: int = 0, high: int = 25) -> list[Item]:
    return [random_item(rng, index) for index in range(rng.randint(low, high))]


def random_spare(rng: random.Random) -> Server | None:
    if rng.random() < 0.5:
        return None
    gpus = rng.choice((0, 1))
    return Server(
        name="spare",
        memory_mb=4096.0,
        gpu_memory_mb=2048.0 if gpus else 0.0,
        gpu_kind=KINDS[0] if gpus else None,
        gpu_count=gpus,
        labels={"zone": ZONES[0]},
    )


def definition(servers: Sequence[Server], spare: Server | None, name: str) -> Server:
    found = {s.name: s for s in servers}.get(name)
    if found is not None:
        return found
    assert spare is not None and name.startswith(f"{spare.name}-"), name
    return replace(spare, name=name)


def check(placed: Plan, servers: Sequence[Server], spare: Server | None, items: list[Item]) -> None:
    """Every promise of a plan, recomputed from the inputs."""
    by_key = {item.key: item for item in items}
    assert set(placed.assignments) == set(by_key)
    host: dict[str, float] = {}
    gpu: dict[str, float] = {}
    for key, names in placed.assignments.items():
        item = by_key[key]
        assert len(names) == len(set(names)), f"{key}: replicas share a server"
        assert len(names) >= item.replicas
        for name in names:
            server = definition(servers, spare, name)
            host[name] = host.get(name, 0.0) + item.memory_mb
            gpu[name] = gpu.get(name, 0.0) + item.gpu_memory_mb
            labels = server.all_labels()
            assert all(labels.get(k) == v for k, v in item.labels.items()), (key, name)
            if item.wants_gpu:
                assert server.gpu_count > 0, (key, name)
                assert item.gpu_kind in (None, server.gpu_kind), (key, name)
            if item.gpu_memory_mb and server.gpu_memory_mb:
                assert item.gpu_memory_mb <= server.gpu_memory_mb + SLACK, (key, name)
    for name, used in host.items():
        server = definition(servers, spare, name)
        assert used <= server.usable_mb + SLACK, f"{name}: {used} MB > {server.usable_mb}"
        if server.gpu_memory_mb:
            assert gpu[name] <= server.gpu_usable_mb + SLACK, f"{name}: GPU over capacity"
    assert set(placed.servers) == set(host)
    assert placed.servers_used >= placed.lower_bound


def cases(seed: int, count: int) -> list[random.Random]:
    return [random.Random(seed * 1000 + index) for index in range(count)]


@pytest.mark.parametrize("seed", range(6))
def test_plans_hold_every_constraint_and_are_deterministic(seed: int) -> None:
    planned = refused = 0
    for rng in cases(seed, 50):
        servers, spare, items = random_servers(rng), random_spare(rng), random_items(rng)
        result = plan(servers, items, spare=spare)
        shuffled = items[:]
        rng.shuffle(shuffled)
        assert plan(servers, shuffled, spare=spare) == result  # same input, same plan
        if isinstance(result, NoFit):
            refused += 1
            assert result.unplaced and result.describe()
            for gone in result.unplaced:
                if gone.reason == "too-large":  # truly: no server that may hold it could
                    assert gone.memory_mb > gone.largest_mb or gone.gpu_memory_mb > 0
            continue
        planned += 1
        check(result, servers, spare, items)
    assert planned > 10 and refused > 0  # the generator reaches both answers


def fragmented(
    rng: random.Random, servers: list[Server], spare: Server | None, items: list[Item]
) -> tuple[Plan, list[Item]] | None:
    """Items arrived one at a time in random order, then about a third left again: a plan with
    gaps to fill (None when the arrivals did not fit)."""
    arrivals = items[:]
    rng.shuffle(arrivals)
    packer = Packer(servers, spare=spare)
    if any(packer.add(item) for item in arrivals):
        return None
    staying = [i for i in items if rng.random() > 0.3]
    for item in items:
        if item not in staying:
            for slot in list(packer.placed[item.key]):
                packer.unassign(item.key, slot)
    return packer.snapshot(lower_bound=0), staying


@pytest.mark.parametrize("seed", range(4))
def test_adding_an_item_moves_nothing_else(seed: int) -> None:
    added = 0
    for rng in cases(100 + seed, 50):
        servers, spare, items = random_servers(rng), random_spare(rng), random_items(rng)
        start = fragmented(rng, servers, spare, items)
        if start is None:
            continue
        current, items = start
        new = random_item(rng, 999)
        result = add(current, servers, items, new, spare=spare)
        if isinstance(result, NoFit):
            assert any(u.key == new.key for u in result.unplaced)
            continue
        added += 1
        for key, names in current.assignments.items():
            assert result.assignments[key] == names
        assert result.relocations == 0
        assert {m.key for m in result.moves} == {new.key}
        check(result, servers, spare, [*items, new])
    assert added >= 15


def applied(before: Plan, result: Plan) -> dict[str, tuple[str, ...]]:
    """``before`` with ``result.moves`` carried out."""
    after = {key: set(names) for key, names in before.assignments.items()}
    for move in result.moves:
        held = after.setdefault(move.key, set())
        if move.source is not None:
            held.remove(move.source)
        if move.target is not None:
            assert move.target not in held
            held.add(move.target)
    return {key: tuple(sorted(names)) for key, names in after.items() if names}


@pytest.mark.parametrize("seed", range(4))
def test_rebalance_reports_exactly_the_moves_it_makes(seed: int) -> None:
    rebalanced = moved = 0
    for rng in cases(200 + seed, 50):
        servers, spare, items = random_servers(rng), random_spare(rng), random_items(rng, 5)
        start = fragmented(rng, servers, spare, items)
        if start is None:
            continue
        before, departed = start
        budget = rng.choice((None, 0, 2, 5))
        result = rebalance(before, servers, departed, spare=spare, max_moves=budget)
        assert not isinstance(result, NoFit)
        rebalanced += 1
        check(result, servers, spare, departed)
        expected = {key: tuple(sorted(names)) for key, names in result.assignments.items()}
        assert applied(before, result) == expected
        assert result.servers_used <= before.servers_used
        if budget is not None:
            assert result.relocations <= budget
        moved += result.relocations > 0
        assert rebalance(before, servers, departed, spare=spare, max_moves=budget) == result
    assert rebalanced >= 15 and moved >= 3


@pytest.mark.parametrize("seed", range(3))
def test_hot_spreading_keeps_every_server_under_one_and_a_half_times_the_mean(seed: int) -> None:
    spread = 0
    for rng in cases(300 + seed, 15):
        spare = Server(name="spare", memory_mb=4096.0)
        items = [
            replace(random_item(rng, i), device="cpu", gpu_memory_mb=0.0, labels={})
            for i in range(rng.randint(20, 120))
        ]
        result = spread_hot([], items, spare=spare)
        assert not isinstance(result, NoFit)
        spread += 1
        for item in items:
            assert len(result.assignments[item.key]) >= item.replicas
        check(result, [], spare, items)
        loads = server_loads(result, items)
        mean = sum(loads.values()) / len(loads)
        assert max(loads.values()) <= 1.5 * mean * (1 + 1e-9)
    assert spread == 15
