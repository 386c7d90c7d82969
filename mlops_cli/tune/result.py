"""What a tune run found, as one typed record: the search log, the best candidate (or the closest
miss), the throughput/latency frontier, and the top candidates compared on cost. Reports and the
``--json`` document are made from it (:meth:`TuneRun.to_dict`, :mod:`mlops_cli.tune.report`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from mlops_cli.perf.sla import Sla
from mlops_cli.tune.cost import Cost, InstancePrice, PriceTable, cost_of
from mlops_cli.tune.measurement import Measurement
from mlops_cli.tune.search import Objective, SearchLog
from mlops_cli.tune.space import SearchSpace

TOP_CANDIDATES = 5  # configurations compared on cost


@dataclass(frozen=True)
class CostedCandidate:
    """A configuration's best measurement that met the SLA, and what serving with it costs."""

    measurement: Measurement
    cost: Cost

    def to_dict(self) -> dict[str, Any]:
        m = self.measurement
        return {
            "config": m.config.to_dict(),
            "describe": m.config.describe(),
            "level": m.level,
            "throughput_rps": round(m.figures.throughput_rps, 2),
            "p99_ms": m.p99_ms,
            "cost": self.cost.to_dict(),
        }


@dataclass(frozen=True)
class TuneRun:
    model: str
    version: int
    server: dict[str, Any]  # name, url, repository
    sla: Sla
    objective: Objective
    space: SearchSpace
    log: SearchLog
    budget_s: float
    prices: PriceTable
    price: InstancePrice
    traffic_rps: float | None
    started_at: str
    notes: tuple[str, ...] = ()

    @property
    def met(self) -> bool:
        return self.log.best is not None

    @property
    def best(self) -> Measurement | None:
        return self.log.best

    def top(self) -> list[CostedCandidate]:
        """Each configuration at its best level that met the SLA, best first (by the
        objective), at most :data:`TOP_CANDIDATES`, with its cost."""
        by_config: dict[Any, Measurement] = {}
        for m in self.log.measurements:
            if not m.met:
                continue
            held = by_config.get(m.config)
            if held is None or self.objective.rank(m) > self.objective.rank(held):
                by_config[m.config] = m
        ranked = sorted(by_config.values(), key=self.objective.rank, reverse=True)
        return [
            CostedCandidate(m, cost_of(self.capacity(m), self.price, self.traffic_rps))
            for m in ranked[:TOP_CANDIDATES]
        ]

    def capacity(self, m: Measurement) -> float:
        """Requests per second one server can take in this configuration under the SLA."""
        if self.space.load.mode == "open":
            return float(m.level or 0.0)
        return m.figures.throughput_rps

    def frontier(self) -> list[Measurement]:
        """The measurements no other beats on both throughput and p99 (highest throughput at
        each latency), in order of throughput."""
        points = sorted(
            (m for m in self.log.measurements if m.p99_ms is not None),
            key=lambda m: (-m.figures.throughput_rps, m.p99_ms or 0.0),
        )
        frontier: list[Measurement] = []
        lowest = math.inf
        for m in points:
            p99 = m.p99_ms or 0.0
            if p99 < lowest:
                frontier.append(m)
                lowest = p99
        return frontier[::-1]

    def verdict(self) -> str:
        """One sentence: the best candidate, or that none met the SLA and by how much the
        closest missed it."""
        load = self.space.load
        if self.best is not None:
            m = self.best
            return (
                f"{m.config.describe()} at {load.label(m.level or 0)} meets {self.sla.text}: "
                f"{m.figures.throughput_rps:,.1f} req/s, p99 {m.p99_ms:.2f} ms"
            )
        closest = self.log.closest
        if closest is None:
            return f"no candidate could be measured against {self.sla.text}"
        return (
            f"no configuration meets {self.sla.text}; the closest, {closest.config.describe()} "
            f"at {load.label(closest.level or 0)}, missed {'; '.join(closest.missed)}"
        )

    def gain_over_start(self) -> float | None:
        """The best's throughput over the version's own configuration's (a fraction), when both
        met the SLA."""
        start, best = self.log.start, self.best
        if start is None or best is None or not start.met or not start.figures.throughput_rps:
            return None
        return best.figures.throughput_rps / start.figures.throughput_rps - 1

    def to_dict(self) -> dict[str, Any]:
        load = self.space.load
        log = self.log
        return {
            "model": self.model,
            "version": self.version,
            "server": self.server,
            "sla": self.sla.text,
            "objective": self.objective.name,
            "strategy": log.strategy,
            "started_at": self.started_at,
            "budget_s": self.budget_s,
            "elapsed_s": round(log.elapsed_s, 3),
            "stopped": log.stopped,
            "space": self.space.to_dict(),
            "measurements": log.measured,
            "grid_measurements": self.space.grid_measurements,
            "configurations_loaded": log.loads,
            "load_failures": sum(1 for t in log.trials if t.failure is not None),
            "met": self.met,
            "verdict": self.verdict(),
            "best": log.best.to_dict(load) if log.best else None,
            "closest": log.closest.to_dict(load) if log.closest else None,
            "start": log.start.to_dict(load) if log.start else None,
            "gain_over_start": self.gain_over_start(),
            "cost": {
                "instance_type": self.price.name,
                "price_per_hour": self.price.price_per_hour,
                "currency": self.prices.currency,
                "prices_as_of": self.prices.as_of,
                "prices_source": self.prices.source,
                "traffic_rps": self.traffic_rps,
                "assumption": "the throughput measured here per server holds on this instance type",
                "candidates": [c.to_dict() for c in self.top()],
            },
            "frontier": [m.index for m in self.frontier()],
            "candidates": [m.to_dict(load) for m in log.measurements],
            "notes": list(self.notes),
        }


__all__ = ["TOP_CANDIDATES", "CostedCandidate", "TuneRun"]
