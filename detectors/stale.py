"""Stale feed: a series has gone quiet for much longer than its usual gap between ticks.

The expected gap is learned per series (median of recent inter-arrival gaps, so one long
holiday does not redefine "usual"), floored by ``min_gap`` so a feed that bursts several ticks
a second is not declared stale after a moment's pause. Scored by a periodic sweep with the
current time, not per tick.

>>> det = StaleFeed(factor=3.0, min_gap=60.0)
>>> for day in range(10):
...     det.learn_one({"price": 60000, "ts": 86400.0 * day})
>>> det.score_one({"ts": 86400.0 * 10}) < det.threshold
True
>>> now = {"ts": 86400.0 * 14}
>>> score = det.score_one(now)
>>> score >= det.threshold
True
>>> det.explain(now, score)
'no tick for 5.0 days, usually every 1.0 days'
"""
from __future__ import annotations

from collections import deque

from detectors.robust import median


def format_duration(seconds: float) -> str:
    if seconds >= 86400.0:
        return f"{seconds / 86400.0:.1f} days"
    if seconds >= 3600.0:
        return f"{seconds / 3600.0:.1f} hours"
    if seconds >= 60.0:
        return f"{seconds / 60.0:.1f} minutes"
    return f"{seconds:.0f} seconds"


class StaleFeed:
    name = "stale"

    def __init__(
        self, factor: float = 3.0, min_gap: float = 60.0, window: int = 15, warmup: int = 3
    ):
        self.threshold = factor
        self.min_gap = min_gap
        self.warmup = warmup
        self._gaps: deque[float] = deque(maxlen=window)
        self._last: float | None = None

    @property
    def last_seen(self) -> float | None:
        return self._last

    def expected_gap(self) -> float | None:
        if len(self._gaps) < self.warmup:
            return None
        return max(median(self._gaps), self.min_gap)

    def age(self, now: float) -> float | None:
        if self._last is None:
            return None
        return max(now - self._last, 0.0)

    def score_one(self, x: dict) -> float | None:
        expected, age = self.expected_gap(), self.age(x["ts"])
        if expected is None or age is None:
            return None
        return age / expected

    def learn_one(self, x: dict) -> None:
        ts = x["ts"]
        if self._last is not None:
            if ts <= self._last:
                # A late or duplicate tick says nothing about how often the feed speaks.
                return
            self._gaps.append(ts - self._last)
        self._last = ts

    def explain(self, x: dict, score: float) -> str:
        expected = self.expected_gap()
        age = self.age(x["ts"])
        if expected is None or age is None:
            return f"{score:.1f} usual gaps without a tick"
        return f"no tick for {format_duration(age)}, usually every {format_duration(expected)}"
