"""Forecasts 1, 7, 14 and 28 ticks ahead with conformal intervals, and the odds of a breach.

Point forecast, per horizon ``h``, on log-price ``y``::

    y(t+h) = y(t) + w_h . (slow - y, y - fast, consensus - y)

* ``slow - y``: distance to a slow EWMA of the series (alpha 0.01, about a year of reporting
  days): chilli and shallot spikes revert to the series' usual level within weeks;
* ``y - fast``: distance from a fast EWMA (alpha 0.3): a move carries on for a while;
* ``consensus - y``: distance to the median of the other markets of the commodity plus this
  market's usual premium (``CrossMarket.consensus``): a market out of line drifts back to the
  others. Without a consensus (too few fresh markets) the weights fitted without it are used.

The weights are fixed, fitted by least absolute deviations on 2019-2022 of the PIHPS West Java
panel (chilli and shallots, 18 markets, pooled) and never on the years they are reported on
(``pasarwatch backtest ... --split 2023-01-01`` prints both periods). At one tick nothing beat
the last price on 2019-2022, so the one-tick point *is* the last price, and says so
(``model`` False). A series reported less often than every ``MAX_MODEL_GAP`` (the monthly
provincial panel) gets the last price at every horizon: the weights know reporting days only.

Intervals are split conformal on the series' own recent residuals of the served point at each
horizon (the last ``window``, so memory is bounded), with adaptive conformal inference (Gibbs and
Candès 2021): each interval's miscoverage level is nudged by ``gamma`` when an outcome arrives,
down after a miss of the interval issued then, up after a hit, which keeps long-run coverage
near nominal although multi-step residuals are strongly autocorrelated. ``probability_above``
reads the same residuals: P(price(t+h) > c) is the share of recent residuals that would have
put the price above ``c``. The served odds (``odds``: a 10% rise, passing the HAP/HET) are those
probabilities recalibrated by small logistic maps fitted on 2019-2022 (``RISE_COEF``,
``ABOVE_COEF``): alone they were too sure; series not reported daily get them raw.

>>> model = HorizonForecast(window=30, warmup=10)
>>> for day in range(80):
...     model.learn_one({"price": 50000.0 * (1.0 + 0.02 * (day % 5)), "ts": day * 86400.0})
>>> seven = model.predict(7)
>>> seven["lo95"] <= seven["lo80"] <= seven["point"] <= seven["hi80"] <= seven["hi95"]
True
>>> model.predict(1)["point"] == model.last_price()
True
>>> 0.0 <= model.probability_above(14, 54000.0) <= 1.0, model.probability_above(14, 10**9)
(True, 0.0)
"""
from __future__ import annotations

import bisect
import math
from collections import deque

HORIZONS = (1, 7, 14, 28)
# Weights on (slow - y, y - fast, consensus - y), LAD fits on 2019-2022 (West Java, chilli and
# shallots, pooled over markets). None: the last price, because nothing beat it there.
WEIGHTS: dict[int, tuple[float, float, float] | None] = {
    1: None,
    7: (0.058, 0.898, 0.678),
    14: (0.181, 1.593, 1.0),
    28: (0.459, 1.569, 0.885),
}
WEIGHTS_ALONE: dict[int, tuple[float, float, float] | None] = {
    1: None,
    7: (0.038, 0.425, 0.0),
    14: (0.186, 1.091, 0.0),
    28: (0.477, 1.167, 0.0),
}
LEVELS = (0.8, 0.95)
# The conformal probabilities alone were too sure on 2019-2022 (a 5% chance of a 10% rise came
# true 17% of the time); logistic recalibrations fitted there on the choose period. A rise: on
# (logit p, slow - y, y - fast, consensus - y); passing the reference: on logit p alone.
RISE_COEF = (-1.069, -0.198, 1.017, 14.391, 10.884)
ABOVE_COEF = (-0.338, 0.671)
# Fewest residuals an interval is built from.
MIN_RESIDUALS = 20
# The ACI miscoverage level is kept in this range: it may go below 0 (wider than the widest
# residual seen, extrapolated) but never so high that the interval collapses.
ALPHA_RANGE = (-1.0, 0.9)
# Stored precision of log-prices and residuals: 1e-4 (0.01%).
RESIDUAL_UNITS = 10_000
# A pending forecast is ENTRY whole numbers in a flat list (a checkpoint encodes a flat list
# of ints in bulk): origin log-price, model point minus origin, flags, then the residual bounds
# lo80, hi80, lo95, hi95 of the interval issued (zeros unless ISSUED).
ENTRY = 7
SERVED, ISSUED = 1, 2
NO_BOUNDS = (0, 0, 0, 0)
# The weights were fitted on reporting days; a series whose usual gap between ticks is longer
# (the monthly provincial panel) gets the last price, with intervals around it.
MAX_MODEL_GAP = 4 * 86400.0
GAP_ALPHA = 0.05
# A sparse series (warm, reported less often than every MAX_MODEL_GAP: the monthly provincial
# panel) has too few residuals of its own at long horizons (a 14-month residual needs 14 months
# of history). Its intervals are built from the residuals of every sparse series of its
# commodity (``ResidualPool``, kept by the stack), with a larger ACI step: a monthly series
# sees a few dozen outcomes, too few for the daily step to move its level. The step was chosen
# among 0.02, 0.05, 0.1, 0.15 and 0.2 on the monthly panel's 2018-2022 coverage only.
POOL_GAMMA = 0.15


