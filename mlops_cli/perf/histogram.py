"""A log-linear latency histogram in the manner of HdrHistogram.

Values are integer microseconds. Values below ``2**SUB_BITS`` get a bucket each; above that, every
power of two is split into ``2**(SUB_BITS-1)`` equal buckets, so a value is stored with a relative
error below ``1 / 2**(SUB_BITS-1)`` (0.8% with the default 8 bits) whatever its magnitude. Memory
is a fixed list of counts (no list of samples that grows with the run), recording is a few integer
operations, and two histograms merge by adding counts, which is how worker processes combine.
"""

from __future__ import annotations

import math
from typing import Any

SUB_BITS = 8
_SUB = 1 << SUB_BITS  # values below this are exact
_HALF = _SUB >> 1
_MAX_EXPONENT = 40 - SUB_BITS  # ~12.7 days in microseconds: enough for any latency
BUCKETS = _SUB + _MAX_EXPONENT * _HALF
MAX_VALUE = (1 << 40) - 1


def bucket_of(value: int) -> int:
    """The index of the bucket holding ``value`` (clamped to 0..MAX_VALUE)."""
    if value < _SUB:
        return value if value > 0 else 0
    if value > MAX_VALUE:
        value = MAX_VALUE
    shift = value.bit_length() - SUB_BITS
    return _SUB + (shift - 1) * _HALF + ((value >> shift) - _HALF)


def bucket_high(index: int) -> int:
    """The largest value stored in bucket ``index`` (what percentiles report, as HDR does)."""
    if index < _SUB:
        return index
    shift = (index - _SUB) // _HALF + 1
    mantissa = (index - _SUB) % _HALF + _HALF
    return ((mantissa + 1) << shift) - 1


class Histogram:
    """Counts of values (microseconds) in log-linear buckets; mergeable and serialisable."""

    __slots__ = ("count", "counts", "max", "min", "total")

    def __init__(self) -> None:
        self.counts = [0] * BUCKETS
        self.count = 0
        self.total = 0
        self.min = 0
        self.max = 0

    def record(self, value: int) -> None:
        """Add one value (microseconds, not negative)."""
        if value < _SUB:
            self.counts[value if value > 0 else 0] += 1
        else:
            self.counts[bucket_of(value)] += 1
        if value > self.max:
            self.max = value
        if value < self.min or not self.count:
            self.min = value if value > 0 else 0
        self.count += 1
        self.total += value

    def merge(self, other: Histogram) -> None:
        """Add every value of ``other`` to this histogram."""
        if other.count == 0:
            return
        counts = self.counts
        for index, n in enumerate(other.counts):
            if n:
                counts[index] += n
        self.min = other.min if self.count == 0 else min(self.min, other.min)
        self.max = max(self.max, other.max)
        self.count += other.count
        self.total += other.total

    def percentile(self, p: float) -> int:
        """The value at or below which ``p`` percent of the values lie (0 when empty)."""
        if self.count == 0:
            return 0
        if p >= 100:
            return self.max
        rank = max(1, math.ceil(p * self.count / 100 - 1e-9))
        seen = 0
        for index, n in enumerate(self.counts):
            seen += n
            if seen >= rank:
                return min(bucket_high(index), self.max)
        return self.max

    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0

    def to_dict(self) -> dict[str, Any]:
        """A compact form: only the non-empty buckets, as ``[[index, count], ...]``."""
        return {
            "sub_bits": SUB_BITS,
            "unit": "us",
            "count": self.count,
            "total": self.total,
            "min": self.min,
            "max": self.max,
            "buckets": [[i, n] for i, n in enumerate(self.counts) if n],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Histogram:
        if data.get("sub_bits", SUB_BITS) != SUB_BITS:
            raise ValueError("histogram was written with another bucket layout")
        hist = cls()
        for index, n in data["buckets"]:
            hist.counts[int(index)] = int(n)
        hist.count = int(data["count"])
        hist.total = int(data["total"])
        hist.min = int(data["min"])
        hist.max = int(data["max"])
        return hist

    def distribution(self, points: int = 60) -> list[tuple[float, float]]:
        """(latency in ms, cumulative fraction) pairs for plotting, at most ``points`` of them."""
        if self.count == 0:
            return []
        nonzero = [(i, n) for i, n in enumerate(self.counts) if n]
        step = max(1, len(nonzero) // points)
        out: list[tuple[float, float]] = []
        seen = 0
        for k, (index, n) in enumerate(nonzero):
            seen += n
            if k % step == 0 or k == len(nonzero) - 1:
                out.append((min(bucket_high(index), self.max) / 1000.0, seen / self.count))
        return out
