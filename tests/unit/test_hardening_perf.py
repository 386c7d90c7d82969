"""perftest honesty (hardening issue, items 15, 16 and 26, and the Shape issue's registry defect),
on plain inputs: a step with no successful request has no latency (null, n/a; never 0), failed
requests fail the run unless --max-error-rate allows them, a baseline that matches no step is
refused, an SLA latency needs a unit, and a registry that cannot be read is named as such instead
of being taken for "no local Triton"."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mlops_cli.errors import EXIT_USAGE, UsageError
from mlops_cli.perf import report, report_text
from mlops_cli.perf.engine import StepRecord
from mlops_cli.perf.load_options import LoadOptions
from mlops_cli.perf.options import parse_percentage
from mlops_cli.perf.runner import build_document
from mlops_cli.perf.sla import parse_sla
from mlops_cli.perf.summary import summarize_step
from mlops_cli.perf.targets import TargetSpec
from mlops_cli.perf.windows import WindowStats
from tests.cli import error_line

pytestmark = pytest.mark.unit

OPTIONS = LoadOptions(mode="closed", levels=(1, 2), duration_s=2, window_s=1)


def step(level: int, *, ok: int, errors: dict[str, int] | None = None) -> dict[str, Any]:
    """A summarized step of two windows: ``ok`` answers of 2 ms and ``errors`` per window."""
    windows = []
    for index in range(2):
        window = WindowStats(index)
        for _ in range(ok):
            window.latency.record(2000)
        window.ok = window.completed = ok
        window.errors = dict(errors or {})
        failed = sum(window.errors.values())
        window.per_model = {0: [ok, failed, ok * 2000]}
        window.per_version = {(0, 1): [ok, failed]} if index == 0 else {(0, 2): [ok, failed]}
        windows.append(window)
    record = StepRecord(windows, sent=0, cpu_ns=0, measured_ns=2 * 10**9, aborted=None)
    return summarize_step(
        label=f"concurrency={level}",
        level=level,
        options=OPTIONS,
        records=[record],
        last_window=None,
        models=["answer"],
        stream=False,
    )


def document(*steps: dict[str, Any]) -> dict[str, Any]:
    spec = TargetSpec(protocol="http", url="http://127.0.0.1:1", models=("answer",))
    return build_document(spec, OPTIONS, list(steps), [], None, datetime.now(UTC))


def test_a_step_whose_every_request_failed_has_no_latency_not_zero() -> None:
    failed = step(1, ok=0, errors={"http_501": 40})
    assert failed["latency_ms"] is None
    assert [w["p50_ms"] for w in failed["windows"]] == [None, None]
    assert failed["per_model"]["answer"]["mean_ms"] is None
    doc = document(failed)
    assert doc["latency_ms"] is None
    report.validate_report(doc)  # null is what the schema says for "not measured"

    # Screens and files say n/a, and an SLA on a latency that was never measured is not met.
    assert not report.apply_sla(doc, parse_sla("p99<250ms"))
    assert doc["sla"]["failures"][0]["actual"] is None
    markdown = report.to_markdown(doc)
    assert "| concurrency=1 | 0.0 | n/a | n/a | n/a | n/a | n/a | 80 (100.00%)" in markdown
    assert "(measured n/a)" in markdown
    report.validate_report(doc)


def test_requests_per_served_version_are_reported_per_model() -> None:
    doc = document(step(1, ok=30))
    assert doc["steps"][0]["per_model"]["answer"]["versions"] == {"1": 30, "2": 30}
    report.validate_report(doc)
    assert "concurrency=1: answer served by v1 30, v2 30" in report.to_markdown(doc)


def test_failed_requests_fail_the_run_unless_allowed() -> None:
    doc = document(step(1, ok=99, errors={"http_404": 1}), step(2, ok=100))
    assert not report.apply_error_gate(doc, 0.0)
    assert doc["error_gate"]["failures"] == [
        {
            "step": "concurrency=1",
            "errors": 2,
            "requests": 200,
            "error_rate": 0.01,
            "errors_by_kind": {"http_404": 2},
        }
    ]
    report.validate_report(doc)
    assert report.apply_error_gate(doc, 0.01)  # exactly at the allowance: allowed
    assert not report.apply_error_gate(doc, 0.005)
    assert report.apply_error_gate(document(step(1, ok=10)), 0.0)  # no error, nothing to allow


def test_a_decoupled_model_tested_without_stream_gets_the_stream_hint() -> None:
    hint = report.errors_hint({"http_501": 40}, stream=False)
    assert hint is not None and "--stream" in hint
    assert "--stream" in (report.errors_hint({"grpc_unimplemented": 3}, stream=False) or "")
    assert report.errors_hint({"http_501": 40}, stream=True) is None
    assert report.errors_hint({"http_404": 40}, stream=False) is None
    assert report_text.describe_errors({"timeout": 2, "http_404": 7, "connect": 2}) == (
        "http_404 7, connect 2, timeout 2"
    )


@pytest.mark.parametrize(("text", "fraction"), [("0%", 0.0), ("0.5%", 0.005), ("100%", 1.0)])
def test_max_error_rate_is_a_percentage(text: str, fraction: float) -> None:
    assert parse_percentage(text, option="--max-error-rate") == pytest.approx(fraction)


@pytest.mark.parametrize("text", ["1", "0.01", "150%", "-1%", "x%", ""])
def test_max_error_rate_without_percent_or_out_of_range_is_refused(text: str) -> None:
    with pytest.raises(UsageError, match="is not a percentage from 0% to 100%"):
        parse_percentage(text, option="--max-error-rate")


def test_a_baseline_that_matches_no_step_is_refused_naming_both_sides() -> None:
    baseline = document(step(1, ok=10), step(2, ok=10))
    with pytest.raises(UsageError) as caught:
        report.check_baseline_steps(baseline, ["rate=100", "rate=200"], source="prev.json")
    assert caught.value.exit_code == EXIT_USAGE
    assert caught.value.message == (
        "the baseline prev.json has no step of this run: it has concurrency=1, concurrency=2; "
        "this run has rate=100, rate=200"
    )
    report.check_baseline_steps(baseline, ["concurrency=2", "concurrency=8"], source="prev.json")


def test_a_sla_latency_without_a_unit_is_refused_at_the_command_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    line = error_line(
        capsys, "perftest", "http://127.0.0.1:1/x", "--sla", "p99<250", "--requests", "1", code=2
    )
    assert "does not parse at 'p99<250': a latency needs a unit: 250ms, us or s" in line


def test_a_registry_outage_names_the_registry_not_the_local_triton(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The registry cannot be read: perftest MODEL says so, instead of "no local Triton"."""
    monkeypatch.setenv("MLOPS_REGISTRY", "dynamodb://models")
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    line = error_line(capsys, "perftest", "answer", "--requests", "1", code=1)
    assert "dynamodb://models" in line and "cannot reach" in line, line
    assert "local Triton" not in line

    broken = tmp_path / "registry.db"
    broken.write_bytes(b"this is not an sqlite database, it is a test" * 4)
    monkeypatch.setenv("MLOPS_REGISTRY", f"sqlite:///{broken}")
    line = error_line(capsys, "perftest", "answer", "--requests", "1", code=1)
    assert "registry" in line and "not a database" in line, line
    assert "local Triton" not in line


def test_an_unregistered_name_still_means_a_model_on_the_local_triton(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS_REGISTRY", f"sqlite:///{tmp_path / 'registry.db'}")
    monkeypatch.setenv("MLOPS_WORKSPACE", str(tmp_path / "workspace"))
    line = error_line(capsys, "perftest", "echo", "--requests", "1", code=1)
    assert "no local Triton is running" in line
    line = error_line(capsys, "perftest", "echo", "--tenant", "acme", "--requests", "1", code=2)
    assert "--tenant applies to registered models" in line
