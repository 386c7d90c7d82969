"""The tune report: ``tune.json`` (the ``--json`` document), ``summary.md`` (for a pull request)
and ``report.html`` (self-contained like the perftest page: inline SVG, no external resources):
the verdict, the top candidates compared on cost, the throughput/latency frontier and every
candidate measured, failed ones included."""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

from mlops_cli.errors import WorkspaceError
from mlops_cli.perf.html_report import COLORS, line_chart
from mlops_cli.tune.measurement import Measurement
from mlops_cli.tune.result import TuneRun

CANDIDATE_COLUMNS = ("#", "configuration", "load", "status", "req/s", "p50 ms", "p99 ms", "notes")


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def candidate_row(run: TuneRun, m: Measurement) -> tuple[str, ...]:
    """One measurement as table cells (shared by the terminal, Markdown and HTML)."""
    latency = m.figures.latency_ms or {}
    load = "-" if m.level is None else run.space.load.label(m.level)
    notes = "; ".join(m.missed) if not m.met else ""
    if m.met and not m.figures.stable:
        notes = "not stable within the window cap"
    return (
        str(m.index + 1),
        m.config.describe(),
        load,
        m.status,
        f"{m.figures.throughput_rps:,.1f}" if m.level is not None else "-",
        _ms(latency.get("p50")),
        _ms(latency.get("p99")),
        notes,
    )


def cost_rows(run: TuneRun) -> list[tuple[str, ...]]:
    """The top candidates on cost: configuration, load, req/s per server, servers needed,
    cost per hour and per million requests."""
    currency = run.prices.currency
    rows: list[tuple[str, ...]] = []
    for costed in run.top():
        m, cost = costed.measurement, costed.cost
        rows.append(
            (
                m.config.describe(),
                run.space.load.label(m.level or 0),
                f"{cost.throughput_rps:,.1f}",
                "-" if cost.servers is None else str(cost.servers),
                f"{cost.per_hour:,.3f} {currency}",
                "n/a" if math.isinf(cost.per_million) else f"{cost.per_million:,.4f} {currency}",
            )
        )
    return rows


COST_COLUMNS = ("configuration", "load", "req/s per server", "servers", "per hour", "per 1M req")


def cost_caption(run: TuneRun) -> str:
    traffic = (
        f"for {run.traffic_rps:g} req/s of traffic" if run.traffic_rps else "for one busy server"
    )
    return (
        f"Cost on {run.price.name} at {run.price.price_per_hour:g} {run.prices.currency}/h "
        f"(prices as of {run.prices.as_of}, {run.prices.source}) {traffic}, taking the "
        "throughput measured here per server to hold on that instance type."
    )


def search_line(run: TuneRun) -> str:
    log = run.log
    line = (
        f"{log.strategy} search: {log.measured} measurements of a full grid of "
        f"{run.space.grid_measurements}, {log.loads} configurations loaded, "
        f"{log.elapsed_s:.0f} s of a {run.budget_s:g} s budget"
    )
    return line + (f"; stopped early: {log.stopped}" if log.stopped else "")


