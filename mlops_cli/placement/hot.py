"""Hot spreading: more replicas for the items that draw the most requests, placed so that no
server carries more than ``max_ratio`` times the mean request load.

An item's load is split evenly over its replicas, so a server's load is at least that of the
hottest replica it holds: an item with a tenth of all requests on a fleet of 400 servers needs
27 replicas before any placement can keep every server under 1.5x the mean. The plan:

1. ``servers``: the server count to aim at, first that of a plan without spreading;
   ``mean = total load / servers``, ``cap = max_ratio * mean``.
2. Every item gets ``ceil(load / mean)`` replicas at least: a hot replica then carries at most
   the mean, which leaves each server room under the cap for the many cold items that fill its
   memory. (Replicas of exactly ``ceil(load / cap)`` would need fewer copies, but servers whose
   load budget is used up by one replica, with most of their memory idle.)
3. Replicas with a load of at least 1% of the mean go out first, the heaviest first, each to the
   least-loaded server that has room (worst fit by load: the load is spread evenly); the cold
   rest is packed by memory (best-fit-decreasing, :mod:`mlops_cli.placement.planner`) with
   ``cap`` as one more limit per server, then repacked.
4. The cap is set for a little more than the servers aimed at (0.5% and one), so a packing that
   opens a few more still keeps its promise. When the replicas' memory needs more servers than
   that (the lower bound grows) or the packing opens more, the mean falls and the cap with it:
   aim at the new count and repeat, so the promise holds for the plan returned.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from dataclasses import replace

from mlops_cli.placement.packer import Packer
from mlops_cli.placement.planner import lower_bound, place_decreasing, plan, repack
from mlops_cli.placement.records import Item, NoFit, Plan, Server

MAX_ROUNDS = 8
SLACK_PER = 200  # the cap is set for 0.5% (and one) more servers than aimed at
HOT_SHARE = 0.01  # replicas with at least this share of the mean load are spread by load


def server_loads(placed: Plan, items: Iterable[Item]) -> dict[str, float]:
    """Each used server's request load: every item's load split evenly over its replicas."""
    loads = dict.fromkeys(placed.servers, 0.0)
    for item in items:
        names = placed.assignments.get(item.key, ())
        for name in names:
            loads[name] += item.load / len(names)
    return loads


def spread_hot(
    servers: Sequence[Server],
    items: Iterable[Item],
    *,
    spare: Server | None = None,
    max_ratio: float = 1.5,
) -> Plan | NoFit:
    """A plan of ``items`` in which no server's load exceeds ``max_ratio`` times the mean load
    over the servers used, hot items getting the replicas that takes (never fewer than asked)."""
    if not max_ratio >= 1:
        raise ValueError(f"max_ratio must be at least 1, not {max_ratio}")
    listed = list(items)
    total = sum(item.load for item in listed)
    result = plan(servers, listed, spare=spare)
    if isinstance(result, NoFit) or total <= 0:
        return result
    count = result.servers_used
    for _ in range(MAX_ROUNDS):
        limit = count + 1 + count // SLACK_PER
        mean = total / limit
        spread = [
            replace(item, replicas=max(item.replicas, math.ceil(item.load / mean)))
            for item in listed
        ]
        bound = lower_bound(servers, spread, spare=spare)
        if bound > count:
            count = bound
            continue
        result = _place(servers, spread, spare=spare, count=count, mean=mean, ratio=max_ratio)
        if isinstance(result, NoFit) or result.servers_used <= limit:
            return result
        count = result.servers_used
    return result


def _place(
    servers: Sequence[Server],
    items: list[Item],
    *,
    spare: Server | None,
    count: int,
    mean: float,
    ratio: float,
) -> Plan | NoFit:
    """Hot replicas by load onto ``count`` servers, then the rest by memory, each server's load
    under ``ratio * mean``."""
    packer = Packer(servers, spare=spare, load_cap=ratio * mean)
    for item in items:
        packer.add_item(item)
    hot = sorted(
        (i for i in items if i.load / i.replicas >= HOT_SHARE * mean),
        key=lambda i: (-i.load / i.replicas, i.key),
    )
    by_load: list[tuple[float, int]] = []
    for item in hot:
        for _ in range(item.replicas):
            slot = None
            if len(by_load) < count:
                slot = packer.open_server(item.key)  # an empty server is the least loaded
            if slot is None:
                slot = _least_loaded(packer, by_load, item.key)
            if slot is None:
                break  # the memory packing below places it (or says it cannot)
            if packer.is_open[slot]:
                del by_load[bisect.bisect_left(by_load, (packer.load[slot], slot))]
            packer.assign(item.key, slot)
            bisect.insort(by_load, (packer.load[slot], slot))
    missing = place_decreasing(packer, [i.key for i in items])
    bound = lower_bound(servers, items, spare=spare)
    if missing:
        return plan(servers, items, spare=spare)  # its NoFit says why
    repack(packer, target=bound, budget=None)
    return packer.snapshot(lower_bound=bound)


def _least_loaded(packer: Packer, by_load: list[tuple[float, int]], key: str) -> int | None:
    """The open server with the least load that can take a replica of ``key``."""
    for _, slot in by_load:
        if packer.fits_on(key, slot):
            return slot
    return None


__all__ = ["server_loads", "spread_hot"]
