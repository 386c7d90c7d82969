"""How a performance test loads its target: the mode, the levels, how long each step runs.

A plain value shared by the runner (which runs the steps) and the summary (which turns a step's
windows into figures), so that neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mlops_cli.perf.windows import StabilityRule


@dataclass(frozen=True)
class LoadOptions:
    """How to load the target. ``levels`` are concurrencies (closed) or request rates (open).
    With neither ``duration_s`` nor ``requests``, each step runs until the stability rule holds,
    for at most ``max_windows`` windows."""

    mode: str = "closed"
    levels: tuple[float, ...] = (1,)
    arrival: str = "constant"
    duration_s: float | None = None
    requests: int | None = None
    warmup_s: float = 1.0
    window_s: float = 1.0
    max_windows: int | None = None
    stability: StabilityRule = field(default_factory=StabilityRule)
    workers: int = 1
    distribution: str = "uniform"
    seed: int = 0

    @property
    def until_stable(self) -> bool:
        return self.duration_s is None and self.requests is None

    def window_cap(self) -> int:
        if self.duration_s is not None:
            windows = max(1, round(self.duration_s / self.window_s))
            return min(windows, self.max_windows) if self.max_windows else windows
        if self.max_windows:
            return self.max_windows
        return 10 if self.until_stable else 3600
