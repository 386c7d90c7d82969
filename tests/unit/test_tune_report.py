"""The tune result and its reports, from a search over the formula bench of test_tune_search:
the verdict, the top candidates on cost, the frontier and every candidate (failed ones too)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mlops_cli.perf.sla import parse_sla
from mlops_cli.tune.cost import load_prices
from mlops_cli.tune.report import to_html, to_markdown, write_reports
from mlops_cli.tune.result import TuneRun
from mlops_cli.tune.search import Objective
from mlops_cli.tune.space import SpaceChoices, build_space
from tests.unit.test_tune_search import FormulaBench, search, spec

pytestmark = pytest.mark.unit


def tune_run(sla: str, *, traffic: float | None = 2000.0) -> TuneRun:
    space = build_space(spec(), SpaceChoices(instances=(1, 2, 3, 4), max_concurrency=64))
    log = search(space, sla, bench=FormulaBench(refuse={3}))
    prices = load_prices()
    return TuneRun(
        model="bs",
        version=1,
        server={"name": "local", "url": "http://127.0.0.1:8000", "repository": "/r"},
        sla=parse_sla(sla),
        objective=Objective("throughput", "closed"),
        space=space,
        log=log,
        budget_s=600,
        prices=prices,
        price=prices.choose(None, gpu=False),
        traffic_rps=traffic,
        started_at="2025-01-01T00:00:00+00:00",
        notes=("a note",),
    )


def test_the_document_has_the_best_the_frontier_costs_and_every_candidate() -> None:
    run = tune_run("p99<80ms")
    document = json.loads(json.dumps(run.to_dict()))  # plain JSON, no Infinity
    assert document["met"] and document["best"]["status"] == "met"
    assert document["measurements"] < document["grid_measurements"]
    assert len(document["candidates"]) == len(run.log.measurements)
    assert any(c["status"] == "failed" and c["level"] is None for c in document["candidates"])
    frontier = [document["candidates"][i] for i in document["frontier"]]
    throughputs = [c["throughput_rps"] for c in frontier]
    assert throughputs == sorted(throughputs)
    p99s = [c["latency_ms"]["p99"] for c in frontier]
    assert p99s == sorted(p99s)  # more throughput costs latency along the frontier
    top = document["cost"]["candidates"]
    assert top[0]["describe"] == document["best"]["describe"]
    assert top[0]["cost"]["servers"] * top[0]["throughput_rps"] >= 2000
    assert document["cost"]["prices_as_of"] == load_prices().as_of


def test_markdown_and_html_show_the_verdict_and_every_candidate(tmp_path: Path) -> None:
    run = tune_run("p99<80ms")
    markdown = to_markdown(run)
    assert "SLA `p99<80ms`: **met**" in markdown and "## Top candidates" in markdown
    rows = [
        line for line in markdown.split("## Every candidate")[1].splitlines() if line[:2] == "| "
    ]
    assert len(rows) == 1 + len(run.log.measurements)  # the header, then each candidate
    assert "three instances refused on purpose" in markdown
    page = to_html(run)
    assert not re.search(r"""(src|href)=["']https?:""", page)  # self-contained
    assert "<svg" in page and page.count('<tr class="failed">') >= 1
    written = write_reports(run, tmp_path / "report")
    assert sorted(written) == ["html", "json", "markdown"]
    assert json.loads(Path(written["json"]).read_text())["verdict"] == run.verdict()


def test_an_unmet_sla_says_how_far_the_closest_missed() -> None:
    run = tune_run("p99<5ms", traffic=None)
    assert not run.met and run.top() == []
    verdict = run.verdict()
    assert verdict.startswith("no configuration meets p99<5ms; the closest, instances=")
    assert "ms over)" in verdict
    assert "**NOT met**" in to_markdown(run)
