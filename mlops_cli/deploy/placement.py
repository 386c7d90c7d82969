"""Placement: which server of a fleet takes a model, decided from a snapshot, with no I/O.

The Triton targets observe their servers once (:class:`ServerSnapshot`: capacity, memory already
used by the loaded models, GPUs, labels, reachability) and hand the snapshot and the model's needs
(:class:`ModelNeeds`) to :func:`place`. Keeping the decision pure makes it testable on generated
fleets in microseconds, and lets a simulator or a planner call it without servers.

The rule today is first fit by memory, in the fleet file's order: the first reachable server that
has the right device and enough free memory. A GPU model goes only to a server with GPUs, and
of the kind it names when it names one. When no server fits, the answer is a
:class:`PlacementRefusal` that says why for each server, never an exception or a sentinel.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class ServerSnapshot:
    """One server as observed: ``used_mb`` is the memory its loaded models declare."""

    name: str
    memory_mb: float  # capacity
    used_mb: float = 0.0
    gpu_kind: str | None = None
    gpu_count: int = 0
    labels: Mapping[str, str] = field(default_factory=dict)
    reachable: bool = True

    @property
    def free_mb(self) -> float:
        return self.memory_mb - self.used_mb


@dataclass(frozen=True)
class ModelNeeds:
    """What a model version needs from a server."""

    memory_mb: float
    device: Literal["cpu", "gpu"] = "cpu"
    gpu_kind: str | None = None  # a GPU model may name the kind it needs


@dataclass(frozen=True)
class PlacementRefusal:
    """No server fits: one reason per server, in fleet order (``a: 12 MB free``)."""

    reasons: tuple[str, ...]

    def describe(self) -> str:
        return "; ".join(self.reasons) or "the fleet has no servers"


def refusal_reason(server: ServerSnapshot, needs: ModelNeeds) -> str | None:
    """Why ``server`` cannot take the model (None: it can)."""
    if not server.reachable:
        return f"{server.name}: unreachable"
    if needs.device == "gpu" and (
        server.gpu_count == 0 or (needs.gpu_kind and server.gpu_kind != needs.gpu_kind)
    ):
        return f"{server.name}: no {needs.gpu_kind or 'GPU'}"
    if server.free_mb < needs.memory_mb:
        return f"{server.name}: {server.free_mb:g} MB free"
    return None


def place(fleet: Sequence[ServerSnapshot], needs: ModelNeeds) -> ServerSnapshot | PlacementRefusal:
    """The first server (in ``fleet`` order) that can take the model, else why none can."""
    reasons: list[str] = []
    for server in fleet:
        reason = refusal_reason(server, needs)
        if reason is None:
            return server
        reasons.append(reason)
    return PlacementRefusal(tuple(reasons))


__all__ = ["ModelNeeds", "PlacementRefusal", "ServerSnapshot", "place", "refusal_reason"]
