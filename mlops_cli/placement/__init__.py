"""Placement planning: which servers hold which model versions, decided from plain records with
no I/O.

:func:`plan` packs items (model versions with memory, replicas, labels) onto servers (memory,
GPUs, labels, headroom) on as few servers as possible; :func:`add` places one more without
moving any other; :func:`rebalance` brings a fragmented placement back near the best packing with
few moves (:class:`Packer` is the state they share, for callers that place many items one at a
time); :func:`spread_hot` adds replicas of hot items so that no server carries much more than
the mean request load; :class:`RoutingTable` answers ``model@version -> servers`` in O(1); :func:`simulate` replays a
trace of requests on a fleet that loads models on demand (:mod:`mlops_cli.placement.simulate`). The
strategy is stated in :mod:`mlops_cli.placement.planner`. The Triton fleet target keeps its own
first-fit rule (:mod:`mlops_cli.deploy.placement`) until apply uses these plans.
"""

from __future__ import annotations

from mlops_cli.placement.hot import server_loads, spread_hot
from mlops_cli.placement.packer import Packer
from mlops_cli.placement.planner import add, lower_bound, plan, rebalance
from mlops_cli.placement.records import (
    Item,
    Move,
    NoFit,
    PlacementInputError,
    Plan,
    Server,
    Unplaced,
)
from mlops_cli.placement.routing import RoutingTable
from mlops_cli.placement.simulate import (
    FleetModel,
    Simulation,
    Trace,
    Workload,
    lru_hit_rate,
    simulate,
)

__all__ = [
    "FleetModel",
    "Item",
    "Move",
    "NoFit",
    "Packer",
    "PlacementInputError",
    "Plan",
    "RoutingTable",
    "Server",
    "Simulation",
    "Trace",
    "Unplaced",
    "Workload",
    "add",
    "lower_bound",
    "lru_hit_rate",
    "plan",
    "rebalance",
    "server_loads",
    "simulate",
    "spread_hot",
]
