"""``mlops placement plan|rebalance`` as a user meets it: the --json document (assignments,
servers_used, lower_bound, moves, memory_source), offline plans from a models file in JSON or
YAML, plans of registered versions onto a fleet file (measured memory before declared, replicas
overridden), a rebalance of a saved plan, and bad input: one error line and the exit code."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from mlops_cli.cli import app
from mlops_cli.config import resolve_settings
from mlops_cli.registry import open_registry
from tests.cli import error_line, run
from tests.conftest import FIXTURES

pytestmark = pytest.mark.unit

GIB = 2**30
# The entry mlops_cli/cli/app.py gets for the command (set here until it is there).
ENTRY = (
    "placement_cmd",
    "app",
    True,
    "Plan which servers hold which model versions (memory, replicas, labels); rebalance.",
)


@pytest.fixture(autouse=True)
def placement_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(app.COMMANDS, "placement", ENTRY)


def models_file(folder: Path, entries: list[dict[str, Any]], name: str = "models.json") -> Path:
    path = folder / name
    if name.endswith(".json"):
        path.write_text(json.dumps({"models": entries}))
    else:
        import yaml

        path.write_text(yaml.safe_dump({"models": entries}))
    return path


def model(name: str, gib: float, replicas: int = 1, version: int = 1) -> dict[str, Any]:
    return {"name": name, "version": version, "memory_bytes": int(gib * GIB), "replicas": replicas}


# -- offline -----------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["json", "yaml"])
def test_an_offline_plan_packs_a_models_file_onto_servers_of_one_size(
    isolated_config: Path, capsys: pytest.CaptureFixture[str], suffix: str
) -> None:
    entries = [model("a", 10, replicas=2), model("b", 5), model("c", 12), model("d", 2)]
    path = models_file(isolated_config, entries, f"models.{suffix}")
    document = run(capsys, "placement", "plan", "--models", str(path), "--server-memory", "24GiB")
    assert document["assignments"] == {
        "a@1": ["server-1", "server-2"],
        "b@1": ["server-2"],
        "c@1": ["server-1"],
        "d@1": ["server-1"],  # best fit: the 2 GiB left beside c and a
    }
    assert (document["servers_used"], document["lower_bound"], document["moves"]) == (2, 2, [])
    assert document["memory_source"] == dict.fromkeys(document["assignments"], "file")
    assert [s["used_mb"] for s in document["servers"]] == [24 * 1024, 15 * 1024]


def test_a_saved_plan_is_rebalanced_onto_larger_servers_with_its_moves(
    isolated_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = models_file(isolated_config, [model("a", 10, replicas=2), model("b", 5), model("c", 12)])
    planned = run(capsys, "placement", "plan", "--models", str(path), "--server-memory", "16GiB")
    assert planned["servers_used"] == 3
    saved = isolated_config / "plan.json"
    saved.write_text(json.dumps(planned))
    again = run(
        capsys, "placement", "plan", "--models", str(path), "--server-memory", "16GiB",
        "--from", str(saved),
    )  # fmt: skip
    assert again["moves"] == [] and again["assignments"] == planned["assignments"]
    result = run(
        capsys, "placement", "rebalance", "--models", str(path), "--server-memory", "32GiB",
        "--from", str(saved),
    )  # fmt: skip
    assert result["servers_used"] == 2 and result["relocations"] == len(result["moves"]) > 0
    for move in result["moves"]:
        assert move["from"] in planned["assignments"][move["model"]]
        assert move["to"] in result["assignments"][move["model"]]
    frozen = run(
        capsys, "placement", "rebalance", "--models", str(path), "--server-memory", "32GiB",
        "--from", str(saved), "--max-moves", "0",
    )  # fmt: skip
    assert frozen["moves"] == [] and frozen["servers_used"] == 3


def test_the_human_output_summarises_the_plan(
    isolated_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlops_cli.cli.main import main

    path = models_file(isolated_config, [model("a", 10, replicas=2), model("b", 5)])
    assert main(["placement", "plan", "--models", str(path), "--server-memory", "24576"]) == 0
    out = capsys.readouterr().out
    assert "planned 2 models on 2 servers (lower bound 2); 0 moves" in out
    assert "memory: 2 file" in out and "server-2" in out


# -- from the registry, onto a fleet -------------------------------------------------------------


def register(
    folder: Path, capsys: pytest.CaptureFixture[str], name: str, memory: int | None
) -> None:
    copy = folder / name
    shutil.copytree(FIXTURES / "models" / "tiny", copy)
    spec = (copy / "mlops.yaml").read_text().replace("name: tiny", f"name: {name}")
    spec = (
        spec.replace("  memory_mb: 64", f"  memory_mb: {memory}")
        if memory
        else spec.split("resources:")[0]
    )
    (copy / "mlops.yaml").write_text(spec)
    run(capsys, "register", str(copy))


def fleet(folder: Path, *memory_mb: int, extra: str = "") -> Path:
    path = folder / "fleet.yaml"
    lines = [f"name: shared\nrepository: {folder / 'repository'}\nservers:"]
    lines += [
        f"  - {{name: t{i}, url: 'http://10.0.0.{i}:8000', memory_mb: {m}}}"
        for i, m in enumerate(memory_mb)
    ]
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


def test_registered_versions_use_measured_memory_before_declared(
    isolated_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    register(isolated_config, capsys, "measured", 64)
    register(isolated_config, capsys, "declared", 300)
    register(isolated_config, capsys, "plain", None)
    open_registry(resolve_settings().registry).set_version_metrics(
        "measured", 1, memory_mb=700.0, latency_ms=1.0
    )
    path = fleet(isolated_config, 1000, 1000)
    document = run(
        capsys, "placement", "plan", "--fleet", str(path), "measured@1", "declared@1", "plain",
        "--replicas", "plain=2",
    )  # fmt: skip
    assert document["memory_source"] == {
        "measured@1": "measured",
        "declared@1": "declared",
        "plain@1": "default",
    }
    # measured 700 alone; declared 300 and one default 256 beside it or not: replicas apart
    assert document["assignments"]["measured@1"] == ["t0"]
    assert sorted(document["assignments"]["plain@1"]) == ["t0", "t1"]
    used = {s["name"]: s["used_mb"] for s in document["servers"]}
    assert used == {"t0": 956.0, "t1": 556.0}


def test_all_deployed_plans_what_the_fleet_serves(
    isolated_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    register(isolated_config, capsys, "served", 64)
    register(isolated_config, capsys, "elsewhere", 64)
    registry = open_registry(resolve_settings().registry)
    registry.record_deployment("served", 1, "triton:shared", detail={})
    registry.record_deployment("elsewhere", 1, "triton:other", detail={})
    path = fleet(isolated_config, 1000)
    document = run(capsys, "placement", "plan", "--fleet", str(path), "--all-deployed")
    assert list(document["assignments"]) == ["served@1"]
    empty = fleet(isolated_config, 1000).with_name("fleet.yaml")
    empty.write_text(empty.read_text().replace("name: shared", "name: idle"))
    line = error_line(capsys, "placement", "plan", "--fleet", str(empty), "--all-deployed", code=2)
    assert "nothing is deployed on triton:idle" in line


# -- bad input ---------------------------------------------------------------------------------


def test_a_fleet_too_small_names_the_shortfall_and_the_models(
    isolated_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    register(isolated_config, capsys, "first", 600)
    register(isolated_config, capsys, "second", 600)
    path = fleet(isolated_config, 1000)
    line = error_line(
        capsys, "placement", "plan", "--fleet", str(path), "first@1", "second@1", code=1
    )
    assert line.startswith(
        "error: the fleet is short of 200 MB of host memory (the models need 1,200 MB, the fleet "
        "has 1,000 MB): 1 model does not fit (second@1: 600 MB)"
    )
    assert "add servers to the fleet file" in line


def test_a_model_larger_than_any_server_is_named(
    isolated_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = models_file(isolated_config, [model("small", 1), model("huge", 30)])
    line = error_line(
        capsys, "placement", "plan", "--models", str(path), "--server-memory", "24GiB", code=1
    )
    assert "1 model larger than any server that can take it: huge@1 needs 30,720 MB" in line
    assert "the largest server for it holds 24,576 MB" in line


def test_a_fleet_file_naming_a_server_twice_is_refused(
    isolated_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    register(isolated_config, capsys, "one", 64)
    path = fleet(
        isolated_config, 1000, extra="  - {name: t0, url: 'http://10.9.9.9:8000', memory_mb: 5}\n"
    )
    line = error_line(capsys, "placement", "plan", "--fleet", str(path), "one@1", code=2)
    assert "server name 't0' appears twice" in line
    path = fleet(
        isolated_config, 1000, extra="  - {name: x, url: 'http://10.0.0.0:8000', memory_mb: 5}\n"
    )
    line = error_line(capsys, "placement", "plan", "--fleet", str(path), "one@1", code=2)
    assert "servers 't0' and 'x' have the same URL http://10.0.0.0:8000" in line


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ('{"models": [', "malformed JSON"),
        ("models: [a: b: c]", "malformed YAML"),
        (json.dumps({"models": [model("a", 1), model("a", 1)]}), "a@1 is listed twice"),
        (json.dumps({"models": [model("a", 0)]}), "memory_bytes: 0 is not a whole number"),
        (json.dumps({"models": [{**model("a", 1), "memory_bytes": -1}]}), "-1 is not a whole"),
        (json.dumps({"models": [model("a", 1, replicas=0)]}), "replicas: 0 is not a whole number"),
        (json.dumps({"models": [{**model("a", 1), "replica": 2}]}), "did you mean 'replicas'"),
        ('{"models": ' + "[" * 5000 + "]" * 5000 + "}", "the JSON nests too deeply"),
    ],
)
def test_a_bad_models_file_is_one_line_and_exit_2(
    isolated_config: Path, capsys: pytest.CaptureFixture[str], content: str, words: str
) -> None:
    suffix = "yaml" if content.startswith("models:") else "json"
    path = isolated_config / f"models.{suffix}"
    path.write_text(content)
    line = error_line(
        capsys, "placement", "plan", "--models", str(path), "--server-memory", "24GiB", code=2
    )
    assert words in line and str(path) in line


def test_a_models_file_too_big_or_with_too_many_models_is_refused(
    isolated_config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = models_file(isolated_config, [model(f"m{i}", 1) for i in range(5)])
    monkeypatch.setattr("mlops_cli.placement.documents.MAX_MODELS", 4)
    args = ("placement", "plan", "--models", str(path), "--server-memory", "24GiB")
    assert "5 models, more than the 4 allowed" in error_line(capsys, *args, code=2)
    monkeypatch.setattr("mlops_cli.placement.documents.MAX_DOCUMENT_BYTES", 100)
    assert "the file is more than 0 MiB" in error_line(capsys, *args, code=2)
    big_yaml = isolated_config / "models.yaml"
    big_yaml.write_text("models:\n" + "  - {name: m, version: 1, memory_bytes: 1}\n" * 8000)
    monkeypatch.undo()
    monkeypatch.setitem(app.COMMANDS, "placement", ENTRY)
    line = error_line(
        capsys, "placement", "plan", "--models", str(big_yaml), "--server-memory", "1GiB", code=2
    )
    assert "a YAML file is limited to 256 KiB" in line and "write large model lists as JSON" in line


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--server-memory", "24GiB"), "either registered versions onto a fleet"),
        (("--models", "m.json"), "--models needs --server-memory"),
        (("--models", "m.json", "--server-memory", "lots"), "--server-memory 'lots' is not a size"),
        (("--models", "m.json", "--server-memory", "0"), "--server-memory must be more than 0"),
        (("--models", "m.json", "--server-memory", "1GiB", "a@1"), "go with --fleet"),
        (("--models", "m.json", "--server-memory", "1GiB", "--replicas", "a=0"), "MODEL=N"),
        (("--fleet", "fleet.yaml"), "name the versions to plan"),
        (("--fleet", "fleet.yaml", "--server-memory", "1GiB", "a"), "go with --models"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(
    isolated_config: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], words: str
) -> None:
    models_file(isolated_config, [model("a", 1)], "m.json")
    fleet(isolated_config, 1000)
    line = error_line(capsys, "placement", "plan", *args, code=2)
    assert words in line


def test_a_bad_plan_file_is_refused(
    isolated_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = models_file(isolated_config, [model("a", 1)])
    saved = isolated_config / "plan.json"
    saved.write_text(json.dumps({"assignments": {"a@1": ["s", "s"]}}))
    line = error_line(
        capsys, "placement", "rebalance", "--models", str(path), "--server-memory", "1GiB",
        "--from", str(saved), code=2,
    )  # fmt: skip
    assert "must be a list of distinct server names" in line
    line = error_line(
        capsys, "placement", "rebalance", "--models", str(path), "--server-memory", "1GiB",
        "--from", str(isolated_config / "missing.json"), code=2,
    )  # fmt: skip
    assert "missing.json does not exist" in line
