"""How far off the forecasts were, next to the baselines a user would compare them with.

For every accepted tick of a series the tracker compares, with the price that actually came:

* the forecast made ``horizon`` ticks earlier (a price, or a dict with ``point`` and the
  80% and 95% bounds ``lo80``/``hi80``/``lo95``/``hi95``, detectors/forecast_horizons.py),
* the naive forecast: the price ``horizon`` ticks earlier (a random walk's best guess),
* the seasonal-naive forecast: the last price at least ``season`` seconds before the target
  (one year for food prices, whose season is Lebaran and the harvests).

``mape`` and ``naive_mape`` are over the ticks where the model and the naive forecast both exist
(``ticks``); ``mase`` is the model's mean absolute error over the naive one's on those ticks
(below 1: better than the last price), ``model_share`` the share of those forecasts whose point
was the model's rather than the last price. ``coverage80``/``coverage95`` are the shares of targets
inside the intervals, over the ticks that had one (``interval_ticks``). The seasonal-naive
baseline needs a year of history, so it has its own ticks (``seasonal_ticks``), over which
``seasonal_naive_mape`` and the model's ``mape_seasonal_ticks`` are both taken. Quarantined
ticks are not targets: an entry error is not a price to forecast. ``since``/``until`` keep only
targets in that time range (a choose period and a report period from one replay).

Sums are kept raw (``totals``) so the reports of commodities replayed apart can be added
(``merge_totals``) before the ratios are taken (``summarize``).

>>> tracker = ForecastTracker(horizon=1, season=4 * 86400.0)
>>> for day, price in enumerate([100.0, 110.0, 100.0, 110.0, 100.0, 110.0]):
...     made = {"point": 105.0, "lo80": 101.0, "hi80": 109.0, "lo95": 99.0, "hi95": 111.0}
...     tracker.observe(("cabai", "pasar"), day * 86400.0, price, forecast=made)
>>> summary = tracker.summary()
>>> summary["ticks"], round(summary["mape"], 4), round(summary["naive_mape"], 4), summary["mase"]
(5, 0.0473, 0.0945, 0.5)
>>> summary["coverage80"], summary["coverage95"]
(0.0, 1.0)
>>> summary["seasonal_ticks"], summary["seasonal_naive_mape"], round(summary["mape_seasonal_ticks"], 4)
(2, 0.0, 0.0477)
"""
from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass, field

YEAR = 365.0 * 86400.0
EPSILON = 1e-9
SUMS = ("ticks", "model", "naive", "abs_model", "abs_naive", "interval_ticks", "in80", "in95",
        "seasonal_ticks", "seasonal", "model_seasonal", "model_points")


@dataclass
class _Series:
    pending: deque = field(default_factory=deque)  # forecasts made for the coming ticks
    recent: deque = field(default_factory=deque)  # last `horizon` prices, for the naive forecast
    times: list = field(default_factory=list)  # accepted (ts, price), for the seasonal naive
    prices: list = field(default_factory=list)


