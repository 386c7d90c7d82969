"""The router's metrics, served at ``/metrics`` in the Prometheus text format (prometheus-client).

- ``mlops_router_requests_total{tenant,model,version,status}``: answered requests; ``version``
  is empty when none was resolved (an unknown model, a bad key), ``status`` the HTTP status.
- ``mlops_router_request_seconds{model,version}``: latency, request in to answer out (for a
  stream, to its last chunk); ``mlops_router_first_chunk_seconds{model,version}``: a stream's
  time to its first chunk.
- ``mlops_router_in_flight{model,version}``: requests being answered now.
- ``mlops_router_upstream_errors_total{model,version,kind}``: refused connections, timeouts,
  closed connections, failed loads; ``mlops_router_retries_total{model,version}``: requests sent
  again to another replica.
- ``mlops_router_model_loads_total{name}``, ``mlops_router_model_evictions_total{name}``,
  ``mlops_router_model_load_seconds`` and ``mlops_router_cold_requests_total{model,version}``:
  on-demand loading on dynamic servers (:mod:`mlops_cli.router.ondemand`); a model's hit rate is
  1 - cold / requests.
- ``mlops_router_table_age_seconds``: how old the routing table was at the last refresh step
  (small while the registry answers; it grows while it does not);
  ``mlops_router_table_revision``: the registry revision being served.

Tenant labels are bounded (:class:`TenantLabels`): ``all``, ``none`` (every tenant is
``other``), or ``top:N``: the first N tenants seen keep their name, the rest are ``other``, so
that thousands of tenants cannot explode the number of series.

The request path only adds to plain dictionaries (a counter is one dictionary update, a
histogram observation one ``bisect`` and two): prometheus-client's own metric objects take a lock
and a label lookup per update, which was an eighth of the router's CPU per request. The values
are turned into metric families when ``/metrics`` is read (:meth:`RouterMetrics.exposition`).
With several worker processes (``--workers``), each worker writes its values to a file in a
shared folder at every refresh step, and ``/metrics`` in any worker adds up every worker's file
(its own values live): the others' are at most one refresh interval old.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_cli.errors import UsageError

OTHER = "other"
BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
WORKERS_DIR_ENV = "MLOPS_ROUTER_METRICS_DIR"

# name -> (kind, help, label names); kinds: counter, histogram, gauge (summed across workers),
# gauge_max / gauge_min (the largest / smallest across workers)
FAMILIES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "mlops_router_requests": (
        "counter",
        "Requests answered, by tenant, model, version and HTTP status.",
        ("tenant", "model", "version", "status"),
    ),
    "mlops_router_request_seconds": (
        "histogram",
        "Time from a request's arrival to the end of its answer.",
        ("model", "version"),
    ),
    "mlops_router_first_chunk_seconds": (
        "histogram",
        "Time from a streamed request's arrival to its first chunk.",
        ("model", "version"),
    ),
    "mlops_router_in_flight": ("gauge", "Requests being answered now.", ("model", "version")),
    "mlops_router_upstream_errors": (
        "counter",
        "Failed calls to model servers, by kind (refused, timeout, closed, load).",
        ("model", "version", "kind"),
    ),
    "mlops_router_retries": (
        "counter",
        "Requests sent again to another replica after a failed connection.",
        ("model", "version"),
    ),
    "mlops_router_model_loads": (
        "counter",
        "Models loaded on demand on dynamic servers, by Triton model name.",
        ("name",),
    ),
    "mlops_router_model_load_seconds": ("histogram", "Time an on-demand load took.", ()),
    "mlops_router_model_evictions": (
        "counter",
        "Idle models unloaded from dynamic servers to make room, by Triton model name.",
        ("name",),
    ),
    "mlops_router_cold_requests": (
        "counter",
        "Requests that waited for their model to be loaded.",
        ("model", "version"),
    ),
    "mlops_router_table_age_seconds": (
        "gauge_max",
        "Age of the routing table at the last refresh step.",
        (),
    ),
    "mlops_router_table_revision": (
        "gauge_min",
        "The registry revision the routing table reflects.",
        (),
    ),
}


@dataclass(frozen=True)
class TenantLabelMode:
    """``all``, ``none`` or ``top:N`` (N >= 1)."""

    mode: str
    limit: int = 0

    @classmethod
    def parse(cls, text: str) -> TenantLabelMode:
        if text in ("all", "none"):
            return cls(text)
        kind, _, number = text.partition(":")
        if (
            kind == "top"
            and number.isascii()
            and number.isdecimal()
            and 1 <= int(number) <= 100_000
        ):
            return cls("top", int(number))
        raise UsageError(
            f"--tenant-label {text!r} is not all, none or top:N",
            hint="top:N keeps the first N tenants seen (1 <= N <= 100000), the rest are 'other'",
        )


class TenantLabels:
    """The label each tenant is counted under; see the module docstring."""

    def __init__(self, mode: TenantLabelMode) -> None:
        self.mode = mode
        self.kept: set[str] = set()

    def __call__(self, tenant: str) -> str:
        mode = self.mode.mode
        if mode == "all":
            return tenant
        if mode == "none":
            return OTHER
        if tenant in self.kept:
            return tenant
        if len(self.kept) < self.mode.limit:
            self.kept.add(tenant)
            return tenant
        return OTHER


class _Histogram:
    """Bucket counts (per upper bound, not cumulative), the sum and the count."""

    __slots__ = ("buckets", "count", "sum")

    def __init__(self) -> None:
        self.buckets = [0] * (len(BUCKETS) + 1)  # the last: above every bound (+Inf)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.buckets[bisect.bisect_left(BUCKETS, value)] += 1
        self.sum += value
        self.count += 1


class RouterMetrics:
    """The metrics of one router process; see the module docstring."""

    def __init__(self, tenant_labels: TenantLabelMode, *, workers_dir: Path | None = None) -> None:
        self.tenant = TenantLabels(tenant_labels)
        self.workers_dir = workers_dir
        self.values: dict[str, dict[tuple[str, ...], float]] = {
            name: {} for name, (kind, _, _) in FAMILIES.items() if kind != "histogram"
        }
        self.histograms: dict[str, dict[tuple[str, ...], _Histogram]] = {
            name: {} for name, (kind, _, _) in FAMILIES.items() if kind == "histogram"
        }
        self._requests = self.values["mlops_router_requests"]
        self._in_flight = self.values["mlops_router_in_flight"]
        self._latency = self.histograms["mlops_router_request_seconds"]

    # -- the request path ------------------------------------------------------------------------

    def answered(
        self, tenant: str, model: str, version: str, status: int, seconds: float | None
    ) -> None:
        key = (self.tenant(tenant), model, version, str(status))
        requests = self._requests
        requests[key] = requests.get(key, 0) + 1
        if seconds is not None:
            found = self._latency.get((model, version))
            if found is None:
                found = self._latency[(model, version)] = _Histogram()
            found.observe(seconds)

    def started(self, model: str, version: str) -> None:
        key = (model, version)
        self._in_flight[key] = self._in_flight.get(key, 0) + 1

    def finished(self, model: str, version: str) -> None:
        key = (model, version)
        self._in_flight[key] = self._in_flight.get(key, 0) - 1

    def _add(self, name: str, *labels: str) -> None:
        found = self.values[name]
        found[labels] = found.get(labels, 0) + 1

    def _observe(self, name: str, value: float, *labels: str) -> None:
        found = self.histograms[name]
        histogram = found.get(labels)
        if histogram is None:
            histogram = found[labels] = _Histogram()
        histogram.observe(value)

    def first(self, model: str, version: str, seconds: float) -> None:
        self._observe("mlops_router_first_chunk_seconds", seconds, model, version)

    def upstream_error(self, model: str, version: str, kind: str) -> None:
        self._add("mlops_router_upstream_errors", model, version, kind)

    def retried(self, model: str, version: str) -> None:
        self._add("mlops_router_retries", model, version)

    def loaded(self, name: str, seconds: float) -> None:
        self._add("mlops_router_model_loads", name)
        self._observe("mlops_router_model_load_seconds", seconds)

    def evicted(self, name: str) -> None:
        self._add("mlops_router_model_evictions", name)

    def cold_request(self, model: str, version: str) -> None:
        self._add("mlops_router_cold_requests", model, version)

    def table(self, revision: int, age: float) -> None:
        """At each refresh step (on the event loop): the table's state, and this worker's
        values written for the others."""
        self.values["mlops_router_table_revision"][()] = revision
        self.values["mlops_router_table_age_seconds"][()] = age if age != float("inf") else -1
        if self.workers_dir is not None:
            self._write_share()

    # -- exposition ------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """This process's values as JSON-able data."""
        return {
            "values": {
                name: [[list(k), v] for k, v in found.items()]
                for name, found in self.values.items()
            },
            "histograms": {
                name: [[list(k), h.buckets, h.sum, h.count] for k, h in found.items()]
                for name, found in self.histograms.items()
            },
        }

    def _write_share(self) -> None:
        assert self.workers_dir is not None
        path = self.workers_dir / f"worker-{os.getpid()}.json"
        temporary = path.with_suffix(".tmp")
        with contextlib.suppress(OSError):
            temporary.write_text(json.dumps(self.snapshot()))
            temporary.replace(path)

    def _shares(self) -> Iterator[dict[str, Any]]:
        yield self.snapshot()
        if self.workers_dir is None:
            return
        mine = f"worker-{os.getpid()}.json"
        for path in sorted(self.workers_dir.glob("worker-*.json")):
            if path.name == mine:
                continue
            with contextlib.suppress(OSError, ValueError):
                yield json.loads(path.read_text())

    def exposition(self) -> tuple[bytes, str]:
        """The text ``/metrics`` serves, and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collector(list(self._shares())))
        return generate_latest(registry), CONTENT_TYPE_LATEST


class _Collector:
    """Metric families from the shares of every worker (added up, or max/min for gauges that
    say so)."""

    def __init__(self, shares: list[dict[str, Any]]) -> None:
        self.shares = shares

    def collect(self) -> Iterable[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        for name, (kind, text, labels) in FAMILIES.items():
            if kind == "histogram":
                merged: dict[tuple[str, ...], list[Any]] = {}
                for share in self.shares:
                    for key, buckets, total, count in share["histograms"].get(name, []):
                        held = merged.setdefault(tuple(key), [[0] * len(buckets), 0.0, 0])
                        held[0] = [a + b for a, b in zip(held[0], buckets, strict=True)]
                        held[1] += total
                        held[2] += count
                family = HistogramMetricFamily(name, text, labels=list(labels))
                for key, (buckets, total, _) in sorted(merged.items()):
                    running, points = 0, []
                    for bound, count in zip([*map(str, BUCKETS), "+Inf"], buckets, strict=True):
                        running += count
                        points.append((bound, running))
                    family.add_metric(list(key), points, total)
                yield family
                continue
            combined: dict[tuple[str, ...], float] = {}
            for share in self.shares:
                for key, value in share["values"].get(name, []):
                    key = tuple(key)
                    if key not in combined:
                        combined[key] = value
                    elif kind == "gauge_max":
                        combined[key] = max(combined[key], value)
                    elif kind == "gauge_min":
                        combined[key] = min(combined[key], value)
                    else:
                        combined[key] += value
            if kind == "counter":
                family_class: Any = CounterMetricFamily
            else:
                family_class = GaugeMetricFamily
            family = family_class(name, text, labels=list(labels))
            for key, value in sorted(combined.items()):
                family.add_metric(list(key), value)
            yield family
