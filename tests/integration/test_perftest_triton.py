"""`mlops perftest` against the real local tritonserver: KServe v2 over HTTP and gRPC with payloads
synthesized from the model's metadata, streaming through ``generate_stream`` and the gRPC stream,
and payloads that do not fit the model refused before any load."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from mlops_cli.perf.load_options import LoadOptions
from mlops_cli.perf.runner import run_perftest
from mlops_cli.perf.targets import TargetSpec
from mlops_cli.spec.scaffold import init_model
from tests.conftest import install_fixture_model, triton_request
from tests.integration.test_scaffolds import deploy_to_local_triton, expected_tokens

pytestmark = pytest.mark.integration

SHORT = LoadOptions(mode="closed", levels=(2,), duration_s=0.6, warmup_s=0.2, window_s=0.3)


def successes(metrics_port: int, model: str) -> float:
    """Triton's own count of successful requests for ``model`` (Prometheus metrics)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as r:
        text = r.read().decode()
    pattern = rf'^nv_inference_request_success\{{model="{re.escape(model)}",version="1"\}} (\S+)$'
    return sum(float(m) for m in re.findall(pattern, text, flags=re.M))


@pytest.fixture
def echo(local_triton: Any) -> Any:
    state = local_triton.read_state()
    install_fixture_model(Path(state.model_repository), "echo")
    triton_request(state.http_url, "/v2/repository/models/echo/load", {})
    return state


def mlops(workspace: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlops_cli", "--set", f"workspace={workspace}", "perftest", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_http_and_grpc_load_reaches_triton_with_synthesized_payloads(echo: Any) -> None:
    for protocol, url in (
        ("http", echo.http_url),
        ("grpc", f"grpc://127.0.0.1:{echo.grpc_port}"),
    ):
        before = successes(echo.metrics_port, "echo")
        doc = run_perftest(TargetSpec(protocol=protocol, url=url, models=("echo",)), SHORT)
        step = doc["steps"][0]
        assert step["errors"] == 0, step["errors_by_kind"]
        assert step["ok"] > 20
        assert 0 < step["latency_ms"]["p50"] <= step["latency_ms"]["p99"]
        # Every request we counted, and the warmup's, really reached Triton and succeeded.
        assert successes(echo.metrics_port, "echo") - before >= step["ok"]


def test_a_model_name_uses_the_running_local_triton(echo: Any, local_triton: Any) -> None:
    workspace = local_triton.workspace.root
    result = mlops(workspace, "echo", "--requests", "40", "--warmup", "0s", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["target"]["url"] == echo.http_url
    assert summary["steps"][0]["ok"] >= 40 and summary["errors"] == 0

    missing = mlops(workspace, "no-such-model", "--requests", "5")
    assert missing.returncode == 1
    assert "no ready model 'no-such-model'" in missing.stderr


def test_a_payload_that_does_not_fit_the_signature_is_refused(
    echo: Any, local_triton: Any, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        json.dumps({"inputs": [{"name": "z", "datatype": "FP32", "shape": [2], "data": [1, 2]}]})
        + "\n"
    )
    before = successes(echo.metrics_port, "echo")
    result = mlops(local_triton.workspace.root, "echo", "--payload", f"@{bad}", "--requests", "5")
    assert result.returncode == 2
    assert "unknown input(s) z and missing input(s) x for model 'echo'" in result.stderr
    assert "x FP32 [-1]" in result.stderr
    assert successes(echo.metrics_port, "echo") == before  # nothing was sent


def test_streaming_time_to_first_token_and_token_counts(local_triton: Any, tmp_path: Path) -> None:
    model_dir = init_model(tmp_path / "toy-lm", template="triton-python-stream").path
    url, name = deploy_to_local_triton(local_triton, model_dir, tmp_path / "store")
    state = local_triton.read_state()
    prompt = "Tell me what the"
    expected = len(expected_tokens(model_dir, prompt, 5))
    assert expected == 5
    template = json.dumps(
        {
            "inputs": [
                {"name": "prompt", "datatype": "BYTES", "shape": [1], "data": [prompt]},
                {"name": "max_tokens", "datatype": "INT32", "shape": [1], "data": [5]},
            ]
        }
    )
    from mlops_cli.perf.payloads import from_template

    for protocol, address in (("http", url), ("grpc", f"grpc://127.0.0.1:{state.grpc_port}")):
        spec = TargetSpec(protocol=protocol, url=address, models=(name,), stream=True)
        doc = run_perftest(spec, SHORT, payloads=from_template(template))
        step = doc["steps"][0]
        assert step["errors"] == 0, (protocol, step["errors_by_kind"])
        stream = step["stream"]
        assert stream["tokens"] == expected * step["ok"], protocol
        assert stream["tokens_per_request"] == expected
        assert 0 < stream["ttft_ms"]["p50"] < step["latency_ms"]["p50"], protocol
        assert stream["itl_ms"]["p50"] >= 0
        assert stream["tokens_per_s"] > 0

    # Synthesized from the signature: max_tokens is required by the model and is filled in.
    doc = run_perftest(TargetSpec(protocol="http", url=url, models=(name,), stream=True), SHORT)
    assert doc["steps"][0]["errors"] == 0
    assert doc["steps"][0]["stream"]["tokens"] > 0
