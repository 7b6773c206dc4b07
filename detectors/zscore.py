"""Rolling z-score: how unusual is the newest value against the last ``window`` values.

By default the detector scores the day-on-day log return, not the price: market prices trend
(chilli can double within weeks before Lebaran), and a z-score of the level over a trending
window fires on every day of a rally, while the size of a single step stays comparable across
calm and busy seasons. PIHPS prices are sticky (about two ticks in three repeat the previous
price), so the standard deviation of a quiet window is near zero; ``min_std_frac`` floors it so
an ordinary step after a flat stretch is not an infinite surprise. On log returns the floor is
the log change itself (0.01 is about a 1% move); on prices it is a fraction of the mean level,
so the floor means "about this share of the price" either way.

>>> det = RollingZScore(window=10, threshold=4.0, min_std_frac=0.02, warmup=5)
>>> for price in [60000, 61000, 60000, 59000, 60000, 60500, 60000, 59500, 60000, 60000]:
...     det.learn_one({"price": price, "ts": 0.0})
>>> det.score_one({"price": 61000, "ts": 0.0}) < det.threshold
True
>>> spike = {"price": 387500, "ts": 0.0}
>>> score = det.score_one(spike)
>>> score >= det.threshold
True
>>> det.explain(spike, score)
'z=93.3: +546% vs last Rp 60.000 (typical move ±2.0% over 9 ticks)'
"""
from __future__ import annotations

import math
from collections import deque

from base.money import format_rupiah

ON_CHOICES = ("log_return", "price")


class RollingZScore:
    name = "zscore"

    def __init__(
        self,
        window: int = 30,
        threshold: float = 4.0,
        on: str = "log_return",
        min_std_frac: float = 0.01,
        warmup: int = 8,
    ):
        if on not in ON_CHOICES:
            raise ValueError(f"on must be one of {ON_CHOICES} (got {on!r})")
        if window < 2 or warmup < 2:
            raise ValueError("window and warmup must be at least 2")
        self.window = window
        self.threshold = threshold
        self.on = on
        self.min_std_frac = min_std_frac
        self.warmup = min(warmup, window)
        self._values: deque[float] = deque(maxlen=window)
        self._last_price: float | None = None

    def _value(self, price: float) -> float | None:
        if self.on == "price":
            return price
        if self._last_price is None:
            return None
        return math.log(price / self._last_price)

    def _stats(self) -> tuple[float, float]:
        values = self._values
        n = len(values)
        mean = sum(values) / n
        var = sum((v - mean) ** 2 for v in values) / (n - 1)
        floor = self.min_std_frac * (abs(mean) if self.on == "price" else 1.0)
        return mean, max(math.sqrt(var), floor)

    def score_one(self, x: dict) -> float | None:
        if len(self._values) < self.warmup:
            return None
        value = self._value(x["price"])
        if value is None:
            return None
        mean, std = self._stats()
        if std == 0.0:
            # Only reachable on prices with a zero mean level, which a validated tick never has.
            return 0.0 if value == mean else math.inf
        return abs(value - mean) / std

    def learn_one(self, x: dict) -> None:
        value = self._value(x["price"])
        if value is not None:
            self._values.append(value)
        self._last_price = x["price"]

    def explain(self, x: dict, score: float) -> str:
        value = self._value(x["price"])
        if len(self._values) < 2 or self._last_price is None or value is None:
            return f"z={score:.1f}"
        mean, std = self._stats()
        n = len(self._values)
        if self.on == "price":
            return f"z={score:.1f} vs mean {format_rupiah(mean)} over {n} ticks"
        change = math.expm1(value)
        typical = math.expm1(std)
        return (
            f"z={score:.1f}: {change:+.0%} vs last {format_rupiah(self._last_price)} "
            f"(typical move ±{typical:.1%} over {n} ticks)"
        )
