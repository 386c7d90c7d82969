"""perftest exit codes that tell the truth (hardening issue, items 14, 15, 16 and 26), against real
servers: the loopback delay server (also as SageMaker runtime, answering 403 on demand) and the
real local tritonserver (a decoupled model tested without --stream; a cut-over during a perftest
of the model's registered name).

Every run is bounded: a request count or a duration of a few seconds, and a subprocess timeout."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from mlops_cli.spec.scaffold import init_model
from tests.cli import run
from tests.conftest import triton_request
from tests.integration.test_deploy import ready_models, register_answer
from tests.integration.test_scaffolds import deploy_to_local_triton
from tests.servers.delay_http import DelayServer

pytestmark = pytest.mark.integration

TEMPLATE = ("--template", '{"x": [{{i}}]}')


def mlops(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlops_cli", "perftest", *args],
        capture_output=True,
        text=True,
        timeout=90,
        env={**os.environ, **(env or {})},
        check=False,
    )


def sagemaker_env(url: str) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


# -- item 15: failed requests fail the run ---------------------------------------------------------


def test_a_sagemaker_endpoint_that_answers_403_to_everything_is_exit_1(tmp_path: Path) -> None:
    with DelayServer(delay_ms=1) as server:
        server.control(error_status=403)
        result = mlops(
            "sagemaker://my-endpoint", *TEMPLATE, "--requests", "30", "--warmup", "0s", "--json",
            "--report", str(tmp_path / "report"), env=sagemaker_env(server.url),
        )  # fmt: skip
    assert result.returncode == 1, result.stderr
    [line] = error_lines(result.stderr)
    assert "every request failed (sagemaker_AccessDeniedException " in line, line
    step = json.loads(result.stdout)["steps"][0]
    assert step["ok"] == 0 and step["errors"] >= 30
    assert step["latency_ms"] is None  # n/a: nothing was measured, not 0
    assert all(w["p99_ms"] is None for w in step["windows"])
    saved = json.loads((tmp_path / "report" / "report.json").read_text())
    assert saved["aborted"]["reason"].startswith("every request failed")
    assert "| n/a | n/a |" in (tmp_path / "report" / "summary.md").read_text()


def test_an_unreachable_sagemaker_endpoint_is_exit_1() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = mlops(
        "sagemaker://my-endpoint", *TEMPLATE, "--requests", "20", "--warmup", "0s",
        env=sagemaker_env(url),
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    [line] = error_lines(result.stderr)
    assert "every request failed (connect " in line, line
    assert "n/a" in result.stdout  # the table's latencies


def test_some_failed_requests_fail_the_run_unless_allowed() -> None:
    with DelayServer(delay_ms=1) as server:
        server.control(error_status=503, error_every=10)  # one request in ten
        common = [server.url + "/infer", "--concurrency", "2", "--requests", "200"]
        common += ["--warmup", "0s"]
        strict = mlops(*common, "--json")
        allowed = mlops(*common, "--max-error-rate", "25%")
        too_few = mlops(*common, "--max-error-rate", "2%")
        not_a_percentage = mlops(*common, "--max-error-rate", "0.2")
        sent = server.control()["requests"]
    assert strict.returncode == 3, strict.stderr
    [line] = error_lines(strict.stderr)
    assert re.search(r"failed requests \(concurrency=2: \d+ of \d+, http_503 \d+\)", line), line
    assert "above --max-error-rate 0%" in line and "--max-error-rate, e.g." in line
    document = json.loads(strict.stdout)  # one JSON document, the result
    assert document["error_gate"]["passed"] is False
    assert document["steps"][0]["latency_ms"]["p50"] > 0  # the successes were measured
    assert allowed.returncode == 0, allowed.stderr
    assert too_few.returncode == 3 and "above --max-error-rate 2%" in too_few.stderr
    assert not_a_percentage.returncode == 2
    assert "'0.2' is not a percentage" in not_a_percentage.stderr
    assert sent == 3 * 200  # the refused option sent nothing: only the three runs


def test_a_decoupled_model_without_stream_is_exit_1_with_the_stream_hint(
    local_triton: Any, tmp_path: Path
) -> None:
    model_dir = init_model(tmp_path / "toy-lm", template="triton-python-stream").path
    url, name = deploy_to_local_triton(local_triton, model_dir, tmp_path / "store")
    grpc = f"grpc://127.0.0.1:{local_triton.read_state().grpc_port}"
    template = json.dumps(
        {
            "inputs": [
                {"name": "prompt", "datatype": "BYTES", "shape": [1], "data": ["Tell me"]},
                {"name": "max_tokens", "datatype": "INT32", "shape": [1], "data": [3]},
            ]
        }
    )
    for target, kind in ((url, "http_501"), (grpc, "grpc_unimplemented")):
        result = mlops(target, "--model", name, "--template", template, "--requests", "10",
                       "--warmup", "0s", "--json")  # fmt: skip
        assert result.returncode == 1, result.stderr
        [line] = error_lines(result.stderr)
        assert f"every request failed ({kind} " in line, line
        assert "test it with --stream" in line
        assert json.loads(result.stdout)["steps"][0]["latency_ms"] is None

    streamed = mlops(url, "--model", name, "--template", template, "--requests", "10",
                     "--warmup", "0s", "--stream")  # fmt: skip
    assert streamed.returncode == 0, streamed.stderr


# -- item 16: a baseline that compares nothing -----------------------------------------------------


def test_a_baseline_that_matches_no_step_is_exit_2_before_any_load(tmp_path: Path) -> None:
    out = tmp_path / "report"
    with DelayServer(delay_ms=1) as server:
        first = mlops(server.url + "/infer", "--concurrency", "1,2", "--requests", "20",
                      "--warmup", "0s", "--report", str(out), "--quiet")  # fmt: skip
        assert first.returncode == 0, first.stderr
        before = server.control()["requests"]
        other = mlops(server.url + "/infer", "--rate", "50", "--requests", "20",
                      "--baseline", str(out / "report.json"))  # fmt: skip
        after = server.control()["requests"]
    assert other.returncode == 2, other.stderr
    [line] = error_lines(other.stderr)
    assert "has no step of this run: it has concurrency=1, concurrency=2; this run has rate=50" in (
        line
    )
    assert after == before  # refused before any load


# -- item 26: live progress with --json -----------------------------------------------------------


def test_json_output_keeps_live_progress_on_stderr() -> None:
    with DelayServer(delay_ms=1) as server:
        result = mlops(server.url + "/infer", "--duration", "1s", "--window", "0.5s",
                       "--warmup", "0s", "--json")  # fmt: skip
        quiet = mlops(server.url + "/infer", "--duration", "0.5s", "--window", "0.5s",
                      "--warmup", "0s", "--json", "--quiet")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["steps"][0]["errors"] == 0
    assert re.search(r"^concurrency=1 window 1: [\d,]+ req/s, p50 ", result.stderr, re.M)
    assert "concurrency=1 window 2:" in result.stderr
    assert quiet.returncode == 0 and "window" not in quiet.stderr


def test_help_describes_every_kind_of_target() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mlops_cli", "perftest", "--help"],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "A registered model (NAME, NAME@ALIAS, NAME@VERSION), followed through its routing" in (
        text
    )
    assert "sagemaker://ENDPOINT" in text and "--max-error-rate" in text


# -- item 14: a perftest by name follows the cut-over ----------------------------------------------


@pytest.fixture
def env(local_triton: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The session's local Triton as this test's local target; a registry and store of its own."""
    monkeypatch.setenv("MLOPS_WORKSPACE", str(local_triton.workspace.root))
    monkeypatch.setenv("MLOPS_REGISTRY", f"sqlite:///{tmp_path / 'registry.db'}")
    monkeypatch.setenv("MLOPS_STORE", f"file://{tmp_path / 'store'}")
    return local_triton


