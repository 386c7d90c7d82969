"""Plans: pack model versions onto as few servers as possible, add one without moving the others,
and bring a fragmented fleet back near the best packing with few moves. Pure: no I/O.

Strategy (measured by ``bench/placement.py`` against first-fit-decreasing):

- :func:`plan` (from scratch): best-fit-decreasing. Replicas are sorted by size (the larger of
  their host and GPU share of the largest server), largest first, ties by name; each goes to the
  open server it leaves the least room on (:class:`~mlops_cli.placement.packer.Packer`), and a
  server opens only when no open one fits. On a fleet too full for that order, once more with
  the most constrained items first (most replicas, fewest kinds of server they may use). Then a
  repacking pass: the least-full servers, one at a time, give their replicas to the others' gaps
  (best fit again), and close when all found room; it stops at the lower bound or when none of
  the ten least-full servers can be emptied.
- :func:`add` (online): best fit for the new item's replicas on the current state; nothing else
  moves, ever.
- :func:`rebalance`: keep every replica where it is (those whose server is gone or now too
  small are placed again, as moves), then empty the least-full servers into the others' gaps, one
  server at a time and only when all of its replicas find room, until the server count of a
  from-scratch plan is reached, or ``max_moves`` would be passed. Each emptied server costs the
  replicas it held, so few moves buy each server saved.

Constraints hold in every step: host and GPU memory separately (after headroom), replicas of one
item on distinct servers, required labels (``zone``, ``gpu``) and device. The same input gives the
same plan: every order is by size then name, every tie by fleet order. When the items cannot be
placed the answer is a :class:`~mlops_cli.placement.records.NoFit` saying which and by how much,
never an exception (bad input, such as an item listed twice, is
:class:`~mlops_cli.placement.records.PlacementInputError`).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from dataclasses import replace

from mlops_cli.placement.packer import Packer
from mlops_cli.placement.records import (
    UNITS_PER_MB,
    Item,
    NoFit,
    PlacementInputError,
    Plan,
    Reason,
    Server,
    Unplaced,
    units,
)

REPACK_ATTEMPTS = 10  # least-full servers tried per round before a repacking pass gives up


def lower_bound(
    servers: Sequence[Server], items: Iterable[Item], *, spare: Server | None = None
) -> int:
    """Fewer servers cannot hold ``items``: per dimension (host, GPU memory) the fewest of the
    largest servers whose capacity covers the total (``ceil(total / capacity)`` for a uniform
    fleet), and at least the most replicas of one item."""
    listed = list(items)
    if not listed:
        return 0
    host = sum(units(i.memory_mb, up=True) * i.replicas for i in listed)
    spare_host = units(spare.usable_mb, up=False) if spare is not None else 0
    bound = max(
        max(i.replicas for i in listed),
        _fewest(host, [units(s.usable_mb, up=False) for s in servers], spare_host),
    )
    gpu = sum(units(i.gpu_memory_mb, up=True) * i.replicas for i in listed)
    gpu_servers = [s for s in servers if s.gpu_count]
    spare_gpu = spare is not None and spare.gpu_count > 0
    declared = all(s.gpu_memory_mb > 0 for s in gpu_servers) and (
        not spare_gpu or (spare is not None and spare.gpu_memory_mb > 0)
    )
    if gpu and declared:
        each = units(spare.gpu_usable_mb, up=False) if spare is not None and spare_gpu else 0
        bound = max(
            bound, _fewest(gpu, [units(s.gpu_usable_mb, up=False) for s in gpu_servers], each)
        )
    return bound


def _fewest(total: int, capacities: list[int], each: int) -> int:
    """The fewest servers whose capacities sum to ``total``: the largest listed ones first, then
    as many copies of capacity ``each`` (0: none) as needed."""
    count = 0
    for capacity in sorted((c for c in capacities if c > each), reverse=True):
        if total <= 0:
            return count
        total -= capacity
        count += 1
    if total > 0 and each > 0:
        count += math.ceil(total / each)
    elif total > 0:
        count = len(capacities)  # it does not fit at all: plan() says so
    return count


def plan(
    servers: Sequence[Server],
    items: Iterable[Item],
    *,
    spare: Server | None = None,
    previous: Plan | None = None,
    load_cap: float | None = None,
) -> Plan | NoFit:
    """Place every item from scratch on as few servers as possible (``spare``: copies of it are
    added as needed); ``moves`` say how this differs from ``previous``. ``load_cap`` bounds each
    server's request load (see :mod:`mlops_cli.placement.hot`)."""
    listed = list(items)
    packer = Packer(servers, spare=spare, load_cap=load_cap)
    for item in listed:
        packer.add_item(item)
    bound = lower_bound(servers, listed, spare=spare)
    impossible = _impossible(packer, listed)
    if impossible:
        return _no_fit(packer, listed, impossible)
    missing = place_decreasing(packer, [i.key for i in listed])
    if missing:
        # a full fleet: try once more with the most constrained items (most replicas, fewest
        # servers they may use) first, before saying they do not fit
        retry = Packer(servers, spare=spare, load_cap=load_cap)
        for item in listed:
            retry.add_item(item)
        if place_decreasing(retry, [i.key for i in listed], constrained_first=True):
            return _no_fit(packer, listed, missing)
        packer = retry
    repack(packer, target=bound, budget=None)
    return packer.snapshot(lower_bound=bound, previous=previous)


