"""The report: the verdicts (failed requests against ``--max-error-rate``, the SLA, the baseline
comparison) added to the document, then written as JSON (validated by
``schemas/perftest-report.schema.json``), CSV, a Markdown summary for a pull request and a
self-contained HTML page.

A failed request fails the run unless ``--max-error-rate`` allows it, as in the load testers users
know; a baseline is only a gate when at least one of its steps is run again."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from mlops_cli.errors import UsageError, ValidationError, WorkspaceError
from mlops_cli.perf.report_text import (
    cold_loads,
    describe_errors,
    latency_text,
    measured_text,
    served_versions,
    tenant_rows,
)
from mlops_cli.perf.sla import Sla

# A step regressed against the baseline when, beyond REGRESSION_TOLERANCE (relative):
# p50 or p99 latency rose, or throughput fell; or its error rate rose by more than ERROR_RATE_SLACK
# (absolute). Latency changes below LATENCY_FLOOR_MS are noise whatever their ratio.
REGRESSION_TOLERANCE = 0.10
ERROR_RATE_SLACK = 0.001
LATENCY_FLOOR_MS = 0.05
CSV_COLUMNS = (
    "label", "mode", "concurrency", "rate", "duration_s", "requests", "ok", "errors", "error_rate",
    "throughput_rps", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "p99.9_ms", "max_ms", "mean_ms",
    "ttft_p50_ms", "ttft_p99_ms", "itl_p50_ms", "itl_p99_ms", "tokens_per_s",
    "cpu_us_per_request", "rate_sustained", "stable",
)  # fmt: skip


def apply_sla(document: dict[str, Any], sla: Sla) -> bool:
    """Evaluate ``sla`` on every step; record the verdict in the document; True when met."""
    failures = []
    for step in document["steps"]:
        for failure in sla.failures(step):
            failures.append({"step": step["label"], **failure})
    passed = not failures and bool(document["steps"])
    document["sla"] = {
        "expression": sla.text,
        "terms": [term.text for term in sla.terms],
        "passed": passed,
        "failures": failures,
    }
    return passed


# Error kinds with which Triton answers a plain (non-streaming) request to a decoupled model:
# its "unsupported" status, HTTP 501 or gRPC UNIMPLEMENTED.
DECOUPLED_KINDS = ("http_501", "grpc_unimplemented")


def errors_hint(errors_by_kind: dict[str, int], *, stream: bool) -> str | None:
    """The next thing to try for these errors, where the errors say it."""
    if not stream and any(kind in errors_by_kind for kind in DECOUPLED_KINDS):
        return (
            "the server answered 'not supported', as Triton does to a plain request to a "
            "decoupled (streaming) model: test it with --stream"
        )
    return None


def apply_error_gate(document: dict[str, Any], max_error_rate: float) -> bool:
    """Record which steps had failed requests beyond ``max_error_rate`` (a fraction; 0: any
    failed request fails the run); True when none did."""
    failures = [
        {
            "step": step["label"],
            "errors": step["errors"],
            "requests": step["requests"],
            "error_rate": step["error_rate"],
            "errors_by_kind": step["errors_by_kind"],
        }
        for step in document["steps"]
        if step["errors"] and step["error_rate"] > max_error_rate
    ]
    document["error_gate"] = {
        "max_error_rate": max_error_rate,
        "passed": not failures,
        "failures": failures,
    }
    return not failures


def check_baseline_steps(baseline: dict[str, Any], labels: list[str], *, source: str) -> None:
    """Refuse a baseline none of whose steps this run has (a comparison of nothing passes
    silently otherwise); name the steps on each side."""
    before = [step["label"] for step in baseline["steps"]]
    if not set(before) & set(labels):
        raise UsageError(
            f"the baseline {source} has no step of this run: it has "
            f"{', '.join(before) or 'no steps'}; this run has {', '.join(labels)}",
            hint="run the baseline's load levels (the same --concurrency or --rate), "
            "or give a baseline of this kind of run",
        )


def regression_rule(tolerance: float = REGRESSION_TOLERANCE) -> str:
    return (
        f"a step regressed when p50 or p99 latency rose by more than {tolerance:.0%} (and "
        f"{LATENCY_FLOOR_MS} ms), throughput fell by more than {tolerance:.0%}, or the error rate "
        f"rose by more than {ERROR_RATE_SLACK:.1%} (absolute); steps are matched by label"
    )


def load_baseline(path: Path) -> dict[str, Any]:
    try:
        document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValidationError(
            f"cannot read the baseline: {exc.strerror}", source=str(path)
        ) from exc
    except json.JSONDecodeError as exc:
        raise ValidationError(f"the baseline is not JSON: {exc.msg}", source=str(path)) from exc
    validate_report(document, source=str(path))
    return document


def compare_baseline(
    document: dict[str, Any],
    baseline: dict[str, Any],
    *,
    source: str,
    tolerance: float = REGRESSION_TOLERANCE,
) -> list[dict[str, Any]]:
    """Compare each step with the baseline's step of the same label; record and return the
    regressions."""
    before = {step["label"]: step for step in baseline["steps"]}
    compared, regressions = [], []
    for step in document["steps"]:
        old = before.get(step["label"])
        if old is None:
            continue
        changes = {}
        new_latency, old_latency = step["latency_ms"] or {}, old["latency_ms"] or {}
        for metric, new_value, old_value, worse_when in (
            ("p50_ms", new_latency.get("p50"), old_latency.get("p50"), "higher"),
            ("p99_ms", new_latency.get("p99"), old_latency.get("p99"), "higher"),
            ("throughput_rps", step["throughput_rps"], old["throughput_rps"], "lower"),
            ("error_rate", step["error_rate"], old["error_rate"], "higher"),
        ):
            if new_value is None or old_value is None:
                continue  # a latency with no successful request; the error rate tells
            change = (new_value - old_value) / old_value if old_value else 0.0
            if metric == "error_rate":
                regressed = new_value - old_value > ERROR_RATE_SLACK
            elif worse_when == "higher":
                regressed = change > tolerance and new_value - old_value > LATENCY_FLOOR_MS
            else:
                regressed = change < -tolerance
            changes[metric] = {
                "baseline": old_value,
                "current": new_value,
                "change": round(change, 4),
                "regressed": regressed,
            }
            if regressed:
                regressions.append(
                    {
                        "step": step["label"],
                        "metric": metric,
                        "baseline": old_value,
                        "current": new_value,
                        "change": round(change, 4),
                    }
                )
        compared.append({"step": step["label"], "changes": changes})
    document["baseline"] = {
        "file": source,
        "rule": regression_rule(tolerance),
        "compared": compared,
        "regressions": regressions,
    }
    return regressions


def validate_report(document: dict[str, Any], *, source: str = "<report>") -> None:
    from mlops_cli.validation import validate_document

    validate_document(document, "perftest-report", source=source)


def to_csv(document: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for step in document["steps"]:
        lat = step["latency_ms"] or dict.fromkeys(
            ("p50", "p90", "p95", "p99", "p99.9", "max", "mean"), ""
        )
        stream = step.get("stream") or {}
        ttft, itl = stream.get("ttft_ms") or {}, stream.get("itl_ms") or {}
        writer.writerow(
            [
                step["label"], step["mode"], step["concurrency"], step["rate"], step["duration_s"],
                step["requests"], step["ok"], step["errors"], f"{step['error_rate']:.6f}",
                step["throughput_rps"], lat["p50"], lat["p90"], lat["p95"], lat["p99"],
                lat["p99.9"], lat["max"], lat["mean"], ttft.get("p50", ""), ttft.get("p99", ""),
                itl.get("p50", ""), itl.get("p99", ""), stream.get("tokens_per_s", ""),
                step["generator"]["cpu_us_per_request"], step["generator"]["rate_sustained"],
                step["stable"],
            ]
        )  # fmt: skip
    return out.getvalue()


def _mark(step: dict[str, Any]) -> str:
    return "" if step["generator"]["rate_sustained"] else " ⚠"


def to_markdown(document: dict[str, Any]) -> str:
    """A summary to paste into a pull request."""
    target = document["target"]
    models = ", ".join(target["models"]) or "-"
    lines = [
        f"### Performance: {target['protocol']} {target['url']} (models: {models})",
        "",
        f"{document['config']['mode']} loop, window {document['config']['window_s']} s, "
        f"warmup {document['config']['warmup_s']} s, {document['config']['workers']} worker(s); "
        f"{document['started_at']}",
        "",
        "| step | throughput (req/s) | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | errors | stable |",
        "|---|---:|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for step in document["steps"]:
        lat = step["latency_ms"] or {}
        cells = " | ".join(latency_text(lat.get(k)) for k in ("p50", "p90", "p99", "p99.9", "max"))
        lines.append(
            f"| {step['label']}{_mark(step)} | {step['throughput_rps']:,.1f} | {cells} | "
            f"{step['errors']} ({step['error_rate']:.2%}) | {'yes' if step['stable'] else 'no'} |"
        )
    streams = [s for s in document["steps"] if s.get("stream")]
    if streams:
        lines += ["", "| step | TTFT p50 ms | TTFT p99 ms | ITL p50 ms | ITL p99 ms | tokens/s |",
                  "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
        for step in streams:
            s = step["stream"]
            ttft, itl = s["ttft_ms"] or {}, s["itl_ms"] or {}
            lines.append(
                f"| {step['label']} | {latency_text(ttft.get('p50'))} | "
                f"{latency_text(ttft.get('p99'))} | {latency_text(itl.get('p50'))} | "
                f"{latency_text(itl.get('p99'))} | {s['tokens_per_s']:,.1f} |"
            )
    served = served_versions(document) + cold_loads(document)
    if served:
        lines += [""] + [f"- {line}" for line in served]
    tenants = [
        f"| {step['label']} | {name} | {requests} | {errors} | {versions} |"
        for step in document["steps"]
        for name, requests, errors, versions in tenant_rows(step)
    ]
    if tenants:
        lines += [
            "",
            "| step | tenant | requests | errors | served by |",
            "|---|---|---:|---:|---|",
        ]
        lines += tenants
    if any(not s["generator"]["rate_sustained"] for s in document["steps"]):
        lines += ["", "⚠ the generator could not sustain the requested rate in the marked steps."]
    gate = document.get("error_gate")
    if gate and not gate["passed"]:
        lines += ["", f"Failed requests above the allowed {gate['max_error_rate']:.2%}:"]
        lines += [
            f"- {f['step']}: {f['errors']} of {f['requests']} "
            f"({describe_errors(f['errors_by_kind'])})"
            for f in gate["failures"]
        ]
    sla = document.get("sla")
    if sla:
        verdict = "**met**" if sla["passed"] else "**NOT met**"
        lines += ["", f"SLA `{sla['expression']}`: {verdict}"]
        lines += [
            f"- {f['step']}: `{f['term']}` (measured {measured_text(f['actual'])})"
            for f in sla["failures"]
        ]
    baseline = document.get("baseline")
    if baseline:
        regressions = baseline["regressions"]
        lines += ["", f"Baseline `{baseline['file']}`: {len(regressions)} regression(s)."]
        lines += [
            f"- {r['step']}: {r['metric']} {r['baseline']:g} → {r['current']:g} ({r['change']:+.1%})"
            for r in regressions
        ]
    for warning in document["warnings"]:
        lines.append(f"- warning: {warning}")
    if document.get("aborted"):
        lines += [
            "",
            f"**Aborted** at {document['aborted']['step']}: {document['aborted']['reason']}",
        ]
    return "\n".join(lines) + "\n"


def write_reports(document: dict[str, Any], directory: Path) -> dict[str, str]:
    """Write report.json, report.csv, summary.md and report.html; return their paths by format."""
    from mlops_cli.perf.html_report import to_html

    validate_report(document)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        files = {
            "json": directory / "report.json",
            "csv": directory / "report.csv",
            "markdown": directory / "summary.md",
            "html": directory / "report.html",
        }
        files["json"].write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        files["csv"].write_text(to_csv(document), encoding="utf-8")
        files["markdown"].write_text(to_markdown(document), encoding="utf-8")
        files["html"].write_text(to_html(document), encoding="utf-8")
    except OSError as exc:
        raise WorkspaceError(f"cannot write the report to {directory}: {exc.strerror}") from exc
    return {kind: str(path) for kind, path in files.items()}