class ForecastTracker:
    def __init__(self, horizon: int = 1, season: float = YEAR, since: float | None = None,
                 until: float | None = None):
        if horizon < 1:
            raise ValueError("horizon must be at least 1")
        self.horizon = horizon
        self.season = season
        self.since, self.until = since, until
        self._series: dict[tuple[str, str], _Series] = {}
        self._sums = dict.fromkeys(SUMS, 0.0)

    def observe(self, key: tuple[str, str], ts: float, price: float, forecast: float | dict | None,
                accepted: bool = True) -> None:
        """Record an accepted tick; ``forecast`` is the model's ``horizon`` ticks ahead."""
        if not accepted:
            return
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _Series(pending=deque(), recent=deque(maxlen=self.horizon))
        made = series.pending.popleft() if len(series.pending) >= self.horizon else None
        naive = series.recent[0] if len(series.recent) == self.horizon else None
        if made is not None and naive is not None and price > 0 and self._counts(ts):
            self._score(series, ts, price, made, naive)
        series.pending.append(forecast)
        series.recent.append(price)
        if self.season:
            series.times.append(ts)
            series.prices.append(price)

    def _counts(self, ts: float) -> bool:
        return (self.since is None or ts >= self.since) and (self.until is None or ts < self.until)

    def _score(self, series: _Series, ts: float, price: float, made: float | dict, naive: float) -> None:
        sums = self._sums
        point = made["point"] if isinstance(made, dict) else made
        model_error = abs(point - price)
        sums["ticks"] += 1
        sums["model"] += model_error / price
        sums["naive"] += abs(naive - price) / price
        sums["abs_model"] += model_error
        sums["abs_naive"] += abs(naive - price)
        # Whether the point was the model's or the last price (detectors/forecast_horizons.py).
        sums["model_points"] += bool(made.get("model", True)) if isinstance(made, dict) else 1
        if isinstance(made, dict) and "lo80" in made:
            sums["interval_ticks"] += 1
            # A bound equal to the price (sticky prices: an 80% interval of width 0) must not
            # miss for the last bit of a float's round trip through log and exp.
            low, high = price * (1.0 + EPSILON), price * (1.0 - EPSILON)
            sums["in80"] += made["lo80"] <= low and high <= made["hi80"]
            sums["in95"] += made["lo95"] <= low and high <= made["hi95"]
        seasonal = self._seasonal(series, ts)
        if seasonal is not None:
            sums["model_seasonal"] += model_error / price
            sums["seasonal"] += abs(seasonal - price) / price
            sums["seasonal_ticks"] += 1

    def _seasonal(self, series: _Series, ts: float) -> float | None:
        if not self.season:
            return None
        i = bisect.bisect_right(series.times, ts - self.season)
        return series.prices[i - 1] if i > 0 else None

    def totals(self) -> dict:
        """Raw sums, addable across trackers (``merge_totals``)."""
        return {"horizon": self.horizon, **self._sums}

    def summary(self) -> dict:
        return summarize(self.totals())


def merge_totals(into: dict, totals: dict) -> dict:
    """Add ``totals`` (of the same horizon) into ``into``; returns ``into``."""
    for name in SUMS:
        into[name] = into.get(name, 0.0) + totals.get(name, 0.0)
    into.setdefault("horizon", totals["horizon"])
    return into


def summarize(totals: dict) -> dict:
    """Ticks compared, MAPEs (fractions: 0.05 = 5%), MASE against the last price and interval
    coverage; None where nothing was compared."""
    n, m, k = int(totals["ticks"]), int(totals["seasonal_ticks"]), int(totals["interval_ticks"])
    return {
        "horizon": totals["horizon"],
        "ticks": n,
        "mape": totals["model"] / n if n else None,
        "naive_mape": totals["naive"] / n if n else None,
        "mase": totals["abs_model"] / totals["abs_naive"] if n and totals["abs_naive"] else None,
        # Share of the forecasts whose point was the model's (else the last price was served).
        "model_share": totals.get("model_points", 0.0) / n if n else None,
        "interval_ticks": k,
        "coverage80": totals["in80"] / k if k else None,
        "coverage95": totals["in95"] / k if k else None,
        "seasonal_ticks": m,
        "mape_seasonal_ticks": totals["model_seasonal"] / m if m else None,
        "seasonal_naive_mape": totals["seasonal"] / m if m else None,
    }


BINS = 10


