"""Cold loads in `mlops perftest router://` against a REAL router in front of a dynamic server (the
session's local tritonserver, declared with memory for 2 of 4 answer versions): each model's
latency is split between cold and warm answers exactly as the router counted them, and the loads
and evictions of the run are read from the router's /metrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.cli import run
from tests.integration.test_deploy import env, register_answer  # noqa: F401 (fixture)
from tests.servers.router import RouterClient, RouterProcess, answer_body

pytestmark = [pytest.mark.integration]

VERSIONS = 4


def _cold_requests(router: RouterProcess) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    text = RouterClient(router.url).get("/metrics")[2].decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "mlops_router_cold_requests_total"
    )


def test_perftest_splits_cold_and_warm_answers_and_reports_loads_and_evictions(
    env: Any,  # noqa: F811 (fixture)
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    state = env.read_state()
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(
        json.dumps(
            {
                "name": "dyn",
                "repository": state.model_repository,
                "servers": [
                    {"name": "dyn", "url": state.http_url, "memory_mb": 128, "dynamic": True}
                ],
            }
        )
    )
    for answer in range(1, VERSIONS + 1):
        register_answer(capsys, tmp_path, answer)
        run(capsys, "deploy", f"answer@{answer}", "--target", "triton", "--fleet", str(fleet),
            "--no-switch")  # fmt: skip
        run(capsys, "route", "set", f"t{answer}", "answer", str(answer))
    tenants = ",".join(f"t{n}" for n in range(1, VERSIONS + 1))
    registry = f"sqlite:///{tmp_path / 'registry.db'}"
    with RouterProcess(registry, "--trust-tenant-header") as router:
        # The router answers GET /v2/models/answer (perftest reads the signature so) from Triton
        # without loading an unloaded version first: a 404. Load v1 by one request until it does.
        _, headers, _ = RouterClient(router.url).infer(
            "answer", answer_body(), {"X-Tenant-Id": "t1"}
        )
        before = _cold_requests(router)
        assert before == (1 if headers.get("x-model-load") == "cold" else 0)
        document = run(
            capsys, "perftest", router.url.replace("http://", "router://"), "-m", "answer",
            "--tenants", tenants, "--tenant-distribution", "zipf:1.1", "--concurrency", "2",
            "--requests", "60", "--warmup", "0s", "--timeout", "60s",
            "--report", str(tmp_path / "report"),
        )  # fmt: skip
        cold_counted = _cold_requests(router) - before
    [step] = document["steps"]
    assert step["errors"] == 0, step["errors_by_kind"]
    load = step["per_model"]["answer"]["load"]
    assert load["cold"]["requests"] + load["warm"]["requests"] == step["requests"] >= 60
    assert load["cold"]["requests"] == cold_counted  # each X-Model-Load: cold, exactly
    assert load["cold"]["requests"] >= 1 and load["warm"]["requests"] >= 1
    # a cold answer waited for a python-backend load; a warm one did not
    assert load["cold"]["latency_ms"]["p50"] > 5 * load["warm"]["latency_ms"]["p50"]
    moved = step["model_loads"]
    # (the signature read before the run may have loaded one version already)
    assert set(moved["loads"]) <= {f"answer-v{n}" for n in range(1, VERSIONS + 1)}
    assert moved["total_loads"] >= len(step["per_model"]["answer"]["versions"]) - 1
    assert moved["total_evictions"] >= moved["total_loads"] - 2  # room for two at a time
    summary = (tmp_path / "report" / "summary.md").read_text()
    assert f"- concurrency=2: answer {load['cold']['requests']} cold of" in summary
    assert "concurrency=2: loaded answer-v" in (tmp_path / "report" / "report.html").read_text()
