"""On-demand loads and evictions a load test caused on the router's dynamic servers.

The router counts, per Triton model name, the models it loaded on demand and the idle ones it
evicted to make room (``/metrics``; see :mod:`mlops_cli.perf.router_wire`). A step reads the
counters before and after it runs; the report keeps the differences. They are what the router saw
during the step, whoever sent the requests: another client's traffic at the same time counts too.
A router with several worker processes adds up the other workers' counters as of their last
refresh step, so the last refresh interval of a step may be missing from its figures.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from mlops_cli.errors import ServerError
from mlops_cli.perf.router_wire import (
    EVICTIONS_METRIC,
    LOADS_METRIC,
    METRICS_PATH,
    router_base,
)


@dataclass(frozen=True)
class LoadCounters:
    """The router's load and eviction counters at one moment, per Triton model name."""

    loads: dict[str, float] = field(default_factory=dict)
    evictions: dict[str, float] = field(default_factory=dict)


def parse_load_counters(text: str) -> LoadCounters:
    """The load and eviction counters in a Prometheus text exposition (other samples ignored)."""
    from prometheus_client.parser import text_string_to_metric_families

    loads: dict[str, float] = {}
    evictions: dict[str, float] = {}
    wanted = {LOADS_METRIC: loads, EVICTIONS_METRIC: evictions}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            into = wanted.get(sample.name)
            if into is not None:
                name = sample.labels.get("name", "")
                into[name] = into.get(name, 0.0) + sample.value
    return LoadCounters(loads, evictions)


def read_load_counters(url: str, *, timeout_s: float) -> LoadCounters:
    """The counters of the router at ``url`` (``router://HOST:PORT``); ServerError when its
    ``/metrics`` cannot be read."""
    address = router_base(url) + METRICS_PATH
    try:
        with urllib.request.urlopen(address, timeout=timeout_s) as answer:
            text = answer.read().decode("utf-8")
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise ServerError(f"cannot read the router's metrics at {address}: {reason}") from exc
    return parse_load_counters(text)


def load_difference(before: LoadCounters, after: LoadCounters) -> dict[str, Any]:
    """The report's ``model_loads``: loads and evictions per Triton model name between the two
    readings (names with none left out), and their totals."""

    def grown(old: dict[str, float], new: dict[str, float]) -> dict[str, int]:
        changes = {name: round(value - old.get(name, 0.0)) for name, value in new.items()}
        return {name: n for name, n in sorted(changes.items()) if n > 0}

    loads = grown(before.loads, after.loads)
    evictions = grown(before.evictions, after.evictions)
    return {
        "loads": loads,
        "evictions": evictions,
        "total_loads": sum(loads.values()),
        "total_evictions": sum(evictions.values()),
    }