def to_markdown(run: TuneRun) -> str:
    def table(columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
        cells = [[cell.replace("|", "\\|") for cell in row] for row in rows]
        return [
            "| " + " | ".join(columns) + " |",
            "|" + "---|" * len(columns),
            *("| " + " | ".join(row) + " |" for row in cells),
        ]

    verdict = "**met**" if run.met else "**NOT met**"
    lines = [
        f"# mlops tune: {run.model} v{run.version}",
        "",
        f"SLA `{run.sla.text}`: {verdict}. {run.verdict()}.",
        "",
        f"Objective: {run.objective.name}. {search_line(run)}.",
    ]
    gain = run.gain_over_start()
    if gain is not None:
        lines.append(f"Throughput {gain:+.0%} over the version's own configuration.")
    lines += [f"- note: {note}" for note in run.notes]
    top = cost_rows(run)
    if top:
        lines += ["", "## Top candidates", "", cost_caption(run), ""]
        lines += table(COST_COLUMNS, top)
    frontier = run.frontier()
    if frontier:
        lines += ["", "## Throughput/latency frontier", ""]
        lines += table(CANDIDATE_COLUMNS, [candidate_row(run, m) for m in frontier])
    lines += ["", "## Every candidate", ""]
    lines += table(CANDIDATE_COLUMNS, [candidate_row(run, m) for m in run.log.measurements])
    return "\n".join(lines) + "\n"


_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: right; }
td:nth-child(2), th:nth-child(2), td:last-child { text-align: left; }
.fail { color: #c00; font-weight: bold; } .ok { color: #080; font-weight: bold; }
tr.met td:nth-child(4) { color: #080; } tr.failed td:nth-child(4) { color: #c00; }
"""


def _html_table(columns: tuple[str, ...], rows: list[tuple[str, ...]], classes: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        f'<tr class="{cls}">' + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>"
        for row, cls in zip(rows, classes, strict=True)
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def to_html(run: TuneRun) -> str:
    measured = [m for m in run.log.measurements if m.p99_ms is not None]

    def points(selected: list[Measurement]) -> list[tuple[float, float]]:
        return sorted((m.figures.throughput_rps, m.p99_ms or 0.0) for m in selected)

    series = [("frontier", points(run.frontier()))]
    curves: dict[str, list[Measurement]] = {}
    for m in measured:
        curves.setdefault(m.config.describe(), []).append(m)
    series += [(name, points(ms)) for name, ms in curves.items()]
    chart = line_chart(series[: len(COLORS)], x_label="throughput (req/s)", y_label="p99 (ms)")
    verdict_class = "ok" if run.met else "fail"
    notes = "".join(f"<p>note: {html.escape(n)}</p>" for n in run.notes)
    top = cost_rows(run)
    cost = (
        f"<h2>Top candidates</h2><p>{html.escape(cost_caption(run))}</p>"
        + _html_table(COST_COLUMNS, top, [""] * len(top))
        if top
        else ""
    )
    every = run.log.measurements
    title = f"mlops tune: {run.model} v{run.version}"
    summary = json.dumps({"measurements": run.log.measured, "met": run.met})
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<link rel="icon" href="data:,"><style>{_STYLE}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p class="{verdict_class}">SLA {html.escape(run.sla.text)}: {"met" if run.met else "not met"}</p>
<p>{html.escape(run.verdict())}</p>
<p>objective {html.escape(run.objective.name)}; {html.escape(search_line(run))};
server {html.escape(str(run.server.get("name")))} ({html.escape(str(run.server.get("url")))});
started {html.escape(run.started_at)}</p>
{notes}
{cost}
<h2>Throughput/latency frontier</h2>
<figure><figcaption>p99 against throughput: the frontier, then each configuration's latency
curve (one point per load level; the first {len(COLORS) - 1} configurations)</figcaption>
{chart}</figure>
<h2>Every candidate</h2>
{_html_table(CANDIDATE_COLUMNS, [candidate_row(run, m) for m in every], [m.status for m in every])}
<script type="application/json" id="summary">{summary}</script>
</body></html>
"""


def write_reports(run: TuneRun, directory: Path) -> dict[str, str]:
    """Write tune.json, summary.md and report.html into ``directory``; their paths by format."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        files = {
            "json": directory / "tune.json",
            "markdown": directory / "summary.md",
            "html": directory / "report.html",
        }
        files["json"].write_text(json.dumps(run.to_dict(), indent=2) + "\n", encoding="utf-8")
        files["markdown"].write_text(to_markdown(run), encoding="utf-8")
        files["html"].write_text(to_html(run), encoding="utf-8")
    except OSError as exc:
        raise WorkspaceError(f"cannot write the report to {directory}: {exc.strerror}") from exc
    return {kind: str(path) for kind, path in files.items()}


__all__ = [
    "CANDIDATE_COLUMNS",
    "COST_COLUMNS",
    "candidate_row",
    "cost_caption",
    "cost_rows",
    "search_line",
    "to_html",
    "to_markdown",
    "write_reports",
]