def add(
    current: Plan,
    servers: Sequence[Server],
    items: Iterable[Item],
    item: Item,
    *,
    spare: Server | None = None,
) -> Plan | NoFit:
    """``current`` (a plan of ``items``) with ``item`` placed by best fit, nothing else moved.
    The plan must hold on ``servers`` as it is (else: :func:`rebalance` it)."""
    listed = list(items)
    packer = _restored(current, servers, listed, spare=spare, strict=True)
    packer.add_item(item)
    impossible = _impossible(packer, [item])
    if impossible:
        return _no_fit(packer, [*listed, item], impossible)
    missing = packer.place(item.key)  # what Packer.add does, after the check above
    if missing:
        return _no_fit(packer, [*listed, item], [_unplaced(item, missing, "no-room")])
    bound = lower_bound(servers, [*listed, item], spare=spare)
    return packer.snapshot(lower_bound=bound, previous=current)


def rebalance(
    current: Plan,
    servers: Sequence[Server],
    items: Iterable[Item],
    *,
    spare: Server | None = None,
    max_moves: int | None = None,
) -> Plan | NoFit:
    """Bring ``current`` back near the best packing of ``items`` on ``servers``, moving as few
    replicas as possible (at most ``max_moves`` relocations when given, beyond the replicas that
    must move because their server is gone or too small). ``moves`` lists what changes; nothing
    is applied here."""
    listed = list(items)
    packer = _restored(current, servers, listed, spare=spare, strict=False)
    impossible = _impossible(packer, listed)
    if impossible:
        return _no_fit(packer, listed, impossible)
    missing = place_decreasing(packer, [i.key for i in listed])
    if missing:
        return _no_fit(packer, listed, missing)
    bound = lower_bound(servers, listed, spare=spare)
    best = plan(servers, listed, spare=spare)
    target = best.servers_used if isinstance(best, Plan) else bound
    repack(packer, target=target, budget=max_moves)
    return packer.snapshot(lower_bound=bound, previous=current)


# -- steps -------------------------------------------------------------------------------------


def _restored(
    current: Plan,
    servers: Sequence[Server],
    items: list[Item],
    *,
    spare: Server | None,
    strict: bool,
) -> Packer:
    """A packer holding ``items`` where ``current`` puts them (in name order). A replica whose
    server is gone or cannot take it is left out (``strict``: refused)."""
    packer = Packer(servers, spare=spare)
    for item in items:
        packer.add_item(item)
    for key in sorted(current.assignments):
        if key not in packer.needs:
            continue
        for name in current.assignments[key]:
            if len(packer.placed[key]) == packer.replicas[key]:
                if strict:
                    raise PlacementInputError(
                        f"the plan has more replicas of {key} than its {packer.replicas[key]}",
                        hint="rebalance the plan first",
                    )
                break  # fewer replicas wanted now: the rest are dropped
            slot = packer.slot_named(name)
            if slot is not None and packer.fits_on(key, slot):
                packer.assign(key, slot)
            elif strict:
                raise PlacementInputError(
                    f"the plan puts {key} on {name}, which cannot hold it now",
                    hint="rebalance the plan first",
                )
    return packer


def place_decreasing(
    packer: Packer, keys: list[str], *, constrained_first: bool = False
) -> list[Unplaced]:
    """Best fit, largest share of a server first (``constrained_first``: items with more
    replicas, then with fewer classes of servers to go to, before size); the replicas that
    found no server."""
    host_scale = max((units(s.usable_mb, up=False) for s in _all_servers(packer)), default=1)
    gpu_scale = max((units(s.gpu_usable_mb, up=False) for s in _all_servers(packer)), default=0)

    def size(key: str) -> tuple[float, float, float, str]:
        need = packer.needs[key]
        share = need.host / host_scale
        if need.gpu and gpu_scale:
            share = max(share, need.gpu / gpu_scale)
        if need.load and packer.load_cap < math.inf:
            share = max(share, need.load / packer.load_cap)
        if constrained_first:
            return (-packer.replicas[key], len(need.classes), -share, key)
        return (0, 0, -share, key)

    missing: list[Unplaced] = []
    for key in sorted(keys, key=size):
        left = packer.place(key)
        if left:
            need = packer.needs[key]
            missing.append(
                Unplaced(key, left, need.host / UNITS_PER_MB, need.gpu / UNITS_PER_MB, "no-room")
            )
    return missing


