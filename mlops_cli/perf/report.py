"""The report: SLA verdicts and baseline comparison added to the document, then written as JSON
(validated by ``schemas/perftest-report.schema.json``), CSV, a Markdown summary for a pull request
and a self-contained HTML page."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from mlops_cli.errors import ValidationError, WorkspaceError
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
        for metric, new_value, old_value, worse_when in (
            ("p50_ms", step["latency_ms"]["p50"], old["latency_ms"]["p50"], "higher"),
            ("p99_ms", step["latency_ms"]["p99"], old["latency_ms"]["p99"], "higher"),
            ("throughput_rps", step["throughput_rps"], old["throughput_rps"], "lower"),
            ("error_rate", step["error_rate"], old["error_rate"], "higher"),
        ):
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
        lat = step["latency_ms"]
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
        lat = step["latency_ms"]
        lines.append(
            f"| {step['label']}{_mark(step)} | {step['throughput_rps']:,.1f} | {lat['p50']:.3f} | "
            f"{lat['p90']:.3f} | {lat['p99']:.3f} | {lat['p99.9']:.3f} | {lat['max']:.3f} | "
            f"{step['errors']} ({step['error_rate']:.2%}) | {'yes' if step['stable'] else 'no'} |"
        )
    streams = [s for s in document["steps"] if s.get("stream")]
    if streams:
        lines += ["", "| step | TTFT p50 ms | TTFT p99 ms | ITL p50 ms | ITL p99 ms | tokens/s |",
                  "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
        for step in streams:
            s = step["stream"]
            lines.append(
                f"| {step['label']} | {s['ttft_ms']['p50']:.3f} | {s['ttft_ms']['p99']:.3f} | "
                f"{s['itl_ms']['p50']:.3f} | {s['itl_ms']['p99']:.3f} | {s['tokens_per_s']:,.1f} |"
            )
    if any(not s["generator"]["rate_sustained"] for s in document["steps"]):
        lines += ["", "⚠ the generator could not sustain the requested rate in the marked steps."]
    sla = document.get("sla")
    if sla:
        verdict = "**met**" if sla["passed"] else "**NOT met**"
        lines += ["", f"SLA `{sla['expression']}`: {verdict}"]
        lines += [
            f"- {f['step']}: `{f['term']}` (measured {f['actual']:g})" for f in sla["failures"]
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
