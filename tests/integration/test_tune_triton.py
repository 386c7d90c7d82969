"""`mlops tune` on the REAL local tritonserver, with a model the test builds whose latency follows
from its batch size and instance count (each execute sleeps 20 ms + 1 ms per batched request), and
which refuses to load with three instances."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from mlops_cli.cli.main import main
from tests.cli import error_line, run
from tests.conftest import FIXTURES, triton_request

pytestmark = pytest.mark.integration

FAST = ("--warmup", "0.2s", "--window", "0.2s", "--max-windows", "5", "--budget", "3m")

MODEL_PY = '''"""Sleeps 20 ms + 1 ms per request in the batch on each execute; refuses three instances."""

import json
import time

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        groups = json.loads(args["model_config"]).get("instance_group") or []
        if sum(int(group.get("count", 1)) for group in groups) == 3:
            raise RuntimeError("three instances refused on purpose")

    def execute(self, requests):
        time.sleep((20.0 + 1.0 * len(requests)) / 1000.0)
        return [
            pb_utils.InferenceResponse(
                output_tensors=[
                    pb_utils.Tensor("y", pb_utils.get_input_tensor_by_name(r, "x").as_numpy() * 2)
                ]
            )
            for r in requests
        ]
'''


def sleeper(tmp_path: Path, *, batching: str = "{max_batch_size: 8, dynamic: true}") -> Path:
    """A model folder: the sleeping model, batching as given."""
    folder = tmp_path / "sleeper"
    folder.mkdir(exist_ok=True)
    (folder / "model.py").write_text(MODEL_PY)
    (folder / "mlops.yaml").write_text(
        "name: sleeper\nruntime: triton-python\nentrypoint: model.py\n"
        "inputs:\n  - {name: x, dtype: FP32, shape: [4]}\n"
        "outputs:\n  - {name: y, dtype: FP32, shape: [4]}\n"
        f"batching: {batching}\nresources: {{memory_mb: 64}}\n"
    )
    return folder


@pytest.fixture
def env(local_triton: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The session's local Triton as this test's local target; a registry and store of its own;
    `mlops tune` registered as the command line and the api register it."""
    monkeypatch.setenv("MLOPS_WORKSPACE", str(local_triton.workspace.root))
    monkeypatch.setenv("MLOPS_REGISTRY", f"sqlite:///{tmp_path / 'registry.db'}")
    monkeypatch.setenv("MLOPS_STORE", f"file://{tmp_path / 'store'}")
    yield local_triton
    # nothing of a tune is left on the server: no candidate loaded, no repository entry
    state = local_triton.read_state()
    assert not [name for name in ready_models(local_triton) if "-tune-" in name]
    assert not list(Path(state.model_repository).glob("*-tune-*"))


def tune(capsys: pytest.CaptureFixture[str], *args: str, code: int) -> tuple[Any, str]:
    """``mlops tune ARGS --json``: (the JSON document, stderr)."""
    result = main(["tune", *args, *FAST, "--json"])
    captured = capsys.readouterr()
    assert result == code, captured.err + captured.out
    return json.loads(captured.out), captured.err


def ready_models(server: Any) -> set[str]:
    index: list[dict[str, Any]] = triton_request(  # type: ignore[assignment]
        server.read_state().http_url, "/v2/repository/index", {}
    )
    return {e["name"] for e in index or [] if e.get("state") == "READY"}