def repack(packer: Packer, *, target: int, budget: int | None) -> int:
    """Empty the least-full servers into the others while more than ``target`` are open and the
    moves stay within ``budget``; the replicas moved."""
    spent = 0
    while len(open_slots := packer.open_slots()) > target:
        ranked = sorted(
            open_slots,
            key=lambda s: (packer.used_units(s) / packer.capacity(s), s),
        )
        for slot in ranked[:REPACK_ATTEMPTS]:
            cost = len(packer.keys[slot])
            if budget is not None and spent + cost > budget:
                continue
            if _empty(packer, slot):
                spent += cost
                break
        else:
            return spent
    return spent


def _empty(packer: Packer, slot: int) -> bool:
    """Move every replica on ``slot`` to other open servers (best fit, largest first), or, when
    one finds no room, put everything back and answer False."""
    keys = sorted(packer.keys[slot], key=lambda k: (-packer.needs[k].host, -packer.needs[k].gpu, k))
    for key in keys:
        packer.unassign(key, slot)
    moved: list[tuple[str, int]] = []
    for key in keys:
        target = packer.best_open(key)
        if target is None:
            for done, where in moved:
                packer.unassign(done, where)
            for back in keys:
                packer.assign(back, slot)
            return False
        packer.assign(key, target)
        moved.append((key, target))
    return True


def _all_servers(packer: Packer) -> list[Server]:
    return [*packer.servers, *([packer.spare] if packer.spare is not None else [])]


def _impossible(packer: Packer, items: list[Item]) -> list[Unplaced]:
    """Items no plan can place: larger than every server that could take them, with no such
    server at all, or with more replicas than such servers."""
    by_class: dict[int, list[int]] = {}
    for slot, cls in enumerate(packer.class_of):
        by_class.setdefault(cls, []).append(slot)
    sizes = {cls: sorted(packer.capacity(s) for s in slots) for cls, slots in by_class.items()}
    found: list[Unplaced] = []
    for item in items:
        need = packer.needs[item.key]
        spare = packer.spare if packer.spare_class in need.classes else None
        if spare is not None and packer.fresh_fit(spare, need):
            continue  # as many copies of the spare server as the replicas need
        if need.load > packer.load_cap:
            roomy = 0
        elif need.gpu:
            roomy = sum(
                packer.fresh_fit(packer.servers[slot], need)
                for cls in need.classes
                for slot in by_class.get(cls, ())
            )
        else:
            roomy = sum(
                len(sizes[c]) - bisect.bisect_left(sizes[c], need.host)
                for c in need.classes
                if c in sizes
            )
        if roomy >= item.replicas:
            continue
        if roomy:
            found.append(_unplaced(item, item.replicas - roomy, "too-few-servers"))
            continue
        allowed = [packer.servers[slot] for c in need.classes for slot in by_class.get(c, ())]
        allowed += [spare] if spare is not None else []
        if not allowed:
            found.append(_unplaced(item, item.replicas, "no-server"))
            continue
        gpus = [min(s.gpu_memory_mb, s.gpu_usable_mb) for s in allowed if s.gpu_memory_mb > 0]
        found.append(
            replace(
                _unplaced(item, item.replicas, "too-large"),
                largest_mb=max(s.usable_mb for s in allowed),
                largest_gpu_mb=max(gpus, default=0.0),
            )
        )
    return found


def _unplaced(item: Item, missing: int, reason: Reason) -> Unplaced:
    return Unplaced(item.key, missing, item.memory_mb, item.gpu_memory_mb, reason)


def _no_fit(packer: Packer, items: list[Item], unplaced: list[Unplaced]) -> NoFit:
    needed = sum(i.memory_mb * i.replicas for i in items)
    usable = sum(s.usable_mb for s in packer.servers)
    gpu_needed = sum(i.gpu_memory_mb * i.replicas for i in items)
    gpu_usable = sum(s.gpu_usable_mb for s in packer.servers)
    if packer.spare is not None:
        usable = needed  # copies of the spare server can hold any total
        gpu_usable = gpu_needed
    short = max(0.0, needed - usable)
    gpu_short = max(0.0, gpu_needed - gpu_usable) if gpu_usable else 0.0
    if not short and not gpu_short:
        if all(u.gpu_memory_mb > 0 for u in unplaced):
            gpu_short = sum(u.gpu_memory_mb * u.missing for u in unplaced)
        else:
            short = sum(u.memory_mb * u.missing for u in unplaced)
    return NoFit(
        unplaced=tuple(sorted(unplaced, key=lambda u: (-u.memory_mb, u.key))),
        shortfall_mb=round(short, 1),
        gpu_shortfall_mb=round(gpu_short, 1),
        needed_mb=round(needed, 1),
        usable_mb=round(usable, 1),
    )


__all__ = ["add", "lower_bound", "plan", "rebalance"]
