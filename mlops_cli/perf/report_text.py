"""How a performance test's figures read in every report format (terminal, Markdown, HTML).

Shared by the report writers (:mod:`mlops_cli.perf.report`, :mod:`mlops_cli.perf.html_report`) and
the runner, so that a figure is worded the same way everywhere and no writer imports another.
"""

from __future__ import annotations

from typing import Any


def describe_errors(errors_by_kind: dict[str, int]) -> str:
    """``http_404 12, timeout 3``: the kinds, most frequent first."""
    ranked = sorted(errors_by_kind.items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{kind} {count}" for kind, count in ranked)


def served_versions(document: dict[str, Any]) -> list[str]:
    """``concurrency=4: answer served by v1 120, v2 380`` for each model followed through its
    routing, per step."""
    lines = []
    for step in document["steps"]:
        for model, entry in step["per_model"].items():
            versions = entry.get("versions")
            if versions:
                by_version = ", ".join(f"v{v} {n}" for v, n in versions.items())
                lines.append(f"{step['label']}: {model} served by {by_version}")
    return lines


def measured_text(value: float | None) -> str:
    """An SLA term's measured value: n/a where it could not be measured."""
    return "n/a" if value is None else f"{value:g}"


def latency_text(value: float | None) -> str:
    """A latency in milliseconds for people: n/a where none was measured."""
    return "n/a" if value is None else f"{value:.3f}"
