"""What ``mlops tune`` searches: a serving configuration (model instances per server,
``max_batch_size``, preferred batch sizes, the dynamic batcher's queue delay) and the client load
it is measured under (a concurrency, or a request rate).

Each dimension is an ordered tuple of values; the search moves one step along one dimension at a
time (:meth:`SearchSpace.step`). A batch size of 1 means no server-side batching (dynamic batching
is on for every batch size above 1), so the queue delay and the preferred batch size only exist
for configurations that batch. A model whose ``mlops.yaml`` has ``max_batch_size: 0`` has no batch
dimension in its shapes: its batch dimensions are not searched, and :attr:`SearchSpace.skipped`
says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from mlops_cli.spec.modelspec import Batching, ModelSpec

Dimension = Literal["instances", "max_batch_size", "queue_delay_us", "preferred"]
DIMENSIONS: tuple[Dimension, ...] = ("instances", "max_batch_size", "queue_delay_us", "preferred")
BATCH_DIMENSIONS: tuple[Dimension, ...] = ("max_batch_size", "queue_delay_us", "preferred")

DEFAULT_INSTANCES = (1, 2, 4, 8)
DEFAULT_BATCH_SIZES = (1, 2, 4, 8, 16, 32)
DEFAULT_QUEUE_DELAYS_US = (0, 500, 2000, 8000)
DEFAULT_PREFERRED = (False, True)
DEFAULT_MAX_CONCURRENCY = 128
# The schema's limits (schemas/model.schema.json).
MAX_INSTANCES = 64
MAX_BATCH_SIZE = 4096
MAX_QUEUE_DELAY_US = 10_000_000


@dataclass(frozen=True, order=True)
class ServingConfig:
    """One candidate: how a server runs the model. ``max_batch_size`` 0 is a model that does not
    batch; 1 batches nothing; above 1 the dynamic batcher groups requests up to it, waiting at
    most ``queue_delay_us`` for a fuller batch, and (``preferred``) aiming at full batches."""

    instances: int
    max_batch_size: int = 0
    queue_delay_us: int = 0
    preferred: bool = False

    @property
    def dynamic(self) -> bool:
        return self.max_batch_size > 1

    @property
    def preferred_batch_sizes(self) -> tuple[int, ...]:
        return (self.max_batch_size,) if self.dynamic and self.preferred else ()

    def normalized(self) -> ServingConfig:
        """Without batching, the batcher's settings mean nothing: zero them."""
        return self if self.dynamic else replace(self, queue_delay_us=0, preferred=False)

    def value(self, dimension: Dimension) -> int | bool:
        return getattr(self, dimension)  # type: ignore[no-any-return]

    def describe(self) -> str:
        text = f"instances={self.instances}"
        if self.max_batch_size:
            text += f" max_batch={self.max_batch_size}"
        if self.dynamic:
            text += f" delay={self.queue_delay_us}us"
            if self.preferred:
                text += f" preferred={self.max_batch_size}"
        return text

    def applied_to(self, spec: ModelSpec) -> ModelSpec:
        """``spec`` serving this configuration (what ``--apply`` registers, what is loaded)."""
        return replace(
            spec,
            instances=self.instances,
            batching=Batching(
                max_batch_size=self.max_batch_size,
                dynamic=self.dynamic,
                preferred_batch_sizes=self.preferred_batch_sizes,
                max_queue_delay_us=self.queue_delay_us if self.dynamic else 0,
            ),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "instances": self.instances,
            "max_batch_size": self.max_batch_size,
            "dynamic_batching": self.dynamic,
            "preferred_batch_sizes": list(self.preferred_batch_sizes),
            "max_queue_delay_us": self.queue_delay_us if self.dynamic else 0,
        }

    @classmethod
    def of_spec(cls, spec: ModelSpec) -> ServingConfig:
        """The configuration ``spec`` asks for (dynamic batching off counts as batch size 1)."""
        batching = spec.batching
        batch = batching.max_batch_size
        if batch > 1 and not batching.dynamic:
            batch = 1
        return cls(
            instances=spec.instances,
            max_batch_size=batch,
            queue_delay_us=batching.max_queue_delay_us,
            preferred=bool(batching.preferred_batch_sizes),
        ).normalized()


@dataclass(frozen=True)
class LoadPlan:
    """The client load: ``closed`` (concurrency ``levels``, searched when there are several) or
    ``open`` (one request rate)."""

    mode: Literal["closed", "open"]
    levels: tuple[float, ...]

    def label(self, level: float) -> str:
        return f"concurrency={int(level)}" if self.mode == "closed" else f"rate={level:g}"


@dataclass(frozen=True)
class SpaceChoices:
    """The values asked for on the command line (None: the defaults)."""

    instances: tuple[int, ...] | None = None
    batch_sizes: tuple[int, ...] | None = None
    queue_delays_us: tuple[int, ...] | None = None
    preferred: tuple[bool, ...] | None = None
    concurrency: int | None = None
    rate: float | None = None
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY


@dataclass(frozen=True)
class SearchSpace:
    """The values of each dimension (one value: not searched), the load plan, the configuration
    the search starts from (the version's own, snapped to the values), and why dimensions were
    left out."""

    values: dict[Dimension, tuple[Any, ...]]
    load: LoadPlan
    start: ServingConfig
    skipped: tuple[str, ...] = ()

    @property
    def searched(self) -> tuple[Dimension, ...]:
        return tuple(d for d in DIMENSIONS if len(self.values[d]) > 1)

    def relevant(self, config: ServingConfig, dimension: Dimension) -> bool:
        return config.dynamic or dimension in ("instances", "max_batch_size")

    def step(
        self, config: ServingConfig, dimension: Dimension, direction: int
    ) -> ServingConfig | None:
        """The neighbour of ``config`` one value up (``direction`` 1) or down (-1) along
        ``dimension``; None at the end of the dimension or where it does not apply."""
        if not self.relevant(config, dimension):
            return None
        values = self.values[dimension]
        index = values.index(config.value(dimension)) + direction
        if not 0 <= index < len(values):
            return None
        moved = replace(config, **{dimension: values[index]})
        if dimension == "max_batch_size" and moved.dynamic and not config.dynamic:
            moved = replace(
                moved,
                queue_delay_us=self.start.queue_delay_us
                if self.start.dynamic
                else self.values["queue_delay_us"][0],
                preferred=self.start.preferred
                if self.start.dynamic
                else self.values["preferred"][0],
            )
        return moved.normalized()

    def configs(self) -> list[ServingConfig]:
        """Every distinct configuration (the full grid, without the batcher's settings repeated
        for configurations that do not batch)."""
        found: dict[ServingConfig, None] = {}
        for instances in self.values["instances"]:
            for batch in self.values["max_batch_size"]:
                for delay in self.values["queue_delay_us"]:
                    for preferred in self.values["preferred"]:
                        config = ServingConfig(instances, batch, delay, preferred).normalized()
                        found.setdefault(config, None)
        return list(found)

    @property
    def grid_measurements(self) -> int:
        """How many measurements the full grid takes: every configuration at every level."""
        return len(self.configs()) * len(self.load.levels)

    def to_dict(self) -> dict[str, Any]:
        return {
            **{name: list(values) for name, values in self.values.items()},
            "load": {"mode": self.load.mode, "levels": list(self.load.levels)},
            "start": self.start.to_dict(),
            "skipped": list(self.skipped),
            "configurations": len(self.configs()),
            "grid_measurements": self.grid_measurements,
        }


def _snap(value: Any, values: Sequence[Any]) -> Any:
    """The value of ``values`` nearest to ``value`` (the first of equals)."""
    return min(values, key=lambda v: (abs(float(v) - float(value)), float(v)))


def _with(defaults: tuple[int, ...], own: int) -> tuple[int, ...]:
    return tuple(sorted({*defaults, own}))


def concurrency_levels(maximum: int) -> tuple[float, ...]:
    """1, 2, 4, ... up to ``maximum`` (which is always the last level)."""
    levels: list[float] = []
    level = 1
    while level < maximum:
        levels.append(float(level))
        level *= 2
    levels.append(float(maximum))
    return tuple(levels)


def build_space(spec: ModelSpec, choices: SpaceChoices) -> SearchSpace:
    """The space to search for ``spec``: the values asked for (the defaults plus the version's
    own value where none were given); batch dimensions dropped, with a note, for a model that
    does not batch."""
    own = ServingConfig.of_spec(spec)
    skipped: list[str] = []
    instances = choices.instances or _with(DEFAULT_INSTANCES, own.instances)
    values: dict[Dimension, tuple[Any, ...]] = {"instances": tuple(sorted(set(instances)))}
    if spec.batching.max_batch_size == 0:
        asked = [
            flag
            for flag, given in (
                ("--batch-sizes", choices.batch_sizes),
                ("--queue-delays", choices.queue_delays_us),
                ("--preferred", choices.preferred),
            )
            if given is not None
        ]
        skipped.append(
            f"{spec.name} does not batch (batching.max_batch_size is 0 in its mlops.yaml, so its "
            "shapes have no batch dimension): max_batch_size, preferred batch sizes and queue "
            "delay are not searched" + (f"; {', '.join(asked)} ignored" if asked else "")
        )
        values.update({"max_batch_size": (0,), "queue_delay_us": (0,), "preferred": (False,)})
    else:
        batch = choices.batch_sizes or _with(DEFAULT_BATCH_SIZES, own.max_batch_size)
        delays = choices.queue_delays_us or _with(DEFAULT_QUEUE_DELAYS_US, own.queue_delay_us)
        values["max_batch_size"] = tuple(sorted(set(batch)))
        values["queue_delay_us"] = tuple(sorted(set(delays)))
        values["preferred"] = tuple(sorted(set(choices.preferred or DEFAULT_PREFERRED)))
    if choices.rate is not None:
        load = LoadPlan("open", (choices.rate,))
        skipped.append(
            f"the load is fixed at {choices.rate:g} req/s (--rate): no concurrency search"
        )
    elif choices.concurrency is not None:
        load = LoadPlan("closed", (float(choices.concurrency),))
        skipped.append(f"the client concurrency is fixed at {choices.concurrency} (--concurrency)")
    else:
        load = LoadPlan("closed", concurrency_levels(choices.max_concurrency))
    start = ServingConfig(
        instances=_snap(own.instances, values["instances"]),
        max_batch_size=_snap(own.max_batch_size, values["max_batch_size"]),
        queue_delay_us=_snap(own.queue_delay_us, values["queue_delay_us"]),
        preferred=own.preferred if own.preferred in values["preferred"] else values["preferred"][0],
    ).normalized()
    return SearchSpace(values=values, load=load, start=start, skipped=tuple(skipped))


__all__ = [
    "DIMENSIONS",
    "Dimension",
    "LoadPlan",
    "SearchSpace",
    "ServingConfig",
    "SpaceChoices",
    "build_space",
    "concurrency_levels",
]