class BreachTracker:
    """Calibration of breach odds: each forecast probability against what happened ``horizon``
    accepted ticks later. Events: ``above_reference`` (the price passed the HAP/HET) and
    ``rise_10`` (it rose 10% or more above the price the odds were made at).

    Reports per event: ``n``, ``brier``, ``brier_climatology`` (the Brier score of always
    forecasting the observed base rate of the same ticks), ``base_rate`` and a ``reliability``
    table (predicted-probability bins of width 0.1: count, mean predicted, observed frequency).

    >>> tracker = BreachTracker(horizon=1)
    >>> for day, price in enumerate([100.0, 120.0, 100.0, 120.0, 100.0]):
    ...     tracker.observe(("c", "m"), day * 86400.0, price, {"p_rise_10": 0.5}, None)
    >>> summary = tracker.summary()["rise_10"]
    >>> summary["n"], summary["base_rate"], summary["brier"], summary["brier_climatology"]
    (4, 0.5, 0.25, 0.25)
    """

    EVENTS = ("above_reference", "rise_10")
    KEYS = {"above_reference": "p_above_reference", "rise_10": "p_rise_10"}

    def __init__(self, horizon: int = 14, since: float | None = None, until: float | None = None):
        self.horizon = horizon
        self.since, self.until = since, until
        self._pending: dict[tuple[str, str], deque] = {}
        self._sums = {event: _empty_calibration() for event in self.EVENTS}

    def observe(self, key: tuple[str, str], ts: float, price: float, odds: dict | None,
                reference: float | None, accepted: bool = True) -> None:
        if not accepted:
            return
        pending = self._pending.setdefault(key, deque())
        if len(pending) >= self.horizon:
            made = pending.popleft()
            if made is not None and (self.since is None or ts >= self.since) and \
                    (self.until is None or ts < self.until):
                odds_then, price_then, reference_then = made
                outcomes = {"above_reference": reference_then is not None and price > reference_then,
                            "rise_10": price >= 1.1 * price_then}
                for event in self.EVENTS:
                    p = odds_then.get(self.KEYS[event])
                    if p is not None and (event != "above_reference" or reference_then is not None):
                        _add(self._sums[event], p, outcomes[event])
        pending.append((odds, price, reference) if odds else None)

    def totals(self) -> dict:
        return {"horizon": self.horizon, **{event: dict(sums) for event, sums in self._sums.items()}}

    def summary(self) -> dict:
        return summarize_breach(self.totals())


def _empty_calibration() -> dict:
    return {"n": 0, "brier": 0.0, "hits": 0, "bin_n": [0] * BINS, "bin_p": [0.0] * BINS, "bin_hits": [0] * BINS}


def _add(sums: dict, p: float, happened: bool) -> None:
    sums["n"] += 1
    sums["brier"] += (p - happened) ** 2
    sums["hits"] += happened
    b = min(int(p * BINS), BINS - 1)
    sums["bin_n"][b] += 1
    sums["bin_p"][b] += p
    sums["bin_hits"][b] += happened


def merge_breach(into: dict, totals: dict) -> dict:
    into.setdefault("horizon", totals["horizon"])
    for event in BreachTracker.EVENTS:
        target = into.setdefault(event, _empty_calibration())
        source = totals[event]
        for name in ("n", "brier", "hits"):
            target[name] += source[name]
        for name in ("bin_n", "bin_p", "bin_hits"):
            target[name] = [a + b for a, b in zip(target[name], source[name])]
    return into


def summarize_breach(totals: dict) -> dict:
    out: dict = {"horizon": totals["horizon"]}
    for event in BreachTracker.EVENTS:
        sums = totals[event]
        n = sums["n"]
        rate = sums["hits"] / n if n else 0.0
        out[event] = {
            "n": n,
            "base_rate": rate if n else None,
            "brier": sums["brier"] / n if n else None,
            # Always forecasting the base rate scores rate * (1 - rate).
            "brier_climatology": rate * (1.0 - rate) if n else None,
            "reliability": [
                {"bin": f"{b / BINS:.1f}-{(b + 1) / BINS:.1f}", "n": count,
                 "mean_predicted": sums["bin_p"][b] / count, "observed": sums["bin_hits"][b] / count}
                for b, count in enumerate(sums["bin_n"]) if count
            ],
        }
    return out
