"""The placement planner on small cases worked out by hand: the lower bound, headroom and GPU
memory as separate limits, labels, the explanations of a set that cannot fit, the moves of a
rebalance, the routing table, and the checks of models and plan files and fleet files."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops_cli.deploy.fleet_file import FleetFileError, load_fleet
from mlops_cli.placement import (
    Item,
    NoFit,
    Packer,
    PlacementInputError,
    Plan,
    RoutingTable,
    Server,
    add,
    lower_bound,
    plan,
    rebalance,
    server_loads,
    spread_hot,
)
from mlops_cli.placement.documents import (
    PlacementFileError,
    assignments_from_document,
    items_from_document,
)

pytestmark = pytest.mark.unit

GIB = 1024.0


def items(*sizes: float, replicas: int = 1) -> list[Item]:
    return [Item(f"m{i}", 1, size, replicas=replicas) for i, size in enumerate(sizes)]


def planned(result: Plan | NoFit) -> Plan:
    assert isinstance(result, Plan), result.describe() if isinstance(result, NoFit) else result
    return result


def refused(result: Plan | NoFit) -> NoFit:
    assert isinstance(result, NoFit), result
    return result


def test_the_lower_bound_is_the_larger_of_total_over_capacity_and_the_most_replicas() -> None:
    spare = Server("s", memory_mb=10 * GIB)
    assert lower_bound([], items(6 * GIB, 6 * GIB, 6 * GIB), spare=spare) == 2  # 18 / 10
    assert lower_bound([], items(1, replicas=4), spare=spare) == 4
    assert lower_bound([], [], spare=spare) == 0
    fleet = [Server("a", 4 * GIB), Server("b", 16 * GIB), Server("c", 8 * GIB)]
    assert lower_bound(fleet, items(10 * GIB, 10 * GIB)) == 2  # b (16) + c (8) hold 20
    gpu = Server("g", memory_mb=100 * GIB, gpu_memory_mb=8 * GIB, gpu_kind="l4", gpu_count=1)
    heavy = [Item(f"g{i}", 1, 1, gpu_memory_mb=6 * GIB, device="gpu") for i in range(3)]
    assert lower_bound([], heavy, spare=gpu) == 3  # GPU memory binds: 18 GiB over 8 GiB GPUs


def test_best_fit_decreasing_packs_tight_and_keeps_replicas_apart() -> None:
    spare = Server("s", memory_mb=10 * GIB)
    result = planned(plan([], items(5 * GIB, 5 * GIB, 4 * GIB, 3 * GIB, 3 * GIB), spare=spare))
    assert result.servers_used == result.lower_bound == 2
    assert [result.assignments[f"m{i}@1"] for i in range(5)] == [("s-1",)] * 2 + [("s-2",)] * 3
    replicated = planned(plan([], items(1 * GIB, replicas=3), spare=spare))
    assert replicated.assignments["m0@1"] == ("s-1", "s-2", "s-3")


def test_headroom_and_memory_in_use_are_kept_free() -> None:
    fleet = [Server("a", memory_mb=1000, headroom_mb=100, headroom_fraction=0.1, used_mb=50)]
    assert fleet[0].usable_mb == 750
    assert isinstance(plan(fleet, items(750)), Plan)
    assert isinstance(plan(fleet, items(750.1)), NoFit)


def test_host_and_gpu_memory_are_separate_limits_and_a_model_stays_on_one_gpu() -> None:
    server = Server("g", memory_mb=4000, gpu_memory_mb=1000, gpu_kind="l4", gpu_count=2)
    gpu_items = [Item(f"g{i}", 1, 100, gpu_memory_mb=700, device="gpu") for i in range(3)]
    no_room = refused(plan([server], gpu_items))
    assert no_room.gpu_shortfall_mb == 2100 - 2000 and not no_room.shortfall_mb
    assert "GPU memory" in no_room.describe()
    too_big = refused(plan([server], [Item("big", 1, 100, gpu_memory_mb=1500, device="gpu")]))
    assert "needs 1,500 MB of GPU memory, the largest GPU for it has 1,000 MB" in too_big.describe()
    cpu_heavy = [Item("c", 1, 3900), Item("g", 1, 200, gpu_memory_mb=100, device="gpu")]
    assert "host memory" in refused(plan([server], cpu_heavy)).describe()


def test_labels_and_gpu_kinds_choose_the_servers() -> None:
    fleet = [
        Server("cpu-a", 8000, labels={"zone": "a"}),
        Server("cpu-b", 8000, labels={"zone": "b"}),
        Server("l4", 8000, gpu_kind="l4", gpu_count=1, labels={"zone": "a"}),
        Server("a10g", 8000, gpu_kind="a10g", gpu_count=1, labels={"zone": "b"}),
    ]
    wanted = [
        Item("in-b", 1, 100, labels={"zone": "b"}),
        Item("any-gpu", 1, 100, device="gpu"),
        Item("a10g-only", 1, 100, device="gpu", gpu_kind="a10g"),
        Item("label-gpu", 1, 100, labels={"gpu": "l4"}),
        Item("cpu", 1, 100),
    ]
    result = planned(plan(fleet, wanted))
    assert result.assignments["in-b@1"][0] in ("cpu-b", "a10g")
    assert result.assignments["a10g-only@1"] == ("a10g",)
    assert result.assignments["label-gpu@1"] == ("l4",)
    assert result.assignments["any-gpu@1"][0] in ("l4", "a10g")
    nowhere = refused(plan(fleet, [Item("h100", 1, 10, device="gpu", gpu_kind="h100")]))
    assert nowhere.unplaced[0].reason == "no-server"


def test_a_cpu_model_opens_a_cpu_server_before_a_gpu_one() -> None:
    fleet = [Server("gpu", 8000, gpu_kind="l4", gpu_count=1), Server("cpu", 8000)]
    assert planned(plan(fleet, items(100))).assignments["m0@1"] == ("cpu",)


def test_a_fleet_too_small_names_the_shortfall_and_the_models_left_out() -> None:
    fleet = [Server("a", 1000), Server("b", 1000)]
    result = refused(plan(fleet, items(600, 600, 600, 500)))
    assert result.needed_mb == 2300 and result.usable_mb == 2000 and result.shortfall_mb == 300
    assert result.describe() == (
        "the fleet is short of 300 MB of host memory (the models need 2,300 MB, the fleet has "
        "2,000 MB): 2 models do not fit (m2@1: 600 MB, m3@1: 500 MB)"
    )
    # enough memory in all, but not in one piece: the shortfall is what found no room
    apart = refused(plan(fleet, items(700, 700, 500)))
    assert apart.describe().startswith("the fleet is short of 500 MB of host memory: 1 model")


def test_a_model_larger_than_any_server_is_named_as_such() -> None:
    result = refused(plan([], items(100, 30_000), spare=Server("s", 24 * GIB)))
    assert [(u.key, u.reason) for u in result.unplaced] == [("m1@1", "too-large")]
    assert result.describe() == (
        "1 model larger than any server that can take it: m1@1 needs 30,000 MB, the largest "
        "server for it holds 24,576 MB"
    )
    few = refused(plan([Server("a", 1000), Server("b", 1000)], items(10, replicas=3)))
    assert few.unplaced[0].reason == "too-few-servers" and few.unplaced[0].missing == 1
    assert "fewer servers than replicas" in few.describe()


def test_bad_items_and_servers_are_refused() -> None:
    with pytest.raises(PlacementInputError, match="m0@1 appears twice"):
        plan([], [*items(1), *items(2)], spare=Server("s", 10))
    with pytest.raises(PlacementInputError, match="more than 0 MB"):
        plan([], items(0), spare=Server("s", 10))
    with pytest.raises(PlacementInputError, match="replicas must be 1 or more"):
        plan([], items(1, replicas=0), spare=Server("s", 10))
    with pytest.raises(PlacementInputError, match="'a' appears twice"):
        plan([Server("a", 10), Server("a", 20)], items(1))
    with pytest.raises(PlacementInputError, match="no memory left"):
        plan([Server("a", 10, headroom_mb=10)], items(1))


def test_add_places_the_new_model_and_moves_nothing() -> None:
    fleet = [Server("a", 1000), Server("b", 1000), Server("c", 1000)]
    current = planned(plan(fleet, items(600, 200)))  # a: 800
    placed = [*items(600, 200), Item("new", 1, 500)]
    result = planned(add(current, fleet, placed[:2], placed[2]))
    assert result.assignments["new@1"] == ("b",)  # a has 200 left: b opens
    assert {k: v for k, v in result.assignments.items() if k != "new@1"} == current.assignments
    assert [(m.key, m.source, m.target) for m in result.moves] == [("new@1", None, "b")]
    fit = planned(add(result, fleet, placed, Item("small", 1, 150)))
    assert fit.assignments["small@1"] == ("a",)  # best fit: a has 200 left, b 500
    full = refused(add(result, fleet, placed, Item("big", 1, 1100)))
    assert full.unplaced[0].key == "big@1"
    with pytest.raises(PlacementInputError, match="cannot hold it now"):
        add(current, [Server("a", 500), Server("b", 1000)], items(600, 300), Item("x", 1, 1))
    with pytest.raises(PlacementInputError, match="more replicas of m0@1 than its 1"):
        add(Plan({"m0@1": ("a", "b")}, (), 0), fleet, items(10), Item("x", 1, 1))


def test_rebalance_empties_the_least_full_servers_with_few_moves() -> None:
    fleet = [Server(name, 1000) for name in "abcd"]
    scattered = Plan(
        {"m0@1": ("a",), "m1@1": ("b",), "m2@1": ("c",), "m3@1": ("d",)},
        ("a", "b", "c", "d"),
        lower_bound=0,
    )
    wanted = items(700, 300, 200, 100)
    result = planned(rebalance(scattered, fleet, wanted))
    assert result.servers_used == 2 == result.lower_bound
    assert result.relocations == 2  # d and c (the least full) empty into a and b
    assert result.assignments["m0@1"] == ("a",) and result.assignments["m1@1"] == ("b",)
    limited = planned(rebalance(scattered, fleet, wanted, max_moves=1))
    assert limited.relocations == 1 and limited.servers_used == 3
    untouched = planned(rebalance(scattered, fleet, wanted, max_moves=0))
    assert untouched.assignments == scattered.assignments and not untouched.moves


def test_rebalance_moves_what_a_removed_or_shrunk_server_held() -> None:
    before = Plan({"m0@1": ("a",), "m1@1": ("b", "c")}, ("a", "b", "c"), lower_bound=0)
    wanted = [Item("m0", 1, 500), Item("m1", 1, 200, replicas=2)]
    fleet = [Server("a", 400), Server("b", 1000), Server("d", 1000)]  # c gone, a shrunk
    result = planned(rebalance(before, fleet, wanted, max_moves=0))
    assert sorted(result.assignments["m1@1"]) == ["b", "d"]
    assert result.assignments["m0@1"] in (("b",), ("d",))
    assert {(m.key, m.source) for m in result.moves} == {("m0@1", "a"), ("m1@1", "c")}
    assert result.relocations == 2


def test_rebalance_drops_replicas_no_longer_wanted_and_adds_new_ones() -> None:
    fleet = [Server(name, 1000) for name in "abc"]
    before = Plan({"m0@1": ("a", "b", "c"), "gone@1": ("a",)}, ("a", "b", "c"), lower_bound=0)
    wanted = [Item("m0", 1, 100, replicas=2), Item("new", 1, 100)]
    result = planned(rebalance(before, fleet, wanted, max_moves=0))
    assert result.assignments["m0@1"] == ("a", "b")
    assert set(result.assignments) == {"m0@1", "new@1"}
    assert {(m.key, m.source, m.target) for m in result.moves} == {
        ("m0@1", "c", None),
        ("gone@1", "a", None),
        ("new@1", None, result.assignments["new@1"][0]),
    }
    assert result.relocations == 0


def test_a_plan_of_spare_copies_can_be_rebalanced_from_its_names() -> None:
    spare = Server("server", 1000)
    before = Plan({"m0@1": ("server-7",), "m1@1": ("server-2",)}, (), lower_bound=0)
    result = planned(rebalance(before, [], items(300, 300), spare=spare))
    assert result.servers_used == 1 and result.relocations == 1
    assert set(result.servers) <= {"server-2", "server-7"}


def test_the_routing_table_answers_from_the_plan() -> None:
    result = planned(plan([], items(100, replicas=2), spare=Server("s", 1000)))
    table = RoutingTable.from_plan(result, revision=3)
    assert table.servers_for("m0@1") == ("s-1", "s-2")
    assert table.servers_for("unknown@1") == ()
    assert "m0@1" in table and len(table) == 1
    assert table.to_dict() == {"revision": 3, "routes": {"m0@1": ["s-1", "s-2"]}}


def test_hot_spreading_adds_replicas_of_hot_models_only() -> None:
    loaded = [Item(f"m{i}", 1, 100, load=1 / (i + 1)) for i in range(200)]
    spare = Server("s", 2000)
    flat = planned(plan([], loaded, spare=spare))
    flat_loads = server_loads(flat, loaded)
    assert max(flat_loads.values()) > 1.5 * sum(flat_loads.values()) / len(flat_loads)
    spread = planned(spread_hot([], loaded, spare=spare))
    loads = server_loads(spread, loaded)
    assert max(loads.values()) <= 1.5 * sum(loads.values()) / len(loads)
    assert len(spread.assignments["m0@1"]) > 1 and len(spread.assignments["m199@1"]) == 1
    with pytest.raises(ValueError, match="at least 1"):
        spread_hot([], loaded, spare=spare, max_ratio=0.5)


def test_the_packer_adds_online_and_counts_what_found_no_server() -> None:
    packer = Packer([Server("a", 1000)])
    assert packer.add(Item("x", 1, 600)) == 0
    assert packer.add(Item("y", 1, 600, replicas=2)) == 2
    assert packer.snapshot(lower_bound=1).assignments == {"x@1": ("a",)}
    gpus = Packer([Server("g", 8000, gpu_memory_mb=1000, gpu_kind="l4", gpu_count=2)])
    assert gpus.add(Item("wide", 1, 10, gpu_memory_mb=1500, device="gpu")) == 1  # one GPU each
    assert gpus.add(Item("fits", 1, 10, gpu_memory_mb=1000, device="gpu")) == 0


# -- files ---------------------------------------------------------------------------------------


def entry(**fields: object) -> dict[str, object]:
    return {"name": "m", "version": 1, "memory_bytes": 2**30, **fields}


def test_a_models_file_gives_items() -> None:
    document = {
        "models": [
            entry(replicas=2),
            entry(name="g", version="v2", gpu_memory_bytes=2**31, labels={"zone": "a"}),
        ]
    }
    first, second = items_from_document(document, source="models.json")
    assert (first.key, first.memory_mb, first.replicas, first.device) == ("m@1", 1024, 2, "cpu")
    assert (second.key, second.gpu_memory_mb, second.device) == ("g@v2", 2048, "gpu")
    assert second.labels == {"zone": "a"}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "must be an object with 'models'"),
        ({"model": []}, "'models' is missing"),
        ({"models": {}}, "models: must be a list of models"),
        ({"models": [entry(), entry()]}, "models[1]: m@1 is listed twice (also models[0])"),
        ({"models": [entry(memory_bytes=0)]}, "models[0].memory_bytes: 0 is not a whole number"),
        ({"models": [entry(memory_bytes=-5)]}, "models[0].memory_bytes: -5 is not a whole"),
        ({"models": [entry(memory_bytes=1.5)]}, "models[0].memory_bytes: 1.5 is not a whole"),
        ({"models": [entry(memory_bytes=True)]}, "memory_bytes: True is not a whole number"),
        ({"models": [entry(replicas=0)]}, "models[0].replicas: 0 is not a whole number of at"),
        ({"models": [entry(version=0)]}, "models[0].version: 0 is not a version"),
        ({"models": [entry(name="a b")]}, "models[0].name: 'a b' is not a model name"),
        ({"models": [entry(memmory_bytes=1)]}, "unknown key 'memmory_bytes'"),
        ({"models": [{"name": "m", "version": 1}]}, "models[0]: memory_bytes is missing"),
        ({"models": ["m"]}, "models[0]: must be an object"),
        ({"models": [entry(labels={"zone": 1})]}, "models[0].labels: must map label names"),
    ],
)
def test_a_bad_models_file_is_refused_naming_the_entry(document: object, message: str) -> None:
    with pytest.raises(PlacementFileError) as raised:
        items_from_document(document, source="models.json")
    assert raised.value.message.startswith("models.json")
    assert message in raised.value.message
    assert raised.value.exit_code == 2


def test_a_models_file_with_too_many_models_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("mlops_cli.placement.documents.MAX_MODELS", 3)
    with pytest.raises(PlacementFileError, match="4 models, more than the 3 allowed"):
        items_from_document({"models": [entry(name=f"m{i}") for i in range(4)]}, source="f")


def test_a_plan_file_gives_assignments() -> None:
    found = assignments_from_document({"assignments": {"a@1": ["s-1", "s-2"]}}, source="p")
    assert found == {"a@1": ("s-1", "s-2")}
    for bad in ({"a": ["s"]}, {"a@1": ["s", "s"]}, {"a@1": "s"}, {"a@1": [1]}):
        with pytest.raises(PlacementFileError):
            assignments_from_document({"assignments": bad}, source="p")


def fleet_file(tmp_path: Path, servers: str) -> Path:
    path = tmp_path / "fleet.yaml"
    path.write_text(f"name: f\nrepository: repo\nservers:\n{servers}")
    return path


def test_a_fleet_file_naming_a_server_twice_is_refused(tmp_path: Path) -> None:
    same_name = fleet_file(
        tmp_path,
        "  - {name: a, url: 'http://h1:8000', memory_mb: 100}\n"
        "  - {name: a, url: 'http://h2:8000', memory_mb: 100}\n",
    )
    with pytest.raises(FleetFileError, match=r"server name 'a' appears twice \(servers\[0\] and"):
        load_fleet(same_name)
    same_url = fleet_file(
        tmp_path,
        "  - {name: a, url: 'http://H1:8000', memory_mb: 100}\n"
        "  - {name: b, url: 'http://h1:8000/', memory_mb: 100}\n",
    )
    with pytest.raises(FleetFileError, match="servers 'a' and 'b' have the same URL"):
        load_fleet(same_url)


def test_a_fleet_file_declares_headroom_gpu_memory_and_dynamic_servers(tmp_path: Path) -> None:
    path = fleet_file(
        tmp_path,
        "  - {name: a, url: 'http://h1:8000', memory_mb: 100, headroom_mb: 10, dynamic: true,\n"
        "     gpu: {kind: l4, count: 2, memory_mb: 24000}, labels: {zone: eu-1a}}\n"
        "  - {name: b, url: 'http://h2:8000', memory_mb: 100}\n",
    )
    a, b = load_fleet(path).servers
    assert (a.headroom_mb, a.dynamic, a.gpu_memory_mb, a.gpu_count) == (10, True, 24000, 2)
    assert (b.headroom_mb, b.dynamic, b.gpu_memory_mb) == (0, False, 0)