@pytest.mark.slow
def test_tune_meets_the_sla_with_fewer_measurements_than_the_grid_and_its_throughput(
    env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The full grid and the coordinate search on the same space, on the same server."""
    from mlops_cli.api.tuning import tune as run_tune
    from mlops_cli.config import resolve_settings
    from mlops_cli.tune.options import TuneFlags, tune_options

    run(capsys, "register", str(sleeper(tmp_path)))
    flags = TuneFlags(
        sla="p99<80ms",
        instances="1,2,4",
        batch_sizes="1,8",
        queue_delays="0",
        preferred="none",
        max_concurrency=32,
        warmup="0.2s",
        window="0.2s",
        max_windows=5,
        budget="3m",
    )
    settings = resolve_settings()
    grid = run_tune(
        ref="sleeper@1", settings=settings, options=tune_options(replace(flags, strategy="grid"))
    ).run
    tuned = run_tune(ref="sleeper@1", settings=settings, options=tune_options(flags)).run
    assert grid.log.measured == grid.space.grid_measurements == 3 * 2 * 6
    assert grid.best is not None and tuned.best is not None and tuned.best.p99_ms is not None
    assert tuned.best.p99_ms < 80
    assert tuned.log.measured < grid.log.measured
    # The configuration found is within 10% of the grid's best: both as the grid measured it
    # (one run, so the server's drift between runs does not count) ...
    grid_best = grid.best.figures.throughput_rps
    same_config = [m for m in grid.log.measurements if m.met and m.config == tuned.best.config]
    assert max(m.figures.throughput_rps for m in same_config) >= 0.9 * grid_best
    # ... and as the search measured it itself (two runs on two shared cores: looser).
    assert tuned.best.figures.throughput_rps >= 0.8 * grid_best


def test_an_unreachable_sla_exits_3_with_the_closest_and_disturbs_nothing_deployed(
    env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "register", str(FIXTURES / "models" / "answer"))
    run(capsys, "deploy", "answer@1")
    run(capsys, "register", str(sleeper(tmp_path)))
    document, err = tune(
        capsys,
        "sleeper@1", "--sla", "p99<5ms", "--instances", "1,2", "--batch-sizes", "1,8",
        "--queue-delays", "0", "--preferred", "none", "--max-concurrency", "8",
        code=3,
    )  # fmt: skip
    assert document["met"] is False and document["best"] is None
    closest = document["closest"]
    assert closest["status"] == "missed" and closest["missed"][0].startswith("p99<5ms (measured")
    assert "ms over)" in closest["missed"][0]
    assert document["measurements"] < document["grid_measurements"]
    assert "error: no configuration meets p99<5ms; the closest, instances=" in err
    # what was deployed still serves, unchanged
    assert "answer-v1" in ready_models(env)
    answer = run(capsys, "invoke", "answer@1", "--input", '{"x": [1]}')
    assert answer["outputs"]["y"] == [1.0]


def test_apply_registers_a_version_whose_config_carries_the_chosen_values(
    env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as pb

    # its own configuration batches nothing: the search has something to find
    run(capsys, "register", str(sleeper(tmp_path, batching="{max_batch_size: 8}")))
    document, _ = tune(
        capsys,
        "sleeper@1", "--sla", "p99<100ms", "--instances", "1,2", "--batch-sizes", "1,8",
        "--queue-delays", "0,1ms", "--preferred", "none", "--max-concurrency", "16",
        "--traffic", "2000rps", "--apply", "--report", str(tmp_path / "report"),
        code=0,
    )  # fmt: skip
    best = document["best"]["config"]
    assert best["max_batch_size"] == 8 and best["dynamic_batching"]
    applied = document["applied"]
    assert applied["version"] == 2
    assert applied["lineage"]["tuned_from"]["version"] == 1
    assert applied["lineage"]["tune"]["sla"] == "p99<100ms"
    cost = document["cost"]["candidates"][0]["cost"]
    assert cost["servers"] >= 1 and cost["per_million"] > 0

    run(capsys, "deploy", "sleeper@2")
    folder = Path(env.read_state().model_repository) / "sleeper-v2"
    config = text_format.Parse((folder / "config.pbtxt").read_text(), pb.ModelConfig())
    assert config.instance_group[0].count == best["instances"]
    assert config.max_batch_size == 8
    assert config.dynamic_batching.max_queue_delay_microseconds == best["max_queue_delay_us"]
    assert list(config.dynamic_batching.preferred_batch_size) == best["preferred_batch_sizes"]
    served = triton_request(env.read_state().http_url, "/v2/models/sleeper-v2/config")
    assert served["instance_group"][0]["count"] == best["instances"]  # type: ignore[index]
    report = tmp_path / "report"
    assert "## Every candidate" in (report / "summary.md").read_text()
    assert json.loads((report / "tune.json").read_text())["best"] == document["best"]
    run(capsys, "undeploy", "sleeper")


def test_a_candidate_that_fails_to_load_is_recorded_and_the_search_goes_on(
    env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "register", str(sleeper(tmp_path)))
    document, err = tune(
        capsys,
        "sleeper@1", "--sla", "p99<100ms", "--instances", "2,3,4", "--batch-sizes", "8",
        "--queue-delays", "0", "--preferred", "none", "--max-concurrency", "32",
        code=0,
    )  # fmt: skip
    candidates = document["candidates"]
    [failed] = [c for c in candidates if c["status"] == "failed"]
    assert failed["config"]["instances"] == 3 and failed["level"] is None
    assert "three instances refused on purpose" in failed["reason"]
    assert "did not load" in err
    later = candidates[failed["index"] + 1 :]
    assert later and all(c["config"]["instances"] == 4 for c in later)
    assert document["best"]["config"]["instances"] == 4
    assert document["load_failures"] == 1


def test_a_model_without_batching_skips_the_batch_dimensions_and_says_so(
    env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "register", str(sleeper(tmp_path, batching="{max_batch_size: 0}")))
    document, _ = tune(
        capsys,
        "sleeper@1", "--sla", "p99<200ms", "--instances", "1,2", "--batch-sizes", "1,8",
        "--concurrency", "2",
        code=0,
    )  # fmt: skip
    [note, fixed] = document["notes"]
    assert "sleeper does not batch" in note and "--batch-sizes ignored" in note
    assert "fixed at 2" in fixed
    assert {c["config"]["max_batch_size"] for c in document["candidates"]} == {0}
    assert document["space"]["max_batch_size"] == [0]
    assert document["measurements"] == 2  # one per instance count, at the one concurrency


def test_tune_on_a_named_server_of_a_fleet(
    env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The session's server, described by a fleet file (its repository, its URL)."""
    state = env.read_state()
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(
        f"name: bench\nrepository: {state.model_repository}\n"
        f"servers:\n  - {{name: box-a, url: '{state.http_url}', memory_mb: 4096}}\n"
    )
    run(capsys, "register", str(sleeper(tmp_path)))
    document, _ = tune(
        capsys,
        "sleeper@1", "--sla", "p99<200ms", "--fleet", str(fleet), "--server", "box-a",
        "--instances", "1,2", "--batch-sizes", "8", "--queue-delays", "0", "--preferred", "none",
        "--concurrency", "4",
        code=0,
    )  # fmt: skip
    assert document["server"] == {
        "name": "box-a",
        "url": state.http_url,
        "repository": state.model_repository,
    }
    assert document["met"] and document["measurements"] == 2
    assert "no server 'box-b'" in error_line(
        capsys, "tune", "sleeper@1", "--sla", "p99<1s", "--fleet", str(fleet), "--server", "box-b",
        code=2,
    )  # fmt: skip
