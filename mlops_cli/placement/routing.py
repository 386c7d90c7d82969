"""The routing table a plan gives the router: ``model@version`` -> the servers holding it.

A plain dict underneath, built once per plan revision, so a lookup is one hash probe (measured
by ``bench/placement.py``: well over a million lookups a second in one process).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlops_cli.placement.records import Plan


class RoutingTable:
    """Read-only: a new plan makes a new table (the router swaps the reference)."""

    __slots__ = ("_routes", "revision")

    def __init__(self, routes: Mapping[str, tuple[str, ...]], *, revision: int = 0) -> None:
        self._routes: dict[str, tuple[str, ...]] = {key: tuple(v) for key, v in routes.items()}
        self.revision = revision

    @classmethod
    def from_plan(cls, placed: Plan, *, revision: int = 0) -> RoutingTable:
        return cls(placed.assignments, revision=revision)

    def servers_for(self, key: str) -> tuple[str, ...]:
        """The servers holding ``key`` (``model@version``); none when the plan does not place it."""
        return self._routes.get(key, ())

    def __len__(self) -> int:
        return len(self._routes)

    def __contains__(self, key: object) -> bool:
        return key in self._routes

    def to_dict(self) -> dict[str, Any]:
        return {"revision": self.revision, "routes": {k: list(v) for k, v in self._routes.items()}}


__all__ = ["RoutingTable"]
