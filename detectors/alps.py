"""ALPS: the World Food Programme's Alert for Price Spikes, fitted online per series.

WFP's ALPS (WFP VAM, "Technical guidance note: calculation of the Alert for Price Spikes
indicator", 2014) measures how far a price is above what its trend and its season lead one to
expect, in units of the standard deviation of the model's residuals:

    ALPS = (observed - expected) / residual std

classified normal (< 0.25), stress (>= 0.25), alert (>= 1) and crisis (>= 2). WFP fits trend
and monthly seasonal dummies recursively, month after month, so that an indicator is never
computed with data from its future. Here the fit is recursive least squares over the accepted
ticks of the series (an expanding window, no forgetting), on log-price (deviations are
relative), with the seasonal terms of detectors/season.py: days since Idul Fitri (the Eid
cycle), Ramadan and the run-up to Idul Adha, and the Gregorian year (climate). The residual
standard deviation is that of the fitted residuals so far. The indicator is scored before the
tick is learned, and only once the series spans ``min_days`` (a year: every season seen once).

The score is the positive part of ALPS (the indicator is about spikes; a price below its
expectation scores 0), so the detector fires (threshold 1) at the "alert" class.

>>> import math, random
>>> noise = random.Random(7)
>>> det = ALPS(min_days=365)
>>> start = 1577847600.0  # 2020-01-01 10:00 WIB
>>> def price(day):
...     return 30000.0 * math.exp(0.0002 * day + 0.03 * noise.gauss(0.0, 1.0))
>>> for day in range(800):
...     det.learn_one({"price": price(day), "ts": start + day * 86400.0})
>>> calm = {"price": 30000.0 * math.exp(0.0002 * 800), "ts": start + 800 * 86400.0}
>>> det.classify(det.score_one(calm))
'normal'
>>> spike = {"price": calm["price"] * 1.4, "ts": calm["ts"]}
>>> score = det.score_one(spike)
>>> det.classify(score), score >= det.threshold
('crisis', True)
>>> det.explain(spike, score).startswith("Rp ")
True
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from base.money import format_rupiah
from detectors.season import TERMS, local_day, regression_terms

DAY = 86400.0
YEAR = 365.25 * DAY
CLASSES = ((2.0, "crisis"), (1.0, "alert"), (0.25, "stress"))


def classify(score: float | None, classes=CLASSES) -> str:
    """The class of a score: the first whose lower limit it reaches, else ``normal``."""
    if score is None:
        return "normal"
    for limit, name in classes:
        if score >= limit:
            return name
    return "normal"


class RecursiveLeastSquares:
    """Ordinary least squares updated one observation at a time (no forgetting).

    ``p`` starts as ``delta`` times the identity: a weak prior that the coefficients are 0.
    """

    def __init__(self, size: int, delta: float = 1e4):
        self.size = size
        self.theta = np.zeros(size)
        self.p = np.eye(size) * delta

    def predict(self, x: np.ndarray) -> float:
        return float(self.theta @ x)

    def update(self, x: np.ndarray, y: float) -> None:
        px = self.p @ x
        gain = px / (1.0 + x @ px)
        self.theta += gain * (y - self.theta @ x)
        # P <- P - gain (P x)^T; P is symmetric, so x^T P = (P x)^T. (np.outer's own product,
        # without its Python wrapper: this runs for every accepted tick.)
        self.p -= gain[:, np.newaxis] * px[np.newaxis, :]


@lru_cache(maxsize=4096)
def _regressors(ts: float, first_ts: float | None) -> np.ndarray:
    """The regressors of a tick at ``ts`` (read-only: shared by the ticks of a day, the score
    and the learning of a tick, and every series that started that day)."""
    # Trend in years since the first tick keeps the regressors of comparable size.
    years = (ts - first_ts) / YEAR if first_ts is not None else 0.0
    x = np.array((1.0, years, *regression_terms(local_day(ts))))
    x.flags.writeable = False
    return x


class ALPS:
    name = "alps"
    threshold = 1.0

    def __init__(self, min_days: float = 365.0, min_ticks: int = 30):
        self.min_span = min_days * DAY
        self.min_ticks = min_ticks
        self._fit = RecursiveLeastSquares(2 + TERMS)
        self._first_ts: float | None = None
        self._n = 0
        self._residual_ss = 0.0

    def _x(self, ts: float) -> np.ndarray:
        return _regressors(ts, self._first_ts)

    def _warm(self, ts: float) -> bool:
        return (self._first_ts is not None and self._n >= self.min_ticks
                and ts - self._first_ts >= self.min_span)

    def _std(self) -> float:
        dof = max(self._n - self._fit.size, 1)
        return max(math.sqrt(self._residual_ss / dof), 1e-3)

    def deviation(self, x: dict) -> float | None:
        """Signed ALPS value of a price (None until warm)."""
        if not self._warm(x["ts"]):
            return None
        expected = self._fit.predict(self._x(x["ts"]))
        return (math.log(x["price"]) - expected) / self._std()

    def score_one(self, x: dict) -> float | None:
        value = self.deviation(x)
        return None if value is None else max(value, 0.0)

    def learn_one(self, x: dict) -> None:
        if self._first_ts is None:
            self._first_ts = x["ts"]
        features = self._x(x["ts"])
        y = math.log(x["price"])
        self._fit.update(features, y)
        self._residual_ss += (y - self._fit.predict(features)) ** 2
        self._n += 1

    def expected_price(self, ts: float) -> float | None:
        if self._first_ts is None:
            return None
        return math.exp(self._fit.predict(self._x(ts)))

    @staticmethod
    def classify(score: float | None) -> str:
        return classify(score)

    def explain(self, x: dict, score: float) -> str:
        expected = self.expected_price(x["ts"])
        if expected is None:
            return f"ALPS {score:.2f}"
        return (f"{format_rupiah(x['price'])} vs seasonal expectation {format_rupiah(expected)}: "
                f"ALPS {score:.2f} ({classify(score)})")
