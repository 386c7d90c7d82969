"""The packing state the planner works on: which servers are open, what each has free, and
which replicas each holds, with best-fit lookups in O(log n).

One owner for the state: :class:`Packer` changes only through :meth:`Packer.assign` and
:meth:`Packer.unassign`, which keep every index in step. Servers fall into classes (same labels,
same GPU kind); each class keeps its open servers sorted by free host memory, so the best fit
for a host-memory item is a bisection plus a short walk past servers that hold the same model
(replicas stay apart) or lack GPU memory or request-load room. Items that need GPU memory are
best-fitted by GPU memory over the open GPU servers they may use (a linear scan: GPU servers are
few). A server that loses its last replica closes; servers open in order of preference (for a
CPU item: servers without GPUs first, then the largest, then fleet order), and the ``spare``
server, when given, is copied under a fresh name whenever no server of the fleet can take an
item ("as many servers of that size as needed").
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from mlops_cli.placement.records import Item, Move, PlacementInputError, Plan, Server, units

_Signature = tuple[tuple[tuple[str, str], ...], bool, str | None]


@dataclass(frozen=True, slots=True)
class Need:
    """One replica's demand, in KiB, and the server classes it may use."""

    host: int
    gpu: int
    load: float
    classes: tuple[int, ...]
    avoids_gpu: bool  # a CPU item: open a server without GPUs before one with


