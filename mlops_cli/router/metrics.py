"""The router's Prometheus metrics (prometheus-client), served at ``/metrics``.

- ``mlops_router_requests_total{tenant,model,version,status}``: answered requests; ``version``
  is empty when none was resolved (an unknown model, a bad key), ``status`` the HTTP status.
- ``mlops_router_request_seconds{model,version}``: latency, request in to answer out (for a
  stream, to its last chunk); ``mlops_router_first_chunk_seconds{model,version}``: a stream's
  time to its first chunk.
- ``mlops_router_in_flight{model,version}``: requests being answered now.
- ``mlops_router_upstream_errors_total{model,version,kind}``: refused connections, timeouts,
  closed connections; ``mlops_router_retries_total{model,version}``: requests sent again to
  another replica.
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

With several worker processes the metrics live in prometheus-client's multi-process files (the
directory in ``PROMETHEUS_MULTIPROC_DIR``, set before this module is imported), and any worker's
``/metrics`` adds up all of them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from mlops_cli.errors import UsageError

OTHER = "other"
_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip


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


class RouterMetrics:
    """The metrics of one router process; see the module docstring."""

    def __init__(self, tenant_labels: TenantLabelMode) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.registry = CollectorRegistry(auto_describe=False)
        kept: dict[str, Any] = {"registry": None if self.multiprocess else self.registry}
        self.tenant = TenantLabels(tenant_labels)
        self.requests = Counter(
            "mlops_router_requests",
            "Requests answered, by tenant, model, version and HTTP status.",
            ["tenant", "model", "version", "status"],
            **kept,
        )
        self.latency = Histogram(
            "mlops_router_request_seconds",
            "Time from a request's arrival to the end of its answer.",
            ["model", "version"],
            buckets=_BUCKETS,
            **kept,
        )
        self.first_chunk = Histogram(
            "mlops_router_first_chunk_seconds",
            "Time from a streamed request's arrival to its first chunk.",
            ["model", "version"],
            buckets=_BUCKETS,
            **kept,
        )
        self.in_flight = Gauge(
            "mlops_router_in_flight",
            "Requests being answered now.",
            ["model", "version"],
            multiprocess_mode="livesum",
            **kept,
        )
        self.upstream_errors = Counter(
            "mlops_router_upstream_errors",
            "Failed calls to model servers, by kind (refused, timeout, closed).",
            ["model", "version", "kind"],
            **kept,
        )
        self.retries = Counter(
            "mlops_router_retries",
            "Requests sent again to another replica after a failed connection.",
            ["model", "version"],
            **kept,
        )
        self.table_age = Gauge(
            "mlops_router_table_age_seconds",
            "Age of the routing table at the last refresh step.",
            multiprocess_mode="max",
            **kept,
        )
        self.table_revision = Gauge(
            "mlops_router_table_revision",
            "The registry revision the routing table reflects.",
            multiprocess_mode="min",
            **kept,
        )
        self.loads = Counter(
            "mlops_router_model_loads",
            "Models loaded on demand on dynamic servers, by Triton model name.",
            ["name"],
            **kept,
        )
        self.load_seconds = Histogram(
            "mlops_router_model_load_seconds",
            "Time an on-demand load took.",
            buckets=_BUCKETS,
            **kept,
        )
        self.evictions = Counter(
            "mlops_router_model_evictions",
            "Idle models unloaded from dynamic servers to make room, by Triton model name.",
            ["name"],
            **kept,
        )
        self.cold = Counter(
            "mlops_router_cold_requests",
            "Requests that waited for their model to be loaded.",
            ["model", "version"],
            **kept,
        )
        self._children: dict[tuple[Any, ...], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def answered(
        self, tenant: str, model: str, version: str, status: int, seconds: float | None
    ) -> None:
        self._child(self.requests, self.tenant(tenant), model, version, str(status)).inc()
        if seconds is not None:
            self._child(self.latency, model, version).observe(seconds)

    def first(self, model: str, version: str, seconds: float) -> None:
        self._child(self.first_chunk, model, version).observe(seconds)

    def started(self, model: str, version: str) -> None:
        self._child(self.in_flight, model, version).inc()

    def finished(self, model: str, version: str) -> None:
        self._child(self.in_flight, model, version).dec()

    def upstream_error(self, model: str, version: str, kind: str) -> None:
        self._child(self.upstream_errors, model, version, kind).inc()

    def retried(self, model: str, version: str) -> None:
        self._child(self.retries, model, version).inc()

    def loaded(self, name: str, seconds: float) -> None:
        self._child(self.loads, name).inc()
        self.load_seconds.observe(seconds)

    def evicted(self, name: str) -> None:
        self._child(self.evictions, name).inc()

    def cold_request(self, model: str, version: str) -> None:
        self._child(self.cold, model, version).inc()

    def table(self, revision: int, age: float) -> None:
        self.table_revision.set(revision)
        self.table_age.set(age if age != float("inf") else -1)

    def exposition(self) -> tuple[bytes, str]:
        """The text ``/metrics`` serves, and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        if self.multiprocess:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
