"""Placement as a pure function over generated fleets: seeded random fleets and models, no servers.

What must hold for any input: a chosen server has the room and the device the model needs (never
over capacity; a GPU model only on a GPU server of the kind it names), the answer is the first
such server in fleet order (first fit by memory, as the fleet target always placed), the same
input gives the same answer, and a refusal says why for every server.
"""

from __future__ import annotations

import random

import pytest

from mlops_cli.deploy.placement import (
    ModelNeeds,
    PlacementRefusal,
    ServerSnapshot,
    place,
    refusal_reason,
)

pytestmark = pytest.mark.unit

GPU_KINDS = ("nvidia-a10g", "nvidia-l4", "nvidia-h100")


def random_fleet(rng: random.Random) -> list[ServerSnapshot]:
    fleet = []
    for index in range(rng.randint(0, 12)):
        capacity = float(rng.choice((512, 1024, 4096, 16384)))
        gpus = rng.choice((0, 0, 1, 4))
        fleet.append(
            ServerSnapshot(
                name=f"s{index}",
                memory_mb=capacity,
                used_mb=float(rng.randint(0, int(capacity))),
                gpu_kind=rng.choice(GPU_KINDS) if gpus else None,
                gpu_count=gpus,
                labels={"zone": rng.choice("abc")},
                reachable=rng.random() > 0.1,
            )
        )
    return fleet


def random_needs(rng: random.Random) -> ModelNeeds:
    device = rng.choice(("cpu", "gpu"))
    kind = rng.choice((None, *GPU_KINDS)) if device == "gpu" else None
    return ModelNeeds(memory_mb=float(rng.randint(1, 8192)), device=device, gpu_kind=kind)


CASES = [(random_fleet(rng), random_needs(rng)) for rng in map(random.Random, range(500))]


@pytest.mark.parametrize("seed", range(0, 500, 50))
def test_generated_fleets_keep_every_promise(seed: int) -> None:
    for fleet, needs in CASES[seed : seed + 50]:
        chosen = place(fleet, needs)
        assert chosen == place(list(fleet), needs)  # deterministic for the same input
        fits = [s for s in fleet if refusal_reason(s, needs) is None]
        if isinstance(chosen, PlacementRefusal):
            assert fits == []
            assert len(chosen.reasons) == len(fleet)
            assert [r.split(":")[0] for r in chosen.reasons] == [s.name for s in fleet]
            continue
        assert chosen is fits[0]  # first fit in fleet order
        assert chosen.reachable
        assert chosen.used_mb + needs.memory_mb <= chosen.memory_mb  # never over capacity
        if needs.device == "gpu":
            assert chosen.gpu_count > 0
            assert needs.gpu_kind is None or chosen.gpu_kind == needs.gpu_kind


def test_first_fit_by_memory_in_fleet_order() -> None:
    fleet = [
        ServerSnapshot("a", memory_mb=1000, used_mb=950),
        ServerSnapshot("b", memory_mb=1000, used_mb=0, reachable=False),
        ServerSnapshot("c", memory_mb=1000, used_mb=500),
        ServerSnapshot("d", memory_mb=4000),
    ]
    assert place(fleet, ModelNeeds(memory_mb=500)) == fleet[2]
    assert place(fleet, ModelNeeds(memory_mb=501)) == fleet[3]
    refused = place(fleet, ModelNeeds(memory_mb=5000))
    assert isinstance(refused, PlacementRefusal)
    assert refused.describe() == ("a: 50 MB free; b: unreachable; c: 500 MB free; d: 4000 MB free")


def test_gpu_models_go_only_to_gpus_of_their_kind() -> None:
    fleet = [
        ServerSnapshot("cpu", memory_mb=10_000),
        ServerSnapshot("l4", memory_mb=10_000, gpu_kind="nvidia-l4", gpu_count=1),
        ServerSnapshot("a10g", memory_mb=10_000, gpu_kind="nvidia-a10g", gpu_count=1),
    ]
    assert place(fleet, ModelNeeds(64, "cpu")) == fleet[0]
    assert place(fleet, ModelNeeds(64, "gpu")) == fleet[1]
    assert place(fleet, ModelNeeds(64, "gpu", "nvidia-a10g")) == fleet[2]
    refused = place(fleet, ModelNeeds(64, "gpu", "nvidia-h100"))
    assert isinstance(refused, PlacementRefusal)
    assert refused.reasons == (
        "cpu: no nvidia-h100",
        "l4: no nvidia-h100",
        "a10g: no nvidia-h100",
    )
    assert place([], ModelNeeds(1)) == PlacementRefusal(())
    assert PlacementRefusal(()).describe() == "the fleet has no servers"
