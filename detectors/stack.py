"""The default detector stack: one verdict per tick, the one way through for engine and backtest.

Every tick is scored by every detector first, then the stack decides whether to quarantine it,
then the detectors learn it unless it is quarantined. Quarantine protects the history from
entry errors (a typo of Rp 387.500 for Rp 38.750 would otherwise sit in the windows for weeks
and hide the next real anomaly), but must not swallow real moves, so it needs two independent
kinds of evidence:

* over time: the rolling z-score, IQR fences or forecast residual fired, and
* against the other markets: the cross-market check fired.

A market-wide move (chilli before Lebaran) fires the temporal detectors but not the cross-market
one, because the other markets moved too; it is learned. When the cross-market check cannot
judge (too few fresh markets, or the market's usual premium not learned yet), a tick is
quarantined only on very strong temporal evidence (``strong_factor`` times the threshold on
``strong_count`` detectors); when no temporal detector is warm yet, only on a very strong
cross-market score. A run of ``shift_after`` consecutive quarantined ticks that agree with each
other is a real level shift at one market: the run is learned and the market's usual premium
re-based, so no series stays quarantined forever. Held ticks are learned too when the market's
next accepted tick agrees with them: the first markets to report a sudden move look local until
the others follow, and their history should not miss the start of the move.

Ticks that arrive together should go through ``process_batch``: the cross-market check then
sees the whole batch, so a market-wide jump reported by all markets at once is not mistaken for
local errors at the markets that happen to come first.

Besides the price detectors every series has three reporting detectors that never decide a
quarantine: ``anomaly`` (detectors/anomaly.py, a general score in [0, 1], the one the NAB
benchmark measures), and the food-price indicators ``alps`` and ``ipa`` (WFP ALPS, FAO IPA),
whose class (normal / stress / alert / crisis) the verdict carries in ``classes`` once they are
warm. A value of 0 or below (never a validated price; NAB metrics have them) is judged by the
detectors that take no logarithm only (``iqr``, ``anomaly``).

Ceilings (``ceilings``) are keyed by commodity, or by ``(commodity, province)`` where the
ceiling differs by region (rice HET zones); the regional one wins.

>>> stack = DetectorStack(ceilings={"beras-medium": 12500.0})
>>> markets = ["pasar-a", "pasar-b", "pasar-c", "pasar-d", "pasar-e"]
>>> def tick(market, price, day, commodity="cabai"):
...     return {"commodity": commodity, "market": market, "price": price, "ts": day * 86400.0}
>>> for day in range(12):
...     for i, market in enumerate(markets):
...         _ = stack.process(tick(market, 50000.0 + 5000 * i + 500 * (day % 3), day))
>>> error = stack.process(tick("pasar-a", 387500.0, 12))
>>> error["fired"], error["quarantined"]
(['crossmarket', 'forecast', 'iqr', 'zscore'], True)
>>> error["reasons"]["crossmarket"]
'Rp 387.500 is +511% vs median Rp 63.451 of 4 other markets (usually -20%), z=18.0'
>>> moved = [stack.process(tick(m, 1.3 * (50000.0 + 5000 * i), 13)) for i, m in enumerate(markets)]
>>> moved[0]["fired"], [v["quarantined"] for v in moved]
(['forecast', 'iqr', 'zscore'], [False, False, False, False, False])
>>> stack.process(tick("pasar-a", 13000.0, 0, commodity="beras-medium"))["fired"]
['ceiling']
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from detectors.alps import ALPS
from detectors.ceiling import CeilingPrice, Reference
from detectors.contained import describe_error, guarded
from detectors.crossmarket import DAY, CrossMarket
from detectors.forecast import ForecastResidual
from detectors.forecast_horizons import ResidualPool
from detectors.iqr import IQRFences
from detectors.ipa import IPA
from detectors.series import SeriesState
from detectors.stale import StaleFeed
from detectors.surge import PanelSurge
from detectors.zscore import RollingZScore

TEMPORAL = ("zscore", "iqr", "forecast")
# Every detector name a verdict can carry: what rule conditions may name (server/engine.py).
DETECTOR_NAMES = frozenset({"zscore", "iqr", "forecast", "crossmarket", "ceiling", "anomaly",
                            "alps", "ipa", "surge"})
# Detectors whose score also has a class name (normal / stress / alert / crisis).
CLASSIFIERS = {"alps": ALPS.classify, "ipa": IPA.classify}


@dataclass
class StackConfig:
    """Thresholds and windows of the default stack. Windows count ticks; times are seconds.

    The defaults were tuned on the PIHPS West Java daily panel (18 markets, 2019-2025, chilli
    and shallots); see tests/test_detectors_stack.py for the behaviour they guarantee.
    """

    # Ticks of history a temporal detector needs before it scores.
    warmup: int = 8
    # Rolling z-score of the day-on-day log return; the std floor is a log change (0.025 ~ 2.5%).
    zscore_window: int = 30
    zscore_threshold: float = 4.0
    zscore_on: str = "log_return"
    zscore_min_std_frac: float = 0.025
    # Tukey fences on price: k scales beyond the quartiles, firing `iqr_threshold` scales further.
    iqr_window: int = 30
    iqr_k: float = 3.0
    iqr_min_scale_frac: float = 0.05
    iqr_threshold: float = 1.0
    # Exponential smoothing of log-price; residual scale is an EWMA of |residual|, floored.
    forecast_alpha: float = 0.7
    forecast_threshold: float = 4.0
    forecast_scale_alpha: float = 0.05
    forecast_min_scale: float = 0.03
    # Premium over the median of the other markets, in robust spreads of those markets.
    cross_threshold: float = 4.0
    cross_min_markets: int = 3
    cross_max_age: float = 14 * DAY
    cross_min_scale: float = 0.03
    cross_premium_alpha: float = 0.05
    cross_warmup: int = 5
    # Prices reported within this many seconds of each other count as "the same time" for the
    # cross-market check of a batch (a day's reports arrive over a morning).
    same_time: float = 6 * 3600.0
    # Quarantine without a cross-market opinion needs strong_count detectors at strong_factor x.
    strong_factor: float = 2.0
    strong_count: int = 2
    # This many agreeing quarantined ticks in a row (each within shift_tolerance in log-price
    # of the previous one) are accepted as a real level shift at one market.
    shift_after: int = 5
    shift_tolerance: float = 0.15
    # Feed health: stale when silent for stale_factor x the usual gap (at least stale_min_gap).
    stale_factor: float = 3.0
    stale_min_gap: float = 60.0


class Detector(Protocol):
    """What the stack asks of each detector of a tick."""

    name: str
    threshold: float

    def score_one(self, x: dict) -> float | None: ...

    def explain(self, x: dict, score: float) -> str: ...


class DetectorStack:
    def __init__(
        self,
        config: StackConfig | None = None,
        ceilings: Mapping[str | tuple[str, str], Reference | float] | None = None,
    ):
        self.config = config or StackConfig()
        # Keyed by commodity or (commodity, province); a tick without a province finds no pair.
        self._ceilings: dict[str | tuple[str, str | None], CeilingPrice] = {
            key: CeilingPrice(value) for key, value in (ceilings or {}).items()}
        self._series: dict[tuple[str, str], SeriesState] = {}
        self._panels: dict[str, CrossMarket] = {}
        self._surges: dict[str, PanelSurge] = {}
        # Per commodity, its sparse series' forecast residuals (detectors/forecast_horizons.py):
        # rebuilt from the series, never stored.
        self._pools: dict[str, ResidualPool] = {}

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_pools", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._pools = {}
        for (commodity, _), series in self._series.items():
            self._join_pool(commodity, series)

    def _join_pool(self, commodity: str, series: SeriesState) -> None:
        pool = self._pools.get(commodity)
        if pool is None:
            pool = self._pools[commodity] = ResidualPool()
        series.horizons.pool = pool
        if series.horizons.sparse():
            pool.add(series.horizons)

    # -- state, one piece at a time, for checkpoints ------------------------------------------

    def series_state(self, key: tuple[str, str]) -> SeriesState | None:
        return self._series.get(key)

    def set_series_state(self, key: tuple[str, str], state: SeriesState) -> None:
        old = self._series.get(key)
        if old is not None and old.horizons.pool is not None and old.horizons.sparse():
            old.horizons.pool.discard(old.horizons)
        self._series[key] = state
        self._join_pool(key[0], state)

    def panel_state(self, commodity: str) -> CrossMarket | None:
        return self._panels.get(commodity)

    def set_panel_state(self, commodity: str, state: CrossMarket) -> None:
        self._panels[commodity] = state

    def surge_state(self, commodity: str) -> PanelSurge | None:
        return self._surges.get(commodity)

    def set_surge_state(self, commodity: str, state: PanelSurge) -> None:
        self._surges[commodity] = state

    def series_keys(self) -> list[tuple[str, str]]:
        return list(self._series)

    def forecast(self, key: tuple[str, str], horizon: int, z: float = 1.96) -> list[dict]:
        """Forecast steps ``{"step", "level", "lo", "hi"}`` of a series; [] if unknown or cold."""
        series = self._series.get(key)
        return series.forecast.forecast(horizon, z) if series is not None else []

    def horizon_forecast(self, key: tuple[str, str], h: int) -> dict | None:
        """The calibrated forecast ``h`` ticks ahead (detectors/forecast_horizons.py); None if cold."""
        series = self._series.get(key)
        return series.horizons.predict(h) if series is not None else None

    def reference(self, commodity: str, province: str | None = None) -> float | None:
        """The commodity's HAP/HET (the regional one where it differs), None without one."""
        ceiling = self._ceilings.get((commodity, province)) or self._ceilings.get(commodity)
        return ceiling.ceiling if ceiling is not None else None

    # -- per tick -------------------------------------------------------------------------------

    def process_batch(self, ticks: list[dict]) -> list[dict]:
        """Verdicts for ticks that arrived together, in order.

        The cross-market check of every tick sees all prices of the batch, not only those
        before it. Markets often report a day's prices together; processed one by one, the
        first markets of a sudden market-wide jump would be judged against the others'
        yesterday prices and look like local errors. For the same batch the result is the same
        every time (the engine re-reads exactly the uncommitted batch after a crash).

        Only prices of the same time (within ``same_time`` seconds after the tick) are seen
        early: a batch that spans several days must not compare Monday with Friday's prices.
        """
        window = self.config.same_time
        by_time = sorted(range(len(ticks)), key=lambda i: ticks[i]["ts"])
        seen = 0
        verdicts = []
        for tick in ticks:
            horizon = tick["ts"] + window
            while seen < len(by_time) and ticks[by_time[seen]]["ts"] <= horizon:
                early = ticks[by_time[seen]]
                if early["price"] > 0.0:
                    # A failure here shows in the tick's own verdict, when crossmarket scores it.
                    guarded({}, "crossmarket", self._panel(early["commodity"]).observe, _features(early))
                seen += 1
            verdicts.append(self.process(tick))
        return verdicts

    def process(self, tick: dict) -> dict:
        """Score, decide quarantine, learn. Returns the verdict (docs/architecture.md)."""
        commodity, market = tick["commodity"], tick["market"]
        series = self._series.get((commodity, market))
        if series is None:
            series = self._series[(commodity, market)] = self._new_series()
            self._join_pool(commodity, series)
        panel = self._panel(commodity)
        x = _features(tick)

        positive = x["price"] > 0.0
        detectors: list[Detector]
        if positive:
            # What the other markets suggest for this one: a forecast feature, read before learning.
            x["consensus"] = guarded({}, "crossmarket", panel.consensus, x)
            surge = self._surge(commodity)
            detectors = [series.zscore, series.iqr, series.forecast, panel, series.anomaly,
                         series.alps, series.ipa, surge]
        else:
            # Log-price detectors cannot judge a value <= 0 (never a validated price; NAB has them).
            detectors = [series.iqr, series.anomaly]
        ceiling = self._ceilings.get((commodity, tick.get("province")))
        if ceiling is None:
            ceiling = self._ceilings.get(commodity)
        if ceiling is not None:
            detectors.append(ceiling)
        scores: dict[str, float] = {}
        thresholds: dict[str, float] = {}
        fired: list[str] = []
        reasons: dict[str, str] = {}
        errors: dict[str, str] = {}
        for detector in detectors:
            try:
                score = detector.score_one(x)
                if score is not None:
                    score = float(score)
            except Exception as exc:  # noqa: BLE001 - one detector's failure is that detector's alone
                errors[detector.name] = describe_error(exc)
                continue
            if score is None or score != score:  # NaN says nothing; it must not reach a rule
                continue
            scores[detector.name] = score
            thresholds[detector.name] = detector.threshold
            if score >= detector.threshold:
                fired.append(detector.name)
                reasons[detector.name] = guarded(errors, detector.name, detector.explain, x, score) or ""
        fired.sort()
        expected = guarded(errors, "forecast", series.expected)
        classes = {name: CLASSIFIERS[name](scores[name]) for name in CLASSIFIERS if name in scores}

        guarded(errors, "stale", series.stale.learn_one, x)
        quarantined = self._suspect(scores, thresholds, fired)
        if quarantined:
            if positive:
                guarded(errors, "crossmarket", panel.observe, x)
            run = series.hold(x, self.config.shift_tolerance)
            if len(run) >= self.config.shift_after:
                # A real level shift at this market: its usual premium is history.
                panel.forget_premium(market)
                self._learn_held(series, panel, errors, self._surge(commodity))
                quarantined = False
        else:
            if series.held and series.agrees(x, self.config.shift_tolerance):
                # The held run was the start of a move the market has now confirmed.
                self._learn_held(series, panel, errors, self._surge(commodity))
            series.held.clear()
            series.learn_one(x, errors)
            if positive:
                guarded(errors, "crossmarket", panel.learn_one, x)
                guarded(errors, "surge", self._surge(commodity).learn_one, x)
        if quarantined:
            guarded(errors, "anomaly", series.anomaly.observe, x)
        else:
            guarded(errors, "anomaly", series.anomaly.learn_one, x)
        verdict = {
            "scores": scores,
            "fired": fired,
            "reasons": reasons,
            "quarantined": quarantined,
            "expected": expected,
        }
        if classes:
            verdict["classes"] = classes
        odds = guarded(errors, "forecast", series.horizons.odds, ceiling.ceiling if ceiling is not None else None)
        if odds:
            verdict["odds"] = odds
        if errors:
            verdict["errors"] = errors
        return verdict

    def _suspect(
        self, scores: dict[str, float], thresholds: dict[str, float], fired: list[str]
    ) -> bool:
        config = self.config
        temporal_warm = [name for name in TEMPORAL if name in scores]
        if "crossmarket" in scores:
            if not temporal_warm:
                return scores["crossmarket"] >= config.strong_factor * thresholds["crossmarket"]
            return "crossmarket" in fired and any(name in fired for name in TEMPORAL)
        strong = [
            name for name in temporal_warm
            if scores[name] >= config.strong_factor * thresholds[name]
        ]
        return len(strong) >= config.strong_count

    @staticmethod
    def _learn_held(series: SeriesState, panel: CrossMarket, errors: dict[str, str],
                    surge: PanelSurge) -> None:
        for held in series.held:
            series.learn_one(held, errors)
            guarded(errors, "crossmarket", panel.learn_one, held)
            guarded(errors, "surge", surge.learn_one, held)
        series.held.clear()

    # -- feed health ----------------------------------------------------------------------------

    def sweep(self, now: float | Callable[[tuple[str, str]], float]) -> list[dict]:
        """Feed health of every series whose state changed since the last sweep.

        ``now`` is one time for every series (a replay, a backtest), or a function giving each
        series its own (the engine: so that one tick with an odd time cannot make every other
        series look stale). Each change carries the ``now`` it was judged at as ``ts``."""
        changes = []
        for (commodity, market), series in self._series.items():
            at = now((commodity, market)) if callable(now) else now
            score = series.stale.score_one({"ts": at})
            if score is None:
                continue
            state = "stale" if score >= series.stale.threshold else "ok"
            if state == series.health:
                continue
            series.health = state
            changes.append(
                {
                    "commodity": commodity,
                    "market": market,
                    "state": state,
                    "age": series.stale.age(at),
                    "expected_gap": series.stale.expected_gap(),
                    "ts": at,
                }
            )
        return changes

    # -- construction -----------------------------------------------------------------------------

    def _new_series(self) -> SeriesState:
        c = self.config
        return SeriesState(
            zscore=RollingZScore(
                window=c.zscore_window, threshold=c.zscore_threshold, on=c.zscore_on,
                min_std_frac=c.zscore_min_std_frac, warmup=c.warmup,
            ),
            iqr=IQRFences(
                window=c.iqr_window, k=c.iqr_k, min_scale_frac=c.iqr_min_scale_frac,
                warmup=c.warmup, threshold=c.iqr_threshold,
            ),
            forecast=ForecastResidual(
                alpha=c.forecast_alpha, threshold=c.forecast_threshold,
                scale_alpha=c.forecast_scale_alpha, min_scale=c.forecast_min_scale,
                warmup=c.warmup,
            ),
            stale=StaleFeed(factor=c.stale_factor, min_gap=c.stale_min_gap),
        )

    def _surge(self, commodity: str) -> PanelSurge:
        surge = self._surges.get(commodity)
        if surge is None:
            surge = self._surges[commodity] = PanelSurge()
        return surge

    def _panel(self, commodity: str) -> CrossMarket:
        panel = self._panels.get(commodity)
        if panel is None:
            c = self.config
            panel = self._panels[commodity] = CrossMarket(
                threshold=c.cross_threshold, min_markets=c.cross_min_markets,
                max_age=c.cross_max_age, min_scale=c.cross_min_scale,
                premium_alpha=c.cross_premium_alpha, warmup=c.cross_warmup,
            )
        return panel


def _features(tick: dict) -> dict:
    """What the detectors read from a tick."""
    return {"price": float(tick["price"]), "ts": float(tick["ts"]), "market": tick["market"]}