def served(server: Any, triton_name: str) -> int:
    stats: Any = triton_request(server.read_state().http_url, f"/v2/models/{triton_name}/stats")
    return int(stats["model_stats"][0]["inference_stats"]["success"]["count"])


def test_a_perftest_of_a_model_name_follows_a_cut_over(
    env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """v1 serves the name; a perftest of the name runs (bounded: 8 s); v2 is deployed and takes
    the name meanwhile, and v1 is unloaded after the drain. No request fails, and the report
    counts requests served by each version."""
    register_answer(capsys, tmp_path, 1, alias="production")
    run(capsys, "deploy", "answer@1")
    register_answer(capsys, tmp_path, 2)
    perftest = subprocess.Popen(
        [sys.executable, "-m", "mlops_cli", "perftest", "answer", "--concurrency", "2",
         "--duration", "8s", "--warmup", "0.2s", "--window", "0.5s", *TEMPLATE, "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while served(env, "answer-v1") < 50 and time.monotonic() < deadline:
            assert perftest.poll() is None, perftest.communicate()
            time.sleep(0.1)
        run(capsys, "deploy", "answer@2")  # switches the alias, drains, unloads v1
        assert ready_models(env) == {"answer-v2"}
        still_running = perftest.poll() is None
        out, err = perftest.communicate(timeout=60)
    finally:
        if perftest.poll() is None:
            perftest.kill()
            perftest.wait()
    assert perftest.returncode == 0, err
    assert still_running, "the perftest ended before the cut-over: nothing was shown"
    step = json.loads(out)["steps"][0]
    assert step["errors"] == 0, step["errors_by_kind"]
    versions = step["per_model"]["answer"]["versions"]
    assert set(versions) == {"1", "2"} and min(versions.values()) > 0, versions
    assert sum(versions.values()) == step["requests"]
