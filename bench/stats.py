"""Latency summaries that can be merged across client processes.

Client processes record millions of latencies; sending them all back would cost more than
the measurement. A log-bucketed histogram (about 2% wide buckets from 1 microsecond to
1,000 seconds) is small, mergeable and accurate enough for p50/p99; the maximum is exact.

>>> h = Histogram()
>>> for ms in range(1, 101):
...     h.add(ms / 1000)
>>> round(h.percentile(50) * 1000, 1), round(h.percentile(99) * 1000, 1), h.max * 1000  # within 2%
(50.6, 99.2, 100.0)
>>> other = Histogram.from_json(h.to_json())
>>> other.merge(h)
>>> other.count
200
"""
from __future__ import annotations

import math

LOW = 1e-6
GROWTH = 1.02
BUCKETS = int(math.log(1e9) / math.log(GROWTH)) + 2
_LOG_GROWTH = math.log(GROWTH)


class Histogram:
    def __init__(self) -> None:
        self.counts = [0] * BUCKETS
        self.count = 0
        self.max = 0.0

    def add(self, seconds: float) -> None:
        if seconds <= LOW:
            index = 0
        else:
            index = min(BUCKETS - 1, int(math.log(seconds / LOW) / _LOG_GROWTH) + 1)
        self.counts[index] += 1
        self.count += 1
        if seconds > self.max:
            self.max = seconds

    def merge(self, other: Histogram) -> None:
        self.counts = [a + b for a, b in zip(self.counts, other.counts)]
        self.count += other.count
        self.max = max(self.max, other.max)

    def percentile(self, q: float) -> float | None:
        """Upper edge of the bucket holding the q-th percentile (never above the maximum)."""
        if not self.count:
            return None
        rank = math.ceil(q / 100 * self.count)
        seen = 0
        for index, n in enumerate(self.counts):
            seen += n
            if seen >= rank:
                return min(self.max, LOW * GROWTH ** index)
        return self.max

    def summary_ms(self) -> dict:
        """p50, p99 and max in milliseconds, and the count."""
        def ms(value: float | None) -> float | None:
            return None if value is None else round(value * 1000, 3)

        return {"count": self.count, "p50_ms": ms(self.percentile(50)), "p99_ms": ms(self.percentile(99)),
                "max_ms": ms(self.max if self.count else None)}

    def to_json(self) -> dict:
        return {"counts": {i: n for i, n in enumerate(self.counts) if n}, "count": self.count, "max": self.max}

    @classmethod
    def from_json(cls, data: dict) -> Histogram:
        histogram = cls()
        for index, n in data["counts"].items():
            histogram.counts[int(index)] = n
        histogram.count = data["count"]
        histogram.max = data["max"]
        return histogram