class Packer:
    """Servers (``servers`` in fleet order, plus copies of ``spare`` on demand) and the replicas
    placed on them. ``load_cap`` bounds the request load of each server (None: unbounded)."""

    def __init__(
        self,
        servers: Sequence[Server],
        *,
        spare: Server | None = None,
        load_cap: float | None = None,
    ) -> None:
        self.load_cap = math.inf if load_cap is None else load_cap
        self.spare = spare
        self.servers: list[Server] = []
        self.host_free: list[int] = []
        self.gpu_free: list[float] = []  # inf where GPU memory is not declared
        self.gpu_each: list[float] = []
        self.load: list[float] = []
        self.keys: list[set[str]] = []
        self.is_open: list[bool] = []
        self.class_of: list[int] = []
        self.signatures: list[_Signature] = []
        self.has_gpu: list[bool] = []
        self.index: list[list[tuple[int, int]]] = []  # per class: (host free, slot), open ones
        self.closed: list[list[tuple[int, int]]] = []  # per class: (-host free, slot), closed
        self.by_name: dict[str, int] = {}
        self.rank: list[int] = []  # fleet order: listed servers first, then spare copies by number
        self.needs: dict[str, Need] = {}
        self.replicas: dict[str, int] = {}
        self.placed: dict[str, list[int]] = {}
        self._class_ids: dict[_Signature, int] = {}
        self._compatible: dict[tuple[object, ...], tuple[int, ...]] = {}
        self._spare_count = 0
        for server in servers:
            if server.name in self.by_name:
                raise PlacementInputError(f"server {server.name!r} appears twice")
            self._add_slot(server)
        self._listed = len(self.servers)
        self.spare_class = self._class(spare) if spare is not None else None

    # -- servers -----------------------------------------------------------------------------

    def _class(self, server: Server) -> int:
        labels = tuple(sorted(server.all_labels().items()))
        signature = (labels, server.gpu_count > 0, server.gpu_kind if server.gpu_count else None)
        found = self._class_ids.get(signature)
        if found is None:
            found = self._class_ids[signature] = len(self.signatures)
            self.signatures.append(signature)
            self.has_gpu.append(signature[1])
            self.index.append([])
            self.closed.append([])
        return found

    def _add_slot(self, server: Server, number: int | None = None) -> int:
        if server.usable_mb <= 0:
            raise PlacementInputError(
                f"server {server.name!r} has no memory left for models "
                f"({server.memory_mb:g} MB less headroom and memory in use)"
            )
        slot = len(self.servers)
        cls = self._class(server)
        declared = server.gpu_count > 0 and server.gpu_memory_mb > 0
        self.servers.append(server)
        self.host_free.append(units(server.usable_mb, up=False))
        self.gpu_free.append(units(server.gpu_usable_mb, up=False) if declared else math.inf)
        self.gpu_each.append(units(server.gpu_memory_mb, up=False) if declared else math.inf)
        self.load.append(0.0)
        self.keys.append(set())
        self.is_open.append(False)
        self.class_of.append(cls)
        self.by_name[server.name] = slot
        self.rank.append(slot if number is None else self._listed + number)
        bisect.insort(self.closed[cls], (-self.host_free[slot], slot))
        return slot

    def slot_named(self, name: str) -> int | None:
        """The slot of server ``name``; a spare copy's name (``<spare>-<n>``) makes it exist."""
        if name in self.by_name:
            return self.by_name[name]
        spare = self.spare
        prefix = f"{spare.name}-" if spare is not None else ""
        number = name.removeprefix(prefix) if prefix else ""
        if (
            spare is None
            or not name.startswith(prefix)
            or not (number.isascii() and number.isdecimal())
        ):
            return None
        return self._add_slot(replace(spare, name=name), int(number))

    def _new_spare(self) -> int | None:
        if self.spare is None:
            return None
        while True:
            self._spare_count += 1
            name = f"{self.spare.name}-{self._spare_count}"
            if name not in self.by_name:
                return self._add_slot(replace(self.spare, name=name), self._spare_count)

    # -- items -------------------------------------------------------------------------------

    def add_item(self, item: Item) -> Need:
        """Register ``item`` (not yet placed)."""
        if item.key in self.needs:
            raise PlacementInputError(f"{item.key} appears twice")
        if not (item.memory_mb > 0 and math.isfinite(item.memory_mb)):
            raise PlacementInputError(f"{item.key}: memory must be more than 0 MB")
        if item.gpu_memory_mb < 0 or not math.isfinite(item.gpu_memory_mb):
            raise PlacementInputError(f"{item.key}: GPU memory must be 0 MB or more")
        if item.replicas < 1:
            raise PlacementInputError(f"{item.key}: replicas must be 1 or more")
        need = Need(
            host=units(item.memory_mb, up=True),
            gpu=units(item.gpu_memory_mb, up=True),
            load=item.load / item.replicas,
            classes=self._classes_for(item),
            avoids_gpu=not item.wants_gpu,
        )
        self.needs[item.key] = need
        self.replicas[item.key] = item.replicas
        self.placed[item.key] = []
        return need

    def _classes_for(self, item: Item) -> tuple[int, ...]:
        wanted = (tuple(sorted(item.labels.items())), item.wants_gpu, item.gpu_kind)
        found = self._compatible.get(wanted)
        if found is None:
            found = self._compatible[wanted] = tuple(
                cls for cls in range(len(self.signatures)) if _accepts(self.signatures[cls], item)
            )
        return found

    def fresh_fit(self, server: Server, need: Need) -> bool:
        """Whether an empty ``server`` can take one replica."""
        if units(server.usable_mb, up=False) < need.host or need.load > self.load_cap:
            return False
        if need.gpu == 0 or server.gpu_memory_mb <= 0:
            return True
        return (
            units(server.gpu_memory_mb, up=False) >= need.gpu
            and units(server.gpu_usable_mb, up=False) >= need.gpu
        )

    def _fits(self, slot: int, key: str, need: Need) -> bool:
        return (
            self.host_free[slot] >= need.host
            and self.gpu_free[slot] >= need.gpu
            and self.gpu_each[slot] >= need.gpu
            and self.load[slot] + need.load <= self.load_cap
            and key not in self.keys[slot]
        )

    def best_open(self, key: str) -> int | None:
        """The open server with the least room left after taking a replica of ``key``."""
        need = self.needs[key]
        best: tuple[float, int, int] | None = None
        if need.gpu:
            for cls in need.classes:
                for _, slot in self.index[cls]:
                    if self._fits(slot, key, need):
                        score = (self.gpu_free[slot] - need.gpu, self.host_free[slot], slot)
                        best = score if best is None or score < best else best
            return None if best is None else best[2]
        for cls in need.classes:
            ranked = self.index[cls]
            for position in range(bisect.bisect_left(ranked, (need.host, -1)), len(ranked)):
                free, slot = ranked[position]
                if self._fits(slot, key, need):
                    if best is None or (free, slot) < best[1:]:
                        best = (0, free, slot)
                    break
        return None if best is None else best[2]

    def open_server(self, key: str) -> int | None:
        """A closed server (or a new spare copy) that can take a replica of ``key``."""
        need = self.needs[key]
        best: tuple[bool, int, int] | None = None
        for cls in need.classes:
            for negative_free, slot in self.closed[cls]:
                if -negative_free < need.host:
                    break
                if self._fits(slot, key, need):
                    score = (need.avoids_gpu and self.has_gpu[cls], negative_free, slot)
                    best = score if best is None or score < best else best
                    break
        if best is not None:
            return best[2]
        if self.spare is None or self.spare_class not in need.classes:
            return None
        if not self.fresh_fit(self.spare, need):
            return None
        return self._new_spare()

    def add(self, item: Item) -> int:
        """Register ``item`` and place its replicas by best fit, moving nothing else (online
        arrival); how many replicas found no server."""
        self.add_item(item)
        return self.place(item.key)

    def place(self, key: str, *, may_open: bool = True) -> int:
        """Place the missing replicas of ``key`` by best fit; how many still found no server."""
        missing = self.replicas[key] - len(self.placed[key])
        while missing:
            slot = self.best_open(key)
            if slot is None and may_open:
                slot = self.open_server(key)
            if slot is None:
                break
            self.assign(key, slot)
            missing -= 1
        return missing

    def assign(self, key: str, slot: int) -> None:
        """Put a replica of ``key`` on ``slot`` (opening it); the caller checked the fit."""
        need = self.needs[key]
        cls = self.class_of[slot]
        if self.is_open[slot]:
            _remove(self.index[cls], (self.host_free[slot], slot))
        else:
            _remove(self.closed[cls], (-self.host_free[slot], slot))
            self.is_open[slot] = True
        self.host_free[slot] -= need.host
        self.gpu_free[slot] -= need.gpu
        self.load[slot] += need.load
        self.keys[slot].add(key)
        self.placed[key].append(slot)
        bisect.insort(self.index[cls], (self.host_free[slot], slot))

    def unassign(self, key: str, slot: int) -> None:
        """Take the replica of ``key`` off ``slot``; a server left empty closes."""
        need = self.needs[key]
        cls = self.class_of[slot]
        _remove(self.index[cls], (self.host_free[slot], slot))
        self.host_free[slot] += need.host
        self.gpu_free[slot] += need.gpu
        self.load[slot] -= need.load
        self.keys[slot].discard(key)
        self.placed[key].remove(slot)
        if self.keys[slot]:
            bisect.insort(self.index[cls], (self.host_free[slot], slot))
        else:
            self.is_open[slot] = False
            self.load[slot] = 0.0  # no float residue on an empty server
            bisect.insort(self.closed[cls], (-self.host_free[slot], slot))

    def fits_on(self, key: str, slot: int) -> bool:
        return self._fits(slot, key, self.needs[key]) and self.class_of[slot] in (
            self.needs[key].classes
        )

    # -- reading -----------------------------------------------------------------------------

    def open_slots(self) -> list[int]:
        """The open servers, in fleet order."""
        return sorted(
            (s for s, is_open in enumerate(self.is_open) if is_open), key=self.rank.__getitem__
        )

    def capacity(self, slot: int) -> int:
        """Host memory for models on ``slot``, in KiB."""
        return units(self.servers[slot].usable_mb, up=False)

    def used_units(self, slot: int) -> int:
        return self.capacity(slot) - self.host_free[slot]

    def assignments(self) -> dict[str, tuple[str, ...]]:
        return {
            key: tuple(self.servers[s].name for s in sorted(slots, key=self.rank.__getitem__))
            for key, slots in sorted(self.placed.items())
            if slots
        }

    def snapshot(self, *, lower_bound: int, previous: Plan | None = None) -> Plan:
        assignments = self.assignments()
        moves = diff(previous.assignments, assignments) if previous is not None else ()
        servers = tuple(self.servers[slot].name for slot in self.open_slots())
        return Plan(assignments, servers, lower_bound, moves)


def _accepts(signature: _Signature, item: Item) -> bool:
    labels, has_gpu, gpu_kind = signature
    found = dict(labels)
    if any(found.get(name) != value for name, value in item.labels.items()):
        return False
    return not item.wants_gpu or (has_gpu and item.gpu_kind in (None, gpu_kind))


def _remove(ranked: list[tuple[int, int]], entry: tuple[int, int]) -> None:
    del ranked[bisect.bisect_left(ranked, entry)]


def diff(
    before: Mapping[str, Iterable[str]], after: Mapping[str, Iterable[str]]
) -> tuple[Move, ...]:
    """The moves that turn ``before`` into ``after``: per item, the servers it leaves paired in
    name order with the servers it arrives on; the rest are new or dropped replicas."""
    moves: list[Move] = []
    for key in sorted(set(before) | set(after)):
        old, new = set(before.get(key, ())), set(after.get(key, ()))
        leaving, arriving = sorted(old - new), sorted(new - old)
        for index in range(max(len(leaving), len(arriving))):
            source = leaving[index] if index < len(leaving) else None
            target = arriving[index] if index < len(arriving) else None
            moves.append(Move(key, source, target))
    return tuple(moves)


__all__ = ["Need", "Packer", "diff"]