class ResidualPool:
    """The recent residuals of a commodity's sparse series, pooled per horizon (sorted).

    Not checkpointed: it is the union of the windows of its members (the sparse series of the
    commodity, ``HorizonForecast.sparse``), which are, so the stack rebuilds it from restored
    series (``add``) and every member keeps it in step with its own window as it learns.

    >>> pool = ResidualPool((1, 7))
    >>> pool.insert(0, 30); pool.insert(0, -10); pool.remove(0, 30)
    >>> pool.sorted[0], pool.sorted[1]
    ([-10], [])
    """

    def __init__(self, horizons: tuple[int, ...] = HORIZONS):
        self.horizons = tuple(horizons)
        self.sorted: list[list[int]] = [[] for _ in self.horizons]

    def insert(self, i: int, residual: int) -> None:
        bisect.insort(self.sorted[i], residual)

    def remove(self, i: int, residual: int) -> None:
        ordered = self.sorted[i]
        del ordered[bisect.bisect_left(ordered, residual)]

    def add(self, model: HorizonForecast) -> None:
        """Add a member's windows (a restored sparse series)."""
        for i, window in enumerate(model._residuals):
            for residual in window:
                bisect.insort(self.sorted[i], residual)

    def discard(self, model: HorizonForecast) -> None:
        """Take a member's windows out (it is no longer sparse, or its state is replaced)."""
        for i, window in enumerate(model._residuals):
            for residual in window:
                self.remove(i, residual)


