"""One-step forecast residual of an online exponential-smoothing model on log-price.

The model is River's ``HoltWinters`` with level only (simple exponential smoothing). Daily
market prices behave close to a random walk: on the PIHPS West Java panel a trend term made the
one-step error worse (it extrapolates every spike), and so did seasonality at a daily step.
Working on log-price makes residuals relative (a 10% miss counts the same at Rp 20.000 and at
Rp 100.000). The residual scale is an EWMA of absolute residuals (times 1.25, the ratio of
standard deviation to mean absolute deviation of a normal), floored so that weeks of sticky
prices do not shrink it to zero. Quarantined ticks are never learned, so an entry error cannot
blow the scale up and hide the next one.

>>> det = ForecastResidual(alpha=0.7, warmup=5)
>>> for price in [60000, 61000, 60000, 59000, 60000, 60500, 60000, 59500, 60000, 60000]:
...     det.learn_one({"price": price, "ts": 0.0})
>>> det.score_one({"price": 61000, "ts": 0.0}) < det.threshold
True
>>> spike = {"price": 387500, "ts": 0.0}
>>> score = det.score_one(spike)
>>> score >= det.threshold
True
>>> det.explain(spike, score)
'Rp 387.500 vs forecast Rp 59.971 (+546%, typical miss ±2.0%), score=93.3'
>>> [step["step"] for step in det.forecast(3)]
[1, 2, 3]
"""
from __future__ import annotations

import math

from river.time_series import HoltWinters

from base.money import format_rupiah
from detectors.memo import Transient

# Standard deviation over mean absolute deviation for a normal distribution (sqrt(pi/2)).
MEAN_ABS_TO_STD = 1.2533


class ForecastResidual(Transient):
    name = "forecast"

    def __init__(
        self,
        alpha: float = 0.7,
        threshold: float = 4.0,
        scale_alpha: float = 0.05,
        min_scale: float = 0.02,
        warmup: int = 8,
    ):
        if not 0.0 < alpha <= 1.0 or not 0.0 < scale_alpha <= 1.0:
            raise ValueError("alpha and scale_alpha must be in (0, 1]")
        self.alpha = alpha
        self.threshold = threshold
        self.scale_alpha = scale_alpha
        self.min_scale = min_scale
        self.warmup = warmup
        self._model = HoltWinters(alpha=alpha)
        self._n = 0
        self._mean_abs_residual: float | None = None

    # The level is asked for by the score, the expected band and the learning of a tick: worked
    # out once per tick learned (detectors/memo.py).
    TRANSIENT = ("_memo",)
    _memo: float | None = None

    def _level(self) -> float | None:
        """Log-price forecast for the next tick, None until the model is initialised."""
        if self._n < 2:
            return None
        if self._memo is None:
            self._memo = self._model.forecast(1)[0]
        return self._memo

    def scale(self) -> float:
        """Typical one-step residual in log units (about a standard deviation)."""
        if self._mean_abs_residual is None:
            return self.min_scale
        return max(MEAN_ABS_TO_STD * self._mean_abs_residual, self.min_scale)

    def score_one(self, x: dict) -> float | None:
        level = self._level() if self._n >= self.warmup else None
        if level is None:
            return None
        residual = math.log(x["price"]) - level
        return abs(residual) / self.scale()

    def learn_one(self, x: dict) -> None:
        log_price = math.log(x["price"])
        level = self._level()
        if level is not None:
            miss = abs(log_price - level)
            if self._mean_abs_residual is None:
                self._mean_abs_residual = miss
            else:
                self._mean_abs_residual += self.scale_alpha * (miss - self._mean_abs_residual)
        self._model.learn_one(log_price)
        self._memo = None
        self._n += 1

    def explain(self, x: dict, score: float) -> str:
        level = self._level()
        if level is None:
            return f"score={score:.1f}"
        change = math.exp(math.log(x["price"]) - level) - 1.0
        return (
            f"{format_rupiah(x['price'])} vs forecast {format_rupiah(math.exp(level))} "
            f"({change:+.0%}, typical miss ±{math.expm1(self.scale()):.1%}), score={score:.1f}"
        )

    def forecast(self, horizon: int, z: float = 1.96) -> list[dict]:
        """Prices for the next ``horizon`` ticks with a ``±z`` scale prediction interval.

        For simple exponential smoothing the h-step error variance grows as
        ``1 + (h - 1) * alpha**2`` times the one-step variance. Empty until the model is warm.
        """
        level = self._level()
        if level is None or self._n < self.warmup:
            return []
        scale = self.scale()
        steps = []
        for h in range(1, horizon + 1):
            spread = z * scale * math.sqrt(1.0 + (h - 1) * self.alpha**2)
            steps.append(
                {
                    "step": h,
                    "level": math.exp(level),
                    "lo": math.exp(level - spread),
                    "hi": math.exp(level + spread),
                }
            )
        return steps

    def expected(self) -> dict | None:
        """The next-tick prices that do not fire: ``threshold`` scales around the forecast."""
        level = self._level()  # forecast(1, z=threshold)'s one step, without building the list
        if level is None or self._n < self.warmup:
            return None
        spread = self.threshold * self.scale() * math.sqrt(1.0 + (1 - 1) * self.alpha**2)
        return {"level": math.exp(level), "lo": math.exp(level - spread), "hi": math.exp(level + spread)}
