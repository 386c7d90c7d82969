"""A self-contained HTML report: inline SVG plots drawn here, a few lines of inline script for
hover read-outs, no external resources (it opens from a CI artifact with no network)."""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from typing import Any

from mlops_cli.perf.histogram import Histogram
from mlops_cli.perf.report_text import (
    cold_loads,
    describe_errors,
    latency_text,
    measured_text,
    served_versions,
    tenant_rows,
)

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
Series = tuple[str, list[tuple[float, float]]]

_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.warn { color: #b35900; } .fail { color: #c00; font-weight: bold; } .ok { color: #080; }
figure { display: inline-block; margin: 0 1em 1em 0; }
figcaption { font-weight: bold; }
#readout { position: fixed; right: 1em; top: 1em; background: #fffbe6; border: 1px solid #ccc;
  padding: 4px 8px; display: none; }
"""

_SCRIPT = """
(function () {
  var box = document.getElementById("readout");
  document.querySelectorAll("circle[data-v]").forEach(function (dot) {
    dot.addEventListener("mouseenter", function () {
      box.textContent = dot.getAttribute("data-v");
      box.style.display = "block";
    });
    dot.addEventListener("mouseleave", function () { box.style.display = "none"; });
  });
  document.getElementById("generated").textContent =
    "steps: " + JSON.parse(document.getElementById("summary").textContent).steps;
})();
"""


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high <= low:
        high = low + 1
    raw = (high - low) / count
    step = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if raw <= factor * step:
            step *= factor
            break
    first = math.floor(low / step) * step
    return [first + i * step for i in range(count + 2) if first + i * step <= high + step / 2]


def line_chart(
    series: Sequence[Series],
    *,
    x_label: str,
    y_label: str,
    x_ticks: Sequence[tuple[float, str]] | None = None,
    width: int = 520,
    height: int = 300,
) -> str:
    """An SVG line chart with axes, ticks, a legend and a hover read-out per point."""
    points = [p for _, pts in series for p in pts]
    if not points:
        return f'<svg width="{width}" height="60"><text x="10" y="30">no data</text></svg>'
    left, right, top, bottom = 60, 20, 20, 45
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    x0, x1 = min(xs), max(xs)
    y0, y1 = 0.0, max(ys) * 1.05 or 1.0
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    yt = _ticks(y0, y1)
    y1 = max(y1, yt[-1])
    plot_w, plot_h = width - left - right, height - top - bottom

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * plot_w

    def sy(y: float) -> float:
        return top + plot_h - (y - y0) / (y1 - y0) * plot_h

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">']
    parts.append(
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>'
    )
    for value in yt:
        y = sy(value)
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>'
        )
        parts.append(
            f'<text x="{left - 5}" y="{y + 4:.1f}" font-size="11" text-anchor="end">{value:g}</text>'
        )
    for value, label in x_ticks or [(v, f"{v:g}") for v in _ticks(x0, x1) if x0 <= v <= x1]:
        x = sx(value)
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + plot_h}" stroke="#eee"/>'
        )
        parts.append(
            f'<text x="{x:.1f}" y="{top + plot_h + 15}" font-size="11" text-anchor="middle">'
            f"{html.escape(label)}</text>"
        )
    parts.append(
        f'<text x="{left + plot_w / 2}" y="{height - 8}" font-size="12" text-anchor="middle">'
        f"{html.escape(x_label)}</text>"
    )
    parts.append(
        f'<text transform="translate(14,{top + plot_h / 2}) rotate(-90)" font-size="12" '
        f'text-anchor="middle">{html.escape(y_label)}</text>'
    )
    for number, (name, pts) in enumerate(series):
        color = COLORS[number % len(COLORS)]
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="1.6"/>')
        for x, y in pts:
            read = html.escape(f"{name}: {y:.3f} at {x:g}", quote=True)
            parts.append(
                f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5" fill="{color}" data-v="{read}"/>'
            )
        parts.append(
            f'<text x="{left + 8}" y="{top + 14 + 14 * number}" font-size="11" fill="{color}">'
            f"{html.escape(name)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _nines(fraction: float) -> float:
    """Percentile axis of an HDR plot: 0 at p0, 1 at p90, 2 at p99, 3 at p99.9."""
    return math.log10(1 / max(1 - fraction, 1e-6))


def _figure(caption: str, svg: str) -> str:
    return f"<figure><figcaption>{html.escape(caption)}</figcaption>{svg}</figure>"


def _tenant_table(steps: list[dict[str, Any]]) -> str:
    """Requests per tenant sent through the router: the busiest tenants of each step, then the
    others added up (the JSON report has every tenant)."""
    rows = [
        "<tr>"
        + "".join(
            f"<td>{html.escape(str(cell))}</td>"
            for cell in (step["label"], name, requests, errors, versions)
        )
        + "</tr>"
        for step in steps
        for name, requests, errors, versions in tenant_rows(step)
    ]
    if not rows:
        return ""
    return (
        "<table><tr><th>step</th><th>tenant</th><th>requests</th><th>errors</th>"
        f"<th>served by</th></tr>{''.join(rows)}</table>"
    )


def to_html(document: dict[str, Any]) -> str:
    steps = document["steps"]
    target = document["target"]
    title = f"perftest: {target['protocol']} {target['url']}"
    measured = [s for s in steps if s["latency_ms"] is not None]  # no latency without a success
    sweep = [
        ("p50", [(s["throughput_rps"], s["latency_ms"]["p50"]) for s in measured]),
        ("p99", [(s["throughput_rps"], s["latency_ms"]["p99"]) for s in measured]),
    ]
    distribution = []
    for step in steps:
        hist = Histogram.from_dict(step["histogram"])
        pts = [(_nines(min(f, 0.999999)), ms) for ms, f in hist.distribution(80)]
        distribution.append((step["label"], pts))
    nines_ticks = [(0.0, "p0"), (0.301, "p50"), (1.0, "p90"), (2.0, "p99"), (3.0, "p99.9")]
    throughput_series = [
        (s["label"], [(w["start_s"], w["throughput_rps"]) for w in s["windows"]]) for s in steps
    ]
    p99_series = [
        (s["label"], [(w["start_s"], w["p99_ms"]) for w in s["windows"] if w["p99_ms"] is not None])
        for s in steps
    ]
    figures = [
        _figure(
            "Latency against throughput across the sweep",
            line_chart(sweep, x_label="throughput (req/s)", y_label="latency (ms)"),
        ),
        _figure(
            "Latency distribution",
            line_chart(
                distribution, x_label="percentile", y_label="latency (ms)", x_ticks=nines_ticks
            ),
        ),
        _figure(
            "Throughput per window",
            line_chart(throughput_series, x_label="window start (s)", y_label="req/s"),
        ),
        _figure(
            "p99 latency per window",
            line_chart(p99_series, x_label="window start (s)", y_label="p99 (ms)"),
        ),
    ]
    rows = []
    for step in steps:
        lat = step["latency_ms"] or {}
        mark = (
            ""
            if step["generator"]["rate_sustained"]
            else ' <span class="warn">⚠ rate not sustained</span>'
        )
        rows.append(
            "<tr>"
            + "".join(
                f"<td>{cell}</td>"
                for cell in (
                    html.escape(step["label"]) + mark,
                    f"{step['throughput_rps']:,.1f}",
                    *(latency_text(lat.get(k)) for k in ("p50", "p90", "p99", "p99.9", "max")),
                    f"{step['errors']} ({step['error_rate']:.2%})",
                    f"{step['generator']['cpu_us_per_request']:.1f}",
                )
            )
            + "</tr>"
        )
    verdicts = [
        f"<p>{html.escape(line)}</p>" for line in served_versions(document) + cold_loads(document)
    ]
    gate = document.get("error_gate")
    if gate and not gate["passed"]:
        verdicts += [
            f'<p class="fail">{html.escape(f["step"])}: {f["errors"]} of {f["requests"]} requests '
            f"failed ({html.escape(describe_errors(f['errors_by_kind']))})</p>"
            for f in gate["failures"]
        ]
    sla = document.get("sla")
    if sla:
        cls = "ok" if sla["passed"] else "fail"
        verdicts.append(
            f'<p class="{cls}">SLA {html.escape(sla["expression"])}: '
            f"{'met' if sla['passed'] else 'not met'}</p>"
        )
        verdicts += [
            f'<p class="fail">{html.escape(f["step"])}: {html.escape(f["term"])} '
            f"(measured {measured_text(f['actual'])})</p>"
            for f in sla["failures"]
        ]
    baseline = document.get("baseline")
    if baseline:
        verdicts.append(
            f"<p>Baseline {html.escape(baseline['file'])}: "
            f"{len(baseline['regressions'])} regression(s). {html.escape(baseline['rule'])}</p>"
        )
    verdicts += [f'<p class="warn">warning: {html.escape(w)}</p>' for w in document["warnings"]]
    if document.get("aborted"):
        verdicts.append(
            f'<p class="fail">aborted: {html.escape(document["aborted"]["reason"])}</p>'
        )
    tenants = _tenant_table(steps)
    summary = json.dumps({"steps": len(steps)})
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<link rel="icon" href="data:,"><style>{_STYLE}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p>{html.escape(document["config"]["mode"])} loop; models: {html.escape(", ".join(target["models"]) or "-")};
started {html.escape(document["started_at"])}; <span id="generated"></span></p>
{"".join(verdicts)}
<table><tr><th>step</th><th>req/s</th><th>p50 ms</th><th>p90 ms</th><th>p99 ms</th><th>p99.9 ms</th>
<th>max ms</th><th>errors</th><th>generator µs/req</th></tr>
{"".join(rows)}</table>
{tenants}
{"".join(figures)}
<div id="readout"></div>
<script type="application/json" id="summary">{summary}</script>
<script>{_SCRIPT}</script>
</body></html>
"""
