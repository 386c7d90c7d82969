"""How load is spread over models and tenants: a distribution's weights and a seeded draw.

A distribution is ``uniform`` or ``zipf:S`` (the item of rank r, in the order given, weighs
1/r^S, with S a decimal number above zero: ``zipf:1.1``). :func:`traffic_weights` is the one
parser of that word, so that ``--distribution`` (models) and ``--tenant-distribution`` (tenants)
accept and refuse the same things. :class:`WeightedDraw` picks an index per request in O(log n),
the same sequence for the same seed, cheap enough for the load engine's hot path.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections.abc import Sequence

from mlops_cli.errors import UsageError

_DECIMAL = frozenset("0123456789.")  # the report's schema takes zipf:S in these characters only


def traffic_weights(
    count: int, distribution: str, *, option: str = "--distribution"
) -> list[float]:
    """The traffic share of each of ``count`` items, in the order given; a UsageError naming
    ``option`` for a distribution that is not ``uniform`` or ``zipf:S`` with a finite S > 0."""
    if distribution == "uniform":
        return [1.0] * count
    word = distribution[5:]
    if distribution.startswith("zipf:") and word and word.isascii() and _DECIMAL.issuperset(word):
        try:
            exponent = float(word)
        except ValueError:  # 1.2.3
            exponent = -1.0
        if exponent > 0 and math.isfinite(exponent):
            # rank ** -S underflows to 0.0 where rank ** S would overflow (100,000 ** 1000)
            return [rank**-exponent for rank in range(1, count + 1)]
    raise UsageError(
        f"{option}: unknown distribution '{distribution}'",
        hint="use uniform or zipf:S with S > 0, e.g. zipf:1.1",
    )


class WeightedDraw:
    """Draws indices ``0..len(weights)-1`` with probability proportional to their weights."""

    __slots__ = ("cumulative", "last", "random", "total")

    def __init__(self, weights: Sequence[float], *, seed: int | str) -> None:
        if not weights:
            raise ValueError("nothing to draw from")
        self.cumulative = list(itertools.accumulate(weights))
        self.total = self.cumulative[-1]
        self.last = len(self.cumulative) - 1
        self.random = random.Random(seed).random

    def __call__(self) -> int:
        # hi=last: a product that rounds up to the total still lands on the last index
        return bisect.bisect_right(self.cumulative, self.random() * self.total, 0, self.last)
