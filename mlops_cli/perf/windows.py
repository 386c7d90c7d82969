"""Measurement windows: what one window of one step recorded, mergeable across worker processes,
and the stability rule that decides when a step has measured enough."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mlops_cli.perf.histogram import Histogram


@dataclass
class WindowStats:
    """Requests whose intended start fell in one window ``[start, start + length)``."""

    index: int
    latency: Histogram = field(default_factory=Histogram)
    ok: int = 0
    completed: int = 0  # successful answers that *arrived* in this window (throughput)
    errors: dict[str, int] = field(default_factory=dict)
    lag: Histogram = field(default_factory=Histogram)  # send time minus intended time (open loop)
    ttft: Histogram | None = None
    itl: Histogram | None = None
    tokens: int = 0
    per_model: dict[int, list[int]] = field(default_factory=dict)  # model -> [ok, errors, sum_us]
    # (model, registry version served) -> [ok, errors], for models followed through their routing
    per_version: dict[tuple[int, int], list[int]] = field(default_factory=dict)
    # (tenant, model, version served or -1) -> [ok, errors], for targets that send as tenants
    per_tenant: dict[tuple[int, int, int], list[int]] = field(default_factory=dict)
    # (model, 1 cold / 0 warm) -> latency of successful answers, for targets that report loads
    per_load: dict[tuple[int, int], Histogram] = field(default_factory=dict)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def merge(self, other: WindowStats) -> None:
        self.latency.merge(other.latency)
        self.lag.merge(other.lag)
        self.ok += other.ok
        self.completed += other.completed
        for kind, n in other.errors.items():
            self.errors[kind] = self.errors.get(kind, 0) + n
        for name in ("ttft", "itl"):
            theirs = getattr(other, name)
            if theirs is not None:
                mine = getattr(self, name)
                if mine is None:
                    mine = Histogram()
                    setattr(self, name, mine)
                mine.merge(theirs)
        self.tokens += other.tokens
        for model, counts in other.per_model.items():
            mine_counts = self.per_model.setdefault(model, [0, 0, 0])
            for i in range(3):
                mine_counts[i] += counts[i]
        for key, (ok, errors) in other.per_version.items():
            mine_version = self.per_version.setdefault(key, [0, 0])
            mine_version[0] += ok
            mine_version[1] += errors
        for tenant_key, (ok, errors) in other.per_tenant.items():
            mine_tenant = self.per_tenant.setdefault(tenant_key, [0, 0])
            mine_tenant[0] += ok
            mine_tenant[1] += errors
        for load_key, hist in other.per_load.items():
            mine_load = self.per_load.get(load_key)
            if mine_load is None:
                mine_load = self.per_load[load_key] = Histogram()
            mine_load.merge(hist)

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "latency": self.latency.to_dict(),
            "ok": self.ok,
            "completed": self.completed,
            "errors": dict(self.errors),
            "lag": self.lag.to_dict(),
            "ttft": self.ttft.to_dict() if self.ttft else None,
            "itl": self.itl.to_dict() if self.itl else None,
            "tokens": self.tokens,
            "per_model": {str(k): v for k, v in self.per_model.items()},
            "per_version": [[m, v, *counts] for (m, v), counts in self.per_version.items()],
            "per_tenant": [[t, m, v, *counts] for (t, m, v), counts in self.per_tenant.items()],
            "per_load": [[m, c, hist.to_dict()] for (m, c), hist in self.per_load.items()],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WindowStats:
        return cls(
            index=int(data["index"]),
            latency=Histogram.from_dict(data["latency"]),
            ok=int(data["ok"]),
            completed=int(data["completed"]),
            errors=dict(data["errors"]),
            lag=Histogram.from_dict(data["lag"]),
            ttft=Histogram.from_dict(data["ttft"]) if data.get("ttft") else None,
            itl=Histogram.from_dict(data["itl"]) if data.get("itl") else None,
            tokens=int(data["tokens"]),
            per_model={int(k): list(v) for k, v in data["per_model"].items()},
            per_version={
                (int(m), int(v)): [int(ok), int(e)] for m, v, ok, e in data["per_version"]
            },
            per_tenant={
                (int(t), int(m), int(v)): [int(ok), int(e)]
                for t, m, v, ok, e in data.get("per_tenant", ())
            },
            per_load={
                (int(m), int(c)): Histogram.from_dict(hist)
                for m, c, hist in data.get("per_load", ())
            },
        )


@dataclass(frozen=True)
class StabilityRule:
    """Stable when the last ``windows`` windows each lie within ``tolerance`` (a fraction) of their
    mean, in throughput and in p99 latency (p99 also gets ``floor_ms`` of slack, so that
    sub-millisecond jitter on a fast server does not count as instability)."""

    windows: int = 3
    tolerance: float = 0.10
    floor_ms: float = 0.05

    def holds(self, throughputs: Sequence[float], p99s_ms: Sequence[float]) -> bool:
        if len(throughputs) < self.windows or self.windows < 1:
            return False
        for values, floor in ((throughputs, 0.0), (p99s_ms, self.floor_ms)):
            tail = values[-self.windows :]
            mean = sum(tail) / len(tail)
            if mean <= 0 and floor == 0:
                return False
            if any(abs(v - mean) > self.tolerance * mean + floor for v in tail):
                return False
        return True

    def describe(self) -> str:
        return (
            f"the last {self.windows} windows within {self.tolerance:.0%} of their mean "
            "in throughput and p99"
        )
