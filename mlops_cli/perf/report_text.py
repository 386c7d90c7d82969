"""How a performance test's figures read in every report format (terminal, Markdown, HTML).

Shared by the report writers (:mod:`mlops_cli.perf.report`, :mod:`mlops_cli.perf.html_report`) and
the runner, so that a figure is worded the same way everywhere and no writer imports another.
"""

from __future__ import annotations

from typing import Any

TOP_TENANTS = 20  # tenants shown by name on screens and pages (the JSON report has them all)
TenantRow = tuple[str, int, int, str]  # (tenant, requests, errors, versions that served them)


def describe_errors(errors_by_kind: dict[str, int]) -> str:
    """``http_404 12, timeout 3``: the kinds, most frequent first."""
    ranked = sorted(errors_by_kind.items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{kind} {count}" for kind, count in ranked)


def served_versions(document: dict[str, Any]) -> list[str]:
    """``concurrency=4: answer served by v1 120, v2 380 (2 failed)`` for each model whose
    versions served are known, per step."""
    lines = []
    for step in document["steps"]:
        for model, entry in step["per_model"].items():
            versions = entry.get("versions")
            if versions:
                failed = entry.get("version_errors") or {}
                by_version = ", ".join(
                    f"v{v} {n}" + (f" ({failed[v]} failed)" if failed.get(v) else "")
                    for v, n in versions.items()
                )
                lines.append(f"{step['label']}: {model} served by {by_version}")
    return lines


def cold_loads(document: dict[str, Any]) -> list[str]:
    """Per step: ``concurrency=4: answer 12 cold of 60 (hit rate 80.0%), cold p50 1834.201 /
    p99 2100.000 ms, warm p50 3.100 / p99 8.000 ms`` for each model with cold requests, then
    ``concurrency=4: loaded answer-v1 3, answer-v2 2; evicted answer-v1 2`` where the router
    loaded or evicted models during the step."""
    lines = []
    for step in document["steps"]:
        for model, entry in step["per_model"].items():
            load = entry.get("load")
            if not load or not load["cold"]["requests"]:
                continue
            cold, warm = load["cold"], load["warm"]
            answered = cold["requests"] + warm["requests"]
            lines.append(
                f"{step['label']}: {model} {cold['requests']} cold of {answered} "
                f"(hit rate {load['hit_rate']:.1%}), cold {_p50_p99(cold['latency_ms'])}, "
                f"warm {_p50_p99(warm['latency_ms'])}"
            )
        moved = step.get("model_loads")
        if moved and (moved["loads"] or moved["evictions"]):
            lines.append(
                f"{step['label']}: loaded {_counts_text(moved['loads'])}; "
                f"evicted {_counts_text(moved['evictions'])}"
            )
    return lines


def _p50_p99(latency: dict[str, float] | None) -> str:
    if latency is None:
        return "n/a"
    return f"p50 {latency['p50']:.3f} / p99 {latency['p99']:.3f} ms"


def _counts_text(counts: dict[str, int]) -> str:
    """``answer-v1 3, answer-v2 2`` in name order; ``none`` when empty."""
    return ", ".join(f"{name} {n}" for name, n in counts.items()) or "none"


def tenant_rows(step: dict[str, Any], top: int = TOP_TENANTS) -> list[TenantRow]:
    """A step's tenants with the most requests first (ties by name), at most ``top`` of them,
    then one row adding up the others."""
    ranked = sorted(
        (step.get("per_tenant") or {}).items(), key=lambda item: (-item[1]["requests"], item[0])
    )
    rows = [
        (name, entry["requests"], entry["errors"], _versions_text(entry["versions"]))
        for name, entry in ranked[:top]
    ]
    rest = ranked[top:]
    if rest:
        versions: dict[str, int] = {}
        for _, entry in rest:
            for served, count in entry["versions"].items():
                versions[served] = versions.get(served, 0) + count
        rows.append(
            (
                f"others ({len(rest)} tenants)",
                sum(entry["requests"] for _, entry in rest),
                sum(entry["errors"] for _, entry in rest),
                _versions_text(versions),
            )
        )
    return rows


def _versions_text(versions: dict[str, int]) -> str:
    """``answer@1 120, answer@2 80``, the most requests first."""
    ranked = sorted(versions.items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{served} {count}" for served, count in ranked) or "-"


def served_tenants(document: dict[str, Any], top: int = TOP_TENANTS) -> list[str]:
    """``concurrency=4: tenant acme 120 requests, 0 failed, served by answer@1 120`` for the
    ``top`` tenants of each step sent through the router, and one line for the others."""
    lines = []
    for step in document["steps"]:
        for name, requests, errors, versions in tenant_rows(step, top):
            who = name if name.startswith("others (") else f"tenant {name}"
            lines.append(
                f"{step['label']}: {who} {requests} requests, {errors} failed, served by {versions}"
            )
    return lines


def measured_text(value: float | None) -> str:
    """An SLA term's measured value: n/a where it could not be measured."""
    return "n/a" if value is None else f"{value:g}"


def latency_text(value: float | None) -> str:
    """A latency in milliseconds for people: n/a where none was measured."""
    return "n/a" if value is None else f"{value:.3f}"
