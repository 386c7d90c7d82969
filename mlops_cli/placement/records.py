"""The placement planner's records: servers, items, plans, moves, and why a set cannot fit.

All memory is in MB (2**20 bytes) at this boundary. Inside the planner it is counted in whole
KiB (:func:`units`), items rounded up and capacities down, so that "never over capacity" is
exact integer arithmetic and no sum of floats can drift past a limit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from mlops_cli.errors import UsageError

UNITS_PER_MB = 1024  # KiB
SHOWN_MISSING = 5
Reason = Literal[
    "too-large", "no-server", "too-few-servers", "no-room"
]  # how many unplaced items a one-line explanation names


class PlacementInputError(UsageError):
    """Items or servers that no plan can be made of (duplicates, non-positive memory, ...)."""


def units(megabytes: float, *, up: bool) -> int:
    """``megabytes`` in whole KiB: rounded up for what an item needs, down for what a server
    holds."""
    scaled = megabytes * UNITS_PER_MB
    return math.ceil(scaled) if up else math.floor(scaled)


@dataclass(frozen=True)
class Server:
    """A server that can hold models.

    ``memory_mb`` is host memory for models; ``gpu_memory_mb`` the memory of each of its
    ``gpu_count`` GPUs (0: not declared, and then not checked). Headroom is kept free: the
    usable host memory is ``memory_mb * (1 - headroom_fraction) - headroom_mb - used_mb``, where
    ``used_mb`` is memory held by models outside the plan. ``labels`` are matched by items'
    required labels; a server with GPUs also carries the label ``gpu: <gpu_kind>``.
    """

    name: str
    memory_mb: float
    gpu_memory_mb: float = 0.0
    gpu_kind: str | None = None
    gpu_count: int = 0
    labels: Mapping[str, str] = field(default_factory=dict)
    headroom_mb: float = 0.0
    headroom_fraction: float = 0.0
    used_mb: float = 0.0
    gpu_used_mb: float = 0.0

    @property
    def usable_mb(self) -> float:
        return self.memory_mb * (1 - self.headroom_fraction) - self.headroom_mb - self.used_mb

    @property
    def gpu_usable_mb(self) -> float:
        """All GPUs together, after headroom (0 when GPU memory is not declared)."""
        total = self.gpu_memory_mb * self.gpu_count
        return max(0.0, total * (1 - self.headroom_fraction) - self.gpu_used_mb)

    def all_labels(self) -> dict[str, str]:
        found = {"gpu": self.gpu_kind} if self.gpu_count and self.gpu_kind else {}
        return {**found, **self.labels}


@dataclass(frozen=True)
class Item:
    """A model version to place: ``replicas`` copies, each on a different server, each needing
    ``memory_mb`` of host memory and ``gpu_memory_mb`` of one GPU's memory. A ``gpu`` item goes
    only to a server with GPUs (of ``gpu_kind`` when named); ``labels`` must all be on the
    server. ``load`` is the item's share of requests (any unit), split evenly over its replicas;
    only hot spreading reads it."""

    model: str
    version: int | str
    memory_mb: float
    gpu_memory_mb: float = 0.0
    device: Literal["cpu", "gpu"] = "cpu"
    gpu_kind: str | None = None
    replicas: int = 1
    labels: Mapping[str, str] = field(default_factory=dict)
    load: float = 0.0

    @property
    def key(self) -> str:
        return f"{self.model}@{self.version}"

    @property
    def wants_gpu(self) -> bool:
        return self.device == "gpu" or self.gpu_memory_mb > 0


@dataclass(frozen=True)
class Move:
    """One replica of ``key`` that leaves ``source`` for ``target`` (None: a new replica, or one
    that is dropped)."""

    key: str
    source: str | None
    target: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.key, "from": self.source, "to": self.target}


@dataclass(frozen=True)
class Plan:
    """Which servers hold each item (``model@version`` -> server names, in fleet order), the
    servers used, the lower bound no plan can beat, and the moves from the plan it replaces."""

    assignments: Mapping[str, tuple[str, ...]]
    servers: tuple[str, ...]  # the servers used, in fleet order
    lower_bound: int
    moves: tuple[Move, ...] = ()

    @property
    def servers_used(self) -> int:
        return len(self.servers)

    @property
    def relocations(self) -> int:
        """Replicas that change server (new and dropped replicas are not relocations)."""
        return sum(1 for m in self.moves if m.source is not None and m.target is not None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "assignments": {key: list(names) for key, names in self.assignments.items()},
            "servers_used": self.servers_used,
            "lower_bound": self.lower_bound,
            "moves": [m.to_dict() for m in self.moves],
        }


@dataclass(frozen=True)
class Unplaced:
    """An item (some of whose replicas) found no server, and why. For ``too-large``: the most
    host memory and GPU memory any server that could take it (labels, device) has for it."""

    key: str
    missing: int  # replicas without a server
    memory_mb: float
    gpu_memory_mb: float
    reason: Reason
    largest_mb: float = 0.0
    largest_gpu_mb: float = 0.0

    def too_large(self) -> str:
        """``m@1 needs 30,000 MB, the largest server for it holds 24,576 MB``."""
        if self.memory_mb > self.largest_mb:
            return (
                f"{self.key} needs {self.memory_mb:,.0f} MB, the largest server for it "
                f"holds {self.largest_mb:,.0f} MB"
            )
        return (
            f"{self.key} needs {self.gpu_memory_mb:,.0f} MB of GPU memory, the largest GPU for "
            f"it has {self.largest_gpu_mb:,.0f} MB"
        )


@dataclass(frozen=True)
class NoFit:
    """Why the items cannot be placed: the items that found no server, and how much memory the
    fleet lacks (in all, when the items need more than the fleet has; else what the unplaced
    replicas need)."""

    unplaced: tuple[Unplaced, ...]
    shortfall_mb: float
    gpu_shortfall_mb: float
    needed_mb: float
    usable_mb: float

    def describe(self) -> str:
        """One line: the models larger than any server, else the shortfall and the models left
        out."""
        large = [u for u in self.unplaced if u.reason == "too-large"]
        if large:
            shown = [u.too_large() for u in large[:SHOWN_MISSING]]
            more = f"; and {len(large) - len(shown)} more" if len(large) > len(shown) else ""
            plural = "s" if len(large) > 1 else ""
            return (
                f"{len(large)} model{plural} larger than any server that can take "
                f"{'them' if plural else 'it'}: {'; '.join(shown)}{more}"
            )
        short = [f"{self.shortfall_mb:,.0f} MB of host memory"] if self.shortfall_mb else []
        if self.gpu_shortfall_mb:
            short.append(f"{self.gpu_shortfall_mb:,.0f} MB of GPU memory")
        total = (
            f" (the models need {self.needed_mb:,.0f} MB, the fleet has {self.usable_mb:,.0f} MB)"
            if self.needed_mb > self.usable_mb
            else ""
        )
        return (
            f"the fleet is short of {' and '.join(short) or 'servers'}{total}: "
            f"{_missing(list(self.unplaced))}"
        )


def _missing(unplaced: list[Unplaced]) -> str:
    """``2 models do not fit (a@1: 9,000 MB, b@2: fewer servers than replicas)``."""
    shown = [_with_reason(u) for u in unplaced[:SHOWN_MISSING]]
    more = len(unplaced) - len(shown)
    if more:
        shown.append(f"{more} more")
    plural = len(unplaced) > 1
    return f"{len(unplaced)} model{'s do' if plural else ' does'} not fit ({', '.join(shown)})"


def _with_reason(unplaced: Unplaced) -> str:
    reason = {
        "no-server": "no server has its labels or device",
        "too-few-servers": "fewer servers than replicas",
        "no-room": f"{unplaced.memory_mb:,.0f} MB",
    }.get(unplaced.reason, unplaced.reason)
    copies = f"{unplaced.missing} replicas, " if unplaced.missing > 1 else ""
    return f"{unplaced.key}: {copies}{reason}"


__all__ = [
    "UNITS_PER_MB",
    "Item",
    "Move",
    "NoFit",
    "PlacementInputError",
    "Plan",
    "Reason",
    "Server",
    "Unplaced",
    "units",
]
