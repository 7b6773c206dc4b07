"""Tukey fences on the last ``window`` prices of a series.

Quartiles ignore the odd extreme value, so one entry error cannot widen the fences the way it
inflates a standard deviation. The scale is ``max(IQR, min_scale_frac * median)``: sticky
prices often give an IQR of zero, and without the floor any change at all would be an outlier.
The fences sit ``k`` scales beyond the quartiles; the score is how many scales a price lies
beyond the nearer fence (0 inside), so the detector fires ``k + threshold`` scales out.

>>> det = IQRFences(window=10, k=3.0, warmup=5)
>>> for price in [60000] * 10:
...     det.learn_one({"price": price, "ts": 0.0})
>>> det.score_one({"price": 62500, "ts": 0.0})
0.0
>>> spike = {"price": 387500, "ts": 0.0}
>>> score = det.score_one(spike)
>>> score >= det.threshold
True
>>> det.explain(spike, score)
'Rp 387.500 is 269.9 scales above the fence Rp 63.600 (median Rp 60.000, IQR Rp 0 over 10 ticks)'
>>> det.expected()
{'level': 60000.0, 'lo': 55200.0, 'hi': 64800.0}
"""
from __future__ import annotations

from collections import deque

from base.money import format_rupiah
from detectors.robust import quantile


class IQRFences:
    name = "iqr"

    def __init__(
        self,
        window: int = 30,
        k: float = 3.0,
        min_scale_frac: float = 0.02,
        warmup: int = 8,
        threshold: float = 1.0,
    ):
        if window < 4 or warmup < 4:
            raise ValueError("window and warmup must be at least 4 to have quartiles")
        self.window = window
        self.k = k
        self.min_scale_frac = min_scale_frac
        self.warmup = min(warmup, window)
        self.threshold = threshold
        self._prices: deque[float] = deque(maxlen=window)

    def _fences(self) -> tuple[float, float, float, float, float]:
        """(median, iqr, scale, low fence, high fence) of the current window."""
        ordered = sorted(self._prices)
        q1 = quantile(ordered, 0.25)
        median = quantile(ordered, 0.5)
        q3 = quantile(ordered, 0.75)
        iqr = q3 - q1
        scale = max(iqr, self.min_scale_frac * abs(median))
        return median, iqr, scale, q1 - self.k * scale, q3 + self.k * scale

    def score_one(self, x: dict) -> float | None:
        if len(self._prices) < self.warmup:
            return None
        _, _, scale, low, high = self._fences()
        price = x["price"]
        if scale <= 0.0:
            return 0.0
        if price > high:
            return (price - high) / scale
        if price < low:
            return (low - price) / scale
        return 0.0

    def learn_one(self, x: dict) -> None:
        self._prices.append(x["price"])

    def explain(self, x: dict, score: float) -> str:
        if len(self._prices) < 4:
            return f"{score:.1f} scales beyond the fences"
        median, iqr, _, low, high = self._fences()
        price = x["price"]
        side, fence = ("above", high) if price > high else ("below", low)
        return (
            f"{format_rupiah(price)} is {score:.1f} scales {side} the fence {format_rupiah(fence)} "
            f"(median {format_rupiah(median)}, IQR {format_rupiah(iqr)} "
            f"over {len(self._prices)} ticks)"
        )

    def expected(self) -> dict | None:
        """The band of prices that do not fire: ``k + threshold`` scales beyond the quartiles."""
        if len(self._prices) < self.warmup:
            return None
        median, _, scale, low, high = self._fences()
        margin = self.threshold * scale
        return {"level": median, "lo": max(low - margin, 0.0), "hi": high + margin}