class HorizonForecast:
    """One series' multi-horizon forecaster; plain state, picklable, registered in detectors/state.py."""

    name = "forecast_horizons"

    def __init__(self, horizons: tuple[int, ...] = HORIZONS, window: int = 150, gamma: float = 0.02,
                 warmup: int = 20, slow_alpha: float = 0.01, fast_alpha: float = 0.3):
        unknown = [h for h in horizons if h not in WEIGHTS]
        if unknown:
            raise ValueError(f"no weights for horizons {unknown}; known: {sorted(WEIGHTS)}")
        if window < MIN_RESIDUALS:
            raise ValueError(f"window must be at least {MIN_RESIDUALS}")
        self.horizons = tuple(horizons)
        self.window = window
        self.gamma = gamma
        self.warmup = warmup
        self.slow_alpha = slow_alpha
        self.fast_alpha = fast_alpha
        self._n = 0
        self._last: float | None = None  # log-price of the last learned tick
        self._slow = 0.0
        self._fast = 0.0
        self._gap: float | None = None  # consensus - y at the last tick
        self._ts: float | None = None  # time of the last tick
        self._spacing: float | None = None  # usual seconds between ticks (EWMA)
        # Per horizon (lists in the order of ``horizons``: int-keyed dicts cost more in a
        # checkpoint): forecasts waiting for their outcome, recent residuals of the served point
        # in arrival order and the ACI miscoverage level of each interval. Log-prices are
        # stored as whole numbers of RESIDUAL_UNITS, which keeps a checkpoint small.
        self._pending: list[list[int]] = [[] for _ in self.horizons]
        self._residuals: list[deque[int]] = [deque(maxlen=window) for _ in self.horizons]
        self._alpha = [[1.0 - level for level in LEVELS] for _ in self.horizons]
        self._sorted: list[list[int]] = [[] for _ in self.horizons]
        # The commodity's pool of sparse series' residuals, attached by the stack (not stored).
        self.pool: ResidualPool | None = None

    # -- state: the sorted copies and the pool are rebuilt, not stored ----------------------------

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        del state["_sorted"]
        state.pop("pool", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._sorted = [sorted(window) for window in self._residuals]
        self.pool = None

    # -- learning -----------------------------------------------------------------------------------

    def score_one(self, x: dict) -> None:
        """Never scores a tick (it reports forecasts and odds); here so that benchmarks and
        tools that drive every detector alike (bench/detection.py) can drive this one too."""
        return None

    def learn_one(self, x: dict) -> None:
        """Learn an accepted tick; ``x["consensus"]`` (log-price) is optional."""
        # One pass per horizon with local names: this runs for every accepted tick.
        y = math.log(x["price"])
        outcome = round(y * RESIDUAL_UNITS)
        sparse = self.sparse()
        # A sparse series' window is part of its commodity's pool: kept in step below.
        pool = self.pool if sparse else None
        gamma, low, high = POOL_GAMMA if sparse else self.gamma, ALPHA_RANGE[0], ALPHA_RANGE[1]
        per_horizon = tuple(zip(self.horizons, self._pending, self._alpha, self._residuals, self._sorted))
        for i, (h, pending, alphas, window, ordered) in enumerate(per_horizon):
            if len(pending) < h * ENTRY:
                continue
            origin, model, flags, lo80, hi80, lo95, hi95 = pending[:ENTRY]
            del pending[:ENTRY]
            residual = outcome - origin - (model if flags & SERVED else 0)
            if flags & ISSUED:
                # Adaptive conformal: judged against the interval issued then, not today's.
                a80 = alphas[0] + gamma * (0.2 - (not lo80 <= residual <= hi80))
                a95 = alphas[1] + gamma * (0.05 - (not lo95 <= residual <= hi95))
                alphas[0] = low if a80 < low else high if a80 > high else a80
                alphas[1] = low if a95 < low else high if a95 > high else a95
            if len(window) == window.maxlen:
                del ordered[bisect.bisect_left(ordered, window[0])]
                if pool is not None:
                    pool.remove(i, window[0])
            window.append(residual)
            bisect.insort(ordered, residual)
            if pool is not None:
                pool.insert(i, residual)
        if self._last is None:
            self._slow = self._fast = y
        else:
            self._slow += self.slow_alpha * (y - self._slow)
            self._fast += self.fast_alpha * (y - self._fast)
        self._last = y
        ts = x["ts"]
        if self._ts is not None and ts > self._ts:
            step = ts - self._ts
            self._spacing = step if self._spacing is None else self._spacing + GAP_ALPHA * (step - self._spacing)
        self._ts = ts
        consensus = x.get("consensus")
        self._gap = gap = consensus - y if consensus is not None else None
        self._n += 1
        if self.pool is not None and self.sparse() != sparse:
            # Became sparse (warm, and its spacing grew past MAX_MODEL_GAP), or stopped being.
            if sparse:
                self.pool.discard(self)
            else:
                self.pool.add(self)
            sparse = not sparse
        else:
            sparse = self.sparse()
        # What _model_point and _bounds compute for each horizon, with the terms they share
        # taken once (the same operations in the same order: the same floats).
        daily = self.reported_daily()
        warm = self._n >= self.warmup
        table = WEIGHTS if gap is not None else WEIGHTS_ALONE
        to_slow, from_fast, gap_term = self._slow - y, y - self._fast, gap or 0.0
        pooled = self.pool.sorted if sparse and self.pool is not None else None
        for i, (h, pending, alphas, _, ordered) in enumerate(per_horizon):
            if pooled is not None:
                ordered = pooled[i]
            weights = table[h]
            if weights is None or not warm:
                offset = 0
            else:
                point = y + weights[0] * to_slow + weights[1] * from_fast + weights[2] * gap_term
                offset = round((point - y) * RESIDUAL_UNITS)
            flags = SERVED if daily and WEIGHTS[h] is not None else 0
            if not warm or len(ordered) < MIN_RESIDUALS:
                pending.extend((outcome, offset, flags, *NO_BOUNDS))
                continue
            a80, a95 = alphas  # the bounds as _bounds(i) gives them
            last = len(ordered) - 1
            pending.extend((outcome, offset, flags | ISSUED, _inner_quantile(ordered, 0.5 * a80, last),
                                     _inner_quantile(ordered, 1.0 - 0.5 * a80, last),
                                     _inner_quantile(ordered, 0.5 * a95, last),
                                     _inner_quantile(ordered, 1.0 - 0.5 * a95, last)))

    # -- forecasting ---------------------------------------------------------------------------------

    def _model_point(self, h: int, y: float) -> float:
        """The model's log-price ``h`` ticks ahead of the last log-price ``y``."""
        weights = WEIGHTS[h] if self._gap is not None else WEIGHTS_ALONE[h]
        if weights is None or self._n < self.warmup:
            return y
        return y + weights[0] * (self._slow - y) + weights[1] * (y - self._fast) + \
            weights[2] * (self._gap or 0.0)

    def sparse(self) -> bool:
        """Warm, and reported less often than every MAX_MODEL_GAP (the monthly panel): its
        intervals come from its commodity's pool of sparse series' residuals."""
        return self._n >= self.warmup and self._spacing is not None and self._spacing > MAX_MODEL_GAP

    def reported_daily(self) -> bool:
        """Warm, and reported about daily, as the data the weights and the odds' recalibration
        were fitted on."""
        return self._n >= self.warmup and self._spacing is not None and self._spacing <= MAX_MODEL_GAP

    def _serves_model(self, i: int) -> bool:
        """Whether the point at the ``i``-th horizon is the model's, not the last price."""
        return WEIGHTS[self.horizons[i]] is not None and self.reported_daily()

    def _point(self, h: int, y: float) -> float:
        """The served log-price ``h`` ticks ahead: the model's, or the last one ``y``."""
        return self._model_point(h, y) if self._serves_model(self.horizons.index(h)) else y

    def _bounds(self, i: int) -> list[int] | None:
        """Residual bounds (RESIDUAL_UNITS) of the 80% and 95% intervals at the ``i``-th
        horizon: lo80, hi80, lo95, hi95; None with too few residuals."""
        ordered = self._sorted[i]
        if self._n < self.warmup or len(ordered) < MIN_RESIDUALS:
            return None
        a80, a95 = self._alpha[i]
        last = len(ordered) - 1
        return [_inner_quantile(ordered, level, last) for level in
                (0.5 * a80, 1.0 - 0.5 * a80, 0.5 * a95, 1.0 - 0.5 * a95)]

    def _issued(self, i: int) -> list[int] | None:
        """The residual bounds of the interval issued at the last tick (``_bounds`` then, or
        from the pool), as stored with its pending forecast: what a sparse series serves, so
        that a reader of its checkpoint alone (the API) serves what the engine issued."""
        pending = self._pending[i]
        if len(pending) < ENTRY or not pending[-ENTRY + 2] & ISSUED:
            return None
        return pending[-4:]

    def warm(self) -> bool:
        return self._n >= self.warmup and all(len(ordered) >= MIN_RESIDUALS for ordered in self._sorted)

    def last_price(self) -> float | None:
        return math.exp(self._last) if self._last is not None else None

    def predict(self, h: int) -> dict | None:
        """Price forecast ``h`` ticks ahead: ``point``, ``lo80``/``hi80``, ``lo95``/``hi95``,
        ``model`` (whether the point is the model's, else it is the last price); None until warm."""
        if h not in self.horizons:
            raise ValueError(f"horizon {h} is not one of {self.horizons}")
        if self._last is None:
            return None
        i = self.horizons.index(h)
        bounds = self._issued(i) if self.sparse() else self._bounds(i)
        if bounds is None:
            return None
        point = self._point(h, self._last)
        lo80, hi80, lo95, hi95 = (point + b / RESIDUAL_UNITS for b in bounds)
        return {
            "h": h,
            "point": math.exp(point),
            "lo80": math.exp(lo80), "hi80": math.exp(hi80), "lo95": math.exp(lo95), "hi95": math.exp(hi95),
            "model": self._serves_model(i),
        }

    def probability_above(self, h: int, price: float) -> float | None:
        """P(price ``h`` ticks ahead > ``price``) from the recent residuals; None until warm."""
        if self._last is None or h not in self.horizons or price <= 0.0:
            return None
        return self._share_above(self.horizons.index(h), math.log(price) - self._point(h, self._last))

    def _share_above(self, i: int, excess: float) -> float | None:
        """Share of the ``i``-th horizon's residuals above ``excess`` (log); None if too few."""
        ordered = self._sorted[i]
        if len(ordered) < MIN_RESIDUALS:
            return None
        return (len(ordered) - bisect.bisect_right(ordered, excess * RESIDUAL_UNITS)) / len(ordered)

    def odds(self, reference: float | None, h: int = 14, rise: float = 0.10) -> dict:
        """``p_above_reference`` (when there is a reference) and ``p_rise_10`` at horizon ``h``:
        the conformal probabilities, recalibrated (``RISE_COEF``, ``ABOVE_COEF``)."""
        y = self._last
        if y is None or h not in self.horizons:
            return {}
        i = self.horizons.index(h)
        # The recalibration was fitted on daily reports; on the monthly panel it made the rise
        # odds worse than the raw ones on 2018-2022, so other series get the raw probabilities.
        daily = self.reported_daily()
        point = self._model_point(h, y) if daily and WEIGHTS[h] is not None else y  # _point(h, y)
        # A rise of exactly 10% counts as one (the tracker's test is price >= 1.1 x today's).
        raw_rise = self._share_above(i, y + math.log1p(rise) - 1e-9 - point)
        if raw_rise is None:
            return {}
        features = (_logit(raw_rise), self._slow - y, y - self._fast, self._gap or 0.0)
        out = {"p_rise_10": _logistic(RISE_COEF, features) if daily else raw_rise}
        if reference is not None and reference > 0.0:
            raw_above = self._share_above(i, math.log(reference) - point)
            if raw_above is not None:
                out["p_above_reference"] = _logistic(ABOVE_COEF, (_logit(raw_above),)) if daily else raw_above
        return out


def _logit(p: float) -> float:
    p = min(max(p, 0.01), 0.99)
    return math.log(p / (1.0 - p))


def _logistic(coefficients: tuple[float, ...], features: tuple[float, ...]) -> float:
    z = coefficients[0] + sum(c * f for c, f in zip(coefficients[1:], features))
    return 1.0 / (1.0 + math.exp(-z)) if z > -500.0 else 0.0


def _inner_quantile(ordered: list[int], level: float, last: int) -> int:
    """``_quantile``, with the common case (strictly inside the sample) first: four per
    horizon on every tick."""
    position = level * last
    if 0.0 < position < last:
        low = int(position)
        below = ordered[low]
        return round(below + (position - low) * (ordered[low + 1] - below))
    return _quantile(ordered, level)


def _quantile(ordered: list[int], level: float) -> int:
    """Quantile of a sorted list, interpolated and rounded to a whole number; beyond [0, 1]
    extrapolated along the outer tenth of the sample (an ACI level past the extremes asks for
    a wider interval than any residual seen)."""
    n = len(ordered)
    position = level * (n - 1)
    if position <= 0.0:
        k = n // 10 or 1
        return round(ordered[0] + position * (ordered[k] - ordered[0]) / k)
    if position >= n - 1:
        k = n // 10 or 1
        return round(ordered[-1] + (position - (n - 1)) * (ordered[-1] - ordered[-1 - k]) / k)
    low = int(position)
    below = ordered[low]
    return round(below + (position - low) * (ordered[low + 1] - below))
