"""How far off the online forecast was, next to the baselines a user would compare it with.

For every accepted tick of a series the tracker compares, with the price that actually came:

* the stack's forecast made ``horizon`` ticks earlier (``DetectorStack.forecast``),
* the naive forecast: the price ``horizon`` ticks earlier (a random walk's best guess),
* the seasonal-naive forecast: the last price at least ``season`` seconds before the target
  (one year for food prices, whose season is Lebaran and the harvests).

Errors are absolute percentage errors. ``mape`` and ``naive_mape`` are over the ticks where the
model and the naive forecast both exist (``ticks``); the seasonal-naive baseline needs a year of
history, so it has its own ticks (``seasonal_ticks``), over which ``seasonal_naive_mape`` and
the model's ``mape_seasonal_ticks`` are both taken, so each comparison is on the same ticks.
Quarantined ticks are not targets: an entry error is not a price to forecast.

>>> tracker = ForecastTracker(horizon=1, season=4 * 86400.0)
>>> for day, price in enumerate([100.0, 110.0, 100.0, 110.0, 100.0, 110.0]):
...     tracker.observe(("cabai", "pasar"), day * 86400.0, price, forecast=105.0)
>>> summary = tracker.summary()
>>> summary["ticks"], round(summary["mape"], 4), round(summary["naive_mape"], 4)
(5, 0.0473, 0.0945)
>>> summary["seasonal_ticks"], summary["seasonal_naive_mape"], round(summary["mape_seasonal_ticks"], 4)
(2, 0.0, 0.0477)
"""
from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass, field

YEAR = 365.0 * 86400.0


@dataclass
class _Series:
    pending: deque = field(default_factory=deque)  # forecasts made for the coming ticks
    recent: deque = field(default_factory=deque)  # last `horizon` prices, for the naive forecast
    times: list = field(default_factory=list)  # accepted (ts, price), for the seasonal naive
    prices: list = field(default_factory=list)


class ForecastTracker:
    def __init__(self, horizon: int = 1, season: float = YEAR):
        if horizon < 1:
            raise ValueError("horizon must be at least 1")
        self.horizon = horizon
        self.season = season
        self._series: dict[tuple[str, str], _Series] = {}
        self._sums = {"model": 0.0, "naive": 0.0, "seasonal": 0.0, "model_seasonal": 0.0}
        self._count = 0
        self._seasonal_count = 0

    def observe(self, key: tuple[str, str], ts: float, price: float, forecast: float | None,
                accepted: bool = True) -> None:
        """Record an accepted tick; ``forecast`` is the model's price ``horizon`` ticks ahead."""
        if not accepted:
            return
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _Series(pending=deque(), recent=deque(maxlen=self.horizon))
        made = series.pending.popleft() if len(series.pending) >= self.horizon else None
        naive = series.recent[0] if len(series.recent) == self.horizon else None
        seasonal = self._seasonal(series, ts)
        if made is not None and naive is not None and price > 0:
            model_error = abs(made - price) / price
            self._sums["model"] += model_error
            self._sums["naive"] += abs(naive - price) / price
            self._count += 1
            if seasonal is not None:
                self._sums["model_seasonal"] += model_error
                self._sums["seasonal"] += abs(seasonal - price) / price
                self._seasonal_count += 1
        series.pending.append(forecast)
        series.recent.append(price)
        series.times.append(ts)
        series.prices.append(price)

    def _seasonal(self, series: _Series, ts: float) -> float | None:
        i = bisect.bisect_right(series.times, ts - self.season)
        return series.prices[i - 1] if i > 0 else None

    def summary(self) -> dict:
        """Ticks compared and MAPEs (fractions: 0.05 = 5%); None where nothing was compared."""
        n, m = self._count, self._seasonal_count
        return {
            "horizon": self.horizon,
            "ticks": n,
            "mape": self._sums["model"] / n if n else None,
            "naive_mape": self._sums["naive"] / n if n else None,
            "seasonal_ticks": m,
            "mape_seasonal_ticks": self._sums["model_seasonal"] / m if m else None,
            "seasonal_naive_mape": self._sums["seasonal"] / m if m else None,
        }
