"""The search: which candidates to measure, in which order, and when to stop.

Pure logic over a :class:`Bench` (load a configuration, measure it at one load level) and a clock,
so that it is tested with plain inputs; :mod:`mlops_cli.tune.candidates` is the Bench on a real
Triton server.

**Coordinate search** (the default). Start from the version's own configuration. Measure its
latency curve: concurrency levels in order from the level where the incumbent did best (1 for
the first), upwards while the SLA holds and throughput still grows (by at least
:data:`SATURATION_GAIN` per step, once there are enough users to fill every instance with a full
batch: past that point more users only queue), downwards instead when the first level already
misses. Then, dimension by dimension (instances, max_batch_size, queue
delay, preferred batch size), step to the neighbouring value, up and then down, and keep going in
that direction while each step beats the incumbent by more than the noise margin
(:data:`MIN_GAIN`). A direction stops at the first candidate that misses the SLA at every level
or gains nothing; a candidate that fails to load is recorded and stepped over (it says nothing
about the next value), but a second failure in a row stops the direction too. A configuration
already measured is never measured again. Passes
over the dimensions repeat until one moves nothing. While no candidate meets the SLA, "beats"
means "misses by less", so an unreachable SLA ends after a few measurements with the closest
candidate.

**Grid**: every configuration at every level, for comparison (``--strategy grid``).

Both respect the time budget: before each load and each measurement the time it will take is
estimated from those done so far, and the search stops (saying so) rather than overrun. Every
measurement is recorded, failed ones included.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from mlops_cli.perf.sla import Sla
from mlops_cli.tune.measurement import Bench, CandidateLoadError, Figures, Measurement, judge
from mlops_cli.tune.space import DIMENSIONS, SearchSpace, ServingConfig

MIN_GAIN = 0.03  # a neighbour must beat the incumbent by this fraction (measurement noise)
SATURATION_GAIN = 0.05  # throughput grew less than this from one level to the next: flat curve
MAX_REFUSED_STEPS = 1  # configurations that fail to load stepped over in one direction
Strategy = Literal["coordinate", "grid"]
ObjectiveName = Literal["throughput", "cost"]


@dataclass(frozen=True)
class Objective:
    """What "best" means among candidates that meet the SLA. The search itself always climbs
    throughput (closed loop) or SLA slack (open loop, every candidate carrying the same rate);
    ``cost`` then picks the cheapest of everything measured: the lowest cost per million requests
    at the traffic level (``cost_per_million`` of a throughput), then fewer model instances."""

    name: ObjectiveName
    mode: Literal["closed", "open"]
    cost_per_million: Callable[[float], float] | None = None

    def progress(self, m: Measurement) -> float:
        """What the search climbs."""
        return m.figures.throughput_rps if self.mode == "closed" else m.slack

    def rank(self, m: Measurement) -> tuple[float, ...]:
        """The final order among candidates that met the SLA: higher is better."""
        if self.name == "cost" and self.cost_per_million is not None:
            cost = self.cost_per_million(self._capacity(m))
            return (-round(cost, 9), -m.config.instances, self.progress(m))
        return (self.progress(m), -m.config.instances)

    def _capacity(self, m: Measurement) -> float:
        # an open-loop candidate that met the SLA served the rate it was given
        return m.figures.throughput_rps if self.mode == "closed" else float(m.level or 0.0)


@dataclass
class ConfigTrial:
    """One configuration: every measurement of it, its best level (met the SLA) and its closest
    miss."""

    config: ServingConfig
    measurements: list[Measurement] = field(default_factory=list)
    failure: str | None = None

    def best(self, objective: Objective) -> Measurement | None:
        met = [m for m in self.measurements if m.met]
        return max(met, key=objective.progress) if met else None

    def closest(self) -> Measurement | None:
        tried = [m for m in self.measurements if m.status != "failed"]
        return max(tried, key=lambda m: m.slack) if tried else None


@dataclass(frozen=True)
class SearchLog:
    """What a search did and found."""

    strategy: Strategy
    measurements: tuple[Measurement, ...]
    trials: tuple[ConfigTrial, ...]
    best: Measurement | None  # the best candidate that met the SLA
    closest: Measurement | None  # the smallest miss, when none met it
    start: Measurement | None  # the version's own configuration, at its best (or closest)
    stopped: str | None  # why the search ended before its own end (the budget, a dead server)
    elapsed_s: float
    loads: int

    @property
    def measured(self) -> int:
        """Measurements taken (load failures are recorded but measure nothing)."""
        return sum(1 for m in self.measurements if m.level is not None)


class _OutOfBudget(Exception):
    pass


class _Stop(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def saturable(config: ServingConfig, m: Measurement) -> bool:
    """Whether a flat curve at ``m`` means saturation: only once the users can fill every
    instance with a full batch (below that, more users can still form bigger batches)."""
    slots = config.instances * max(1, config.max_batch_size)
    return m.level is not None and m.level >= slots


class Search:
    """One search over ``space`` on ``bench``; :meth:`run` returns the :class:`SearchLog`."""

    def __init__(
        self,
        *,
        space: SearchSpace,
        bench: Bench,
        sla: Sla,
        objective: Objective,
        budget_s: float,
        first_load_s: float,
        first_measure_s: float,
        max_error_rate: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        on_measurement: Callable[[Measurement], None] | None = None,
    ) -> None:
        self.space, self.bench, self.sla, self.objective = space, bench, sla, objective
        self.max_error_rate = max_error_rate
        self.clock = clock
        self.on_measurement = on_measurement
        self.started = clock()
        self.deadline = self.started + budget_s
        self.load_times: list[float] = [first_load_s]
        self.measure_times: list[float] = [first_measure_s]
        self.trials: dict[ServingConfig, ConfigTrial] = {}
        self.measurements: list[Measurement] = []
        self.loads = 0

    # -- budget ----------------------------------------------------------------------------------

    def _afford(self, *, load: bool) -> None:
        if not self.measurements:
            return  # the options checked that one measurement fits the budget
        need = sum(self.measure_times) / len(self.measure_times)
        if load:
            need += sum(self.load_times) / len(self.load_times)
        if self.clock() + need > self.deadline:
            raise _OutOfBudget

    # -- measuring -------------------------------------------------------------------------------

    def _record(self, measurement: Measurement, trial: ConfigTrial) -> Measurement:
        self.measurements.append(measurement)
        trial.measurements.append(measurement)
        if self.on_measurement is not None:
            self.on_measurement(measurement)
        return measurement

    def _open(self, config: ServingConfig) -> ConfigTrial | None:
        """Load ``config``; its trial, or None when the server refused it (recorded)."""
        self._afford(load=True)
        trial = self.trials[config] = ConfigTrial(config)
        began = self.clock()
        self.loads += 1
        try:
            self.bench.load(config)
        except CandidateLoadError as exc:
            trial.failure = exc.message
            self._record(
                Measurement(
                    len(self.measurements), config, None, "failed", Figures(failure=exc.message),
                    (f"did not load: {exc.message}",), seconds=self.clock() - began,
                    reason=exc.message,
                ),
                trial,
            )  # fmt: skip
            if exc.fatal:
                raise _Stop(f"the server cannot load candidates any more: {exc.message}") from None
            return None
        self.load_times.append(self.clock() - began)
        return trial

    def _measure(self, trial: ConfigTrial, level: float) -> Measurement:
        self._afford(load=False)
        began = self.clock()
        figures = self.bench.measure(trial.config, self.space.load, level)
        seconds = self.clock() - began
        self.measure_times.append(seconds)
        met, missed, slack = judge(self.sla, figures, self.max_error_rate)
        status: Literal["met", "missed", "failed"] = (
            "failed" if figures.failure is not None else "met" if met else "missed"
        )
        return self._record(
            Measurement(
                len(self.measurements), trial.config, level, status, figures, missed, slack,
                seconds, figures.failure or "",
            ),
            trial,
        )  # fmt: skip

    def curve(self, config: ServingConfig, start: int) -> ConfigTrial:
        """Load ``config`` and measure its latency curve from level index ``start``."""
        trial = self._open(config)
        if trial is None:
            return self.trials[config]
        levels = self.space.load.levels
        index = min(max(start, 0), len(levels) - 1)
        first = self._measure(trial, levels[index])
        if first.status == "failed":
            return trial
        if first.met:
            previous = first
            for level in levels[index + 1 :]:
                current = self._measure(trial, level)
                if not current.met:
                    break
                gain = current.figures.throughput_rps - previous.figures.throughput_rps
                if saturable(config, previous) and (
                    gain < SATURATION_GAIN * previous.figures.throughput_rps
                ):
                    break
                previous = current
        else:
            for level in reversed(levels[:index]):
                if self._measure(trial, level).met:
                    break
        return trial

    # -- deciding --------------------------------------------------------------------------------

    def _level_index(self, trial: ConfigTrial) -> int:
        anchor = trial.best(self.objective) or trial.closest()
        if anchor is None or anchor.level is None:
            return 0
        return self.space.load.levels.index(anchor.level)

    def beats(self, challenger: ConfigTrial, incumbent: ConfigTrial) -> bool:
        """Whether ``challenger`` is clearly better: it meets the SLA where the incumbent does
        not, or climbs higher by more than the noise margin (misses by less, while nothing
        meets it)."""
        new, old = challenger.best(self.objective), incumbent.best(self.objective)
        if new is not None and old is None:
            return True
        if new is None and old is not None:
            return False
        if new is not None and old is not None:
            a, b = self.objective.progress(new), self.objective.progress(old)
            return a > b + MIN_GAIN * abs(b)
        near, far = challenger.closest(), incumbent.closest()
        if near is None:
            return False
        if far is None:
            return True
        return near.slack > far.slack + MIN_GAIN * abs(far.slack)

    def coordinate(self) -> None:
        incumbent = self.curve(self.space.start, 0)
        moved = True
        while moved:
            moved = False
            for dimension in DIMENSIONS:
                for direction in (1, -1):
                    current, refused = incumbent, 0
                    while True:
                        neighbour = self.space.step(current.config, dimension, direction)
                        if neighbour is None or neighbour in self.trials:
                            break
                        trial = self.curve(neighbour, self._level_index(incumbent))
                        if trial.failure is not None and refused < MAX_REFUSED_STEPS:
                            current, refused = trial, refused + 1  # step over it
                            continue
                        if not self.beats(trial, incumbent):
                            break
                        incumbent = current = trial
                        refused, moved = 0, True

    def grid(self) -> None:
        for config in self.space.configs():
            trial = self._open(config)
            if trial is None:
                continue
            for level in self.space.load.levels:
                if self._measure(trial, level).status == "failed":
                    break

    def run(self, strategy: Strategy) -> SearchLog:
        stopped: str | None = None
        try:
            self.coordinate() if strategy == "coordinate" else self.grid()
        except _OutOfBudget:
            stopped = "the time budget ran out"
        except _Stop as stop:
            stopped = stop.reason
        met = [m for m in self.measurements if m.met]
        best = max(met, key=self.objective.rank) if met else None
        tried = [m for m in self.measurements if m.status != "failed"]
        closest = None if best or not tried else max(tried, key=lambda m: m.slack)
        own = self.trials.get(self.space.start)
        start = (own.best(self.objective) or own.closest()) if own else None
        return SearchLog(
            strategy=strategy,
            measurements=tuple(self.measurements),
            trials=tuple(self.trials.values()),
            best=best,
            closest=closest,
            start=start,
            stopped=stopped,
            elapsed_s=self.clock() - self.started,
            loads=self.loads,
        )


__all__ = [
    "MIN_GAIN",
    "SATURATION_GAIN",
    "ConfigTrial",
    "Objective",
    "Search",
    "SearchLog",
    "saturable",
]
