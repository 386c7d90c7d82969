"""perftest reports: the document validates against its schema; SLA verdicts, baseline regressions,
CSV, Markdown and HTML are derived from it."""

from __future__ import annotations

import copy
import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from mlops_cli.errors import ValidationError
from mlops_cli.perf import report
from mlops_cli.perf.engine import StepRecord
from mlops_cli.perf.load_options import LoadOptions
from mlops_cli.perf.runner import build_document
from mlops_cli.perf.sla import parse_sla
from mlops_cli.perf.summary import summarize_step
from mlops_cli.perf.targets import TargetSpec
from mlops_cli.perf.windows import WindowStats
from mlops_cli.resources import load_schema

pytestmark = pytest.mark.unit


def fake_step(
    options: LoadOptions, level: float, latency_us: int, ok: int, errors: int = 0
) -> dict[str, Any]:
    windows = []
    for index in range(3):
        window = WindowStats(index)
        for n in range(ok):
            window.latency.record(latency_us + n % 50)
        window.ok = window.completed = ok
        if errors:
            window.errors = {"http_503": errors}
        window.per_model = {0: [ok, errors, ok * latency_us]}
        windows.append(window)
    record = StepRecord(
        windows, sent=3 * (ok + errors), cpu_ns=10**8, measured_ns=3 * 10**9, aborted=None
    )
    return summarize_step(
        label=f"concurrency={int(level)}",
        level=level,
        options=options,
        records=[record],
        last_window=None,
        models=["echo"],
        stream=False,
    )


def document(latency_us: int = 2000, ok: int = 400, errors: int = 0) -> dict[str, Any]:
    options = LoadOptions(mode="closed", levels=(1, 4), duration_s=3, window_s=1)
    spec = TargetSpec(protocol="http", url="http://127.0.0.1:1", models=("echo",))
    steps = [
        fake_step(options, 1, latency_us, ok, errors),
        fake_step(options, 4, latency_us * 2, ok * 2, errors),
    ]
    return build_document(spec, options, steps, [], None, datetime.now(UTC))


def test_the_document_validates_and_repeats_the_last_step_at_the_top() -> None:
    doc = document()
    jsonschema.validate(doc, load_schema("perftest-report"))
    report.validate_report(doc)
    assert doc["throughput_rps"] == doc["steps"][-1]["throughput_rps"] == 800.0
    assert doc["latency_ms"]["p50"] == doc["steps"][-1]["latency_ms"]["p50"]
    assert doc["errors"] == 0
    assert doc["steps"][0]["stable"] is True
    broken = copy.deepcopy(doc)
    broken["steps"][0]["latency"] = 1
    with pytest.raises(ValidationError, match="unknown key"):
        report.validate_report(broken)


def test_sla_verdict_is_recorded_per_step() -> None:
    doc = document()
    assert report.apply_sla(doc, parse_sla("p99<10ms,throughput>300"))
    assert doc["sla"]["passed"] and doc["sla"]["failures"] == []
    assert not report.apply_sla(doc, parse_sla("p99<3ms"))
    assert [f["step"] for f in doc["sla"]["failures"]] == ["concurrency=4"]
    report.validate_report(doc)


def test_baseline_flags_regressions_by_the_stated_rule() -> None:
    before = document(latency_us=2000, ok=400)
    same = document(latency_us=2050, ok=390)  # +2.5% latency, -2.5% throughput: noise
    assert report.compare_baseline(same, before, source="prev.json") == []
    worse = document(latency_us=3000, ok=300, errors=5)
    regressions = report.compare_baseline(worse, before, source="prev.json")
    assert {(r["step"], r["metric"]) for r in regressions} >= {
        ("concurrency=1", "p50_ms"),
        ("concurrency=1", "p99_ms"),
        ("concurrency=1", "throughput_rps"),
        ("concurrency=1", "error_rate"),
    }
    assert "10%" in worse["baseline"]["rule"]
    report.validate_report(worse)


def test_written_reports_agree_with_the_document(tmp_path: Path) -> None:
    doc = document(errors=2)
    report.apply_sla(doc, parse_sla("error_rate<0.1%"))
    files = report.write_reports(doc, tmp_path / "out")
    assert json.loads(Path(files["json"]).read_text()) == doc
    rows = list(csv.DictReader(io.StringIO(Path(files["csv"]).read_text())))
    assert [r["label"] for r in rows] == ["concurrency=1", "concurrency=4"]
    assert float(rows[1]["throughput_rps"]) == doc["steps"][1]["throughput_rps"]
    markdown = Path(files["markdown"]).read_text()
    assert "| concurrency=4 |" in markdown and "**NOT met**" in markdown
    page = Path(files["html"]).read_text()
    assert page.count("<svg") == 4
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "").replace(
        doc["target"]["url"], ""
    )
