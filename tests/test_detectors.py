"""Behaviour of each detector on its own (the stack is tested in test_detectors_stack.py)."""
from __future__ import annotations

import math
import pickle

import pytest

from detectors.ceiling import CeilingPrice
from detectors.crossmarket import CrossMarket
from detectors.forecast import ForecastResidual
from detectors.iqr import IQRFences
from base.money import format_rupiah
from detectors.stale import StaleFeed
from detectors.zscore import RollingZScore

DAY = 86400.0


def feed(detector, prices, start=0.0, step=DAY):
    for i, price in enumerate(prices):
        detector.learn_one({"price": float(price), "ts": start + i * step})


@pytest.mark.parametrize(
    "value, text",
    [(0, "Rp 0"), (999.6, "Rp 1.000"), (60000, "Rp 60.000"), (1234567.0, "Rp 1.234.567"),
     (-2500, "-Rp 2.500")],
)
def test_format_rupiah_uses_dots_for_thousands(value, text):
    assert format_rupiah(value) == text


# -- rolling z-score -------------------------------------------------------------------------

def test_zscore_is_none_until_warm():
    det = RollingZScore(warmup=8)
    feed(det, [60000] * 8)  # 8 prices are only 7 returns
    assert det.score_one({"price": 90000.0, "ts": 0.0}) is None
    feed(det, [60000])
    assert det.score_one({"price": 90000.0, "ts": 0.0}) is not None


def test_zscore_flat_prices_do_not_make_a_small_step_infinite():
    det = RollingZScore(min_std_frac=0.025)
    feed(det, [60000] * 30)
    score = det.score_one({"price": 61500.0, "ts": 0.0})  # +2.5%
    assert math.isfinite(score) and score < det.threshold
    assert det.score_one({"price": 75000.0, "ts": 0.0}) >= det.threshold


def test_zscore_on_price_floors_std_at_a_share_of_the_mean():
    det = RollingZScore(on="price", min_std_frac=0.01)
    feed(det, [60000] * 30)
    assert det.score_one({"price": 61800.0, "ts": 0.0}) == pytest.approx(3.0)
    assert "mean Rp 60.000 over 30 ticks" in det.explain({"price": 61800.0, "ts": 0.0}, 3.0)


def test_zscore_rejects_an_unknown_mode():
    with pytest.raises(ValueError):
        RollingZScore(on="volume")


# -- IQR fences --------------------------------------------------------------------------------

def test_iqr_sticky_prices_do_not_fire_on_a_small_change():
    det = IQRFences()
    feed(det, [40000] * 30)
    assert det.score_one({"price": 42000.0, "ts": 0.0}) == 0.0  # +5%: inside the floored fences
    assert det.score_one({"price": 38000.0, "ts": 0.0}) == 0.0
    assert det.score_one({"price": 60000.0, "ts": 0.0}) >= det.threshold


def test_iqr_scores_in_scales_beyond_the_fence():
    det = IQRFences(window=8, k=3.0, warmup=8)
    feed(det, [100, 100, 100, 100, 110, 110, 110, 110])
    # q1 = 100, q3 = 110, IQR = 10, high fence 140, low fence 70.
    assert det.score_one({"price": 160.0, "ts": 0.0}) == pytest.approx(2.0)
    assert det.score_one({"price": 60.0, "ts": 0.0}) == pytest.approx(1.0)
    assert det.expected() == {"level": 105.0, "lo": 60.0, "hi": 150.0}


def test_iqr_is_none_and_has_no_band_until_warm():
    det = IQRFences(warmup=8)
    feed(det, [60000] * 7)
    assert det.score_one({"price": 60000.0, "ts": 0.0}) is None
    assert det.expected() is None


# -- forecast residual -------------------------------------------------------------------------

def test_forecast_bands_widen_with_the_horizon():
    det = ForecastResidual()
    feed(det, [60000, 61000, 59000, 60000, 62000, 61000, 60000, 59500, 60500, 61000])
    steps = det.forecast(5)
    assert [s["step"] for s in steps] == [1, 2, 3, 4, 5]
    widths = [s["hi"] - s["lo"] for s in steps]
    assert all(s["lo"] < s["level"] < s["hi"] for s in steps)
    assert widths == sorted(widths) and widths[0] < widths[-1]
    assert 59000 < steps[0]["level"] < 62000


def test_forecast_scale_keeps_its_floor_after_a_long_flat_stretch():
    det = ForecastResidual(min_scale=0.03)
    feed(det, [50000] * 200)
    assert det.scale() == pytest.approx(0.03)
    assert det.score_one({"price": 52000.0, "ts": 0.0}) < det.threshold  # +4%
    assert det.score_one({"price": 65000.0, "ts": 0.0}) >= det.threshold  # +30%


def test_forecast_is_empty_until_warm():
    det = ForecastResidual(warmup=8)
    feed(det, [60000] * 7)
    assert det.score_one({"price": 60000.0, "ts": 0.0}) is None
    assert det.forecast(3) == [] and det.expected() is None


# -- cross-market --------------------------------------------------------------------------------

def panel(det, prices_by_market, days, start_day=0):
    for day in range(start_day, start_day + days):
        for market, price in prices_by_market.items():
            det.learn_one({"market": market, "price": float(price), "ts": day * DAY})


def test_crossmarket_does_not_flag_a_market_that_is_always_dearer():
    det = CrossMarket()
    panel(det, {"a": 60000, "b": 61000, "c": 59000, "d": 60500, "dear": 75000}, days=10)
    assert det.score_one({"market": "dear", "price": 75000.0, "ts": 10 * DAY}) < 0.5
    assert det.score_one({"market": "dear", "price": 150000.0, "ts": 10 * DAY}) >= det.threshold


def test_crossmarket_needs_enough_fresh_other_markets():
    det = CrossMarket(min_markets=3, max_age=7 * DAY)
    panel(det, {"a": 60000, "b": 61000, "c": 59000, "d": 60500}, days=10)
    assert det.score_one({"market": "a", "price": 60000.0, "ts": 10 * DAY}) is not None
    # Twenty days later the others' prices are too old to be a reference.
    assert det.score_one({"market": "a", "price": 60000.0, "ts": 30 * DAY}) is None
    small = CrossMarket(min_markets=3)
    panel(small, {"a": 60000, "b": 61000, "c": 59000}, days=10)
    assert small.score_one({"market": "a", "price": 60000.0, "ts": 10 * DAY}) is None


def test_crossmarket_follows_a_market_wide_move():
    det = CrossMarket()
    base = {"a": 60000, "b": 61000, "c": 59000, "d": 60500, "e": 62000}
    panel(det, base, days=10)
    panel(det, {m: p * 1.4 for m, p in base.items() if m != "a"}, days=1, start_day=10)
    assert det.score_one({"market": "a", "price": 84000.0, "ts": 10 * DAY}) < det.threshold
    assert det.score_one({"market": "a", "price": 60000.0, "ts": 10 * DAY}) >= det.threshold


def test_crossmarket_forget_premium_rebases_a_market():
    det = CrossMarket(warmup=3)
    panel(det, {"a": 60000, "b": 61000, "c": 59000, "d": 60500}, days=10)
    det.forget_premium("a")
    assert det.usual_premium("a") is None
    assert det.score_one({"market": "a", "price": 90000.0, "ts": 10 * DAY}) is None
    panel(det, {"a": 90000}, days=3, start_day=10)
    assert det.score_one({"market": "a", "price": 90000.0, "ts": 13 * DAY}) < 0.5


def test_crossmarket_observe_updates_the_reference_but_not_the_premium():
    det = CrossMarket()
    panel(det, {"a": 60000, "b": 61000, "c": 59000, "d": 60500}, days=10)
    before = det.usual_premium("a")
    det.observe({"market": "a", "price": 400000.0, "ts": 10 * DAY})
    assert det.usual_premium("a") == before
    # One wild price among the others barely moves their median.
    assert det.score_one({"market": "b", "price": 61000.0, "ts": 10 * DAY}) < 1.0


# -- ceiling and stale ---------------------------------------------------------------------------

def test_ceiling_fires_at_and_above_the_het_only():
    det = CeilingPrice(13500.0)
    assert det.score_one({"price": 13000.0, "ts": 0.0}) < det.threshold
    assert det.score_one({"price": 14000.0, "ts": 0.0}) >= det.threshold
    assert CeilingPrice(None).score_one({"price": 1e9, "ts": 0.0}) is None
    with pytest.raises(ValueError):
        CeilingPrice(0.0)


def test_stale_fires_after_a_long_gap():
    det = StaleFeed(factor=3.0)
    feed(det, [60000] * 10)
    last = 9 * DAY
    assert det.score_one({"ts": last + 2 * DAY}) < det.threshold
    assert det.score_one({"ts": last + 3 * DAY}) >= det.threshold
    assert det.expected_gap() == DAY and det.age(last + 5 * DAY) == 5 * DAY


def test_stale_min_gap_keeps_a_bursty_feed_from_going_stale_at_once():
    det = StaleFeed(factor=3.0, min_gap=60.0)
    feed(det, [60000] * 20, step=0.1)
    assert det.expected_gap() == 60.0
    assert det.score_one({"ts": 2.0 + 30.0}) < det.threshold
    assert det.score_one({"ts": 2.0 + 200.0}) >= det.threshold


def test_stale_is_none_until_it_knows_the_usual_gap_and_ignores_late_ticks():
    det = StaleFeed()
    feed(det, [60000] * 3)
    assert det.score_one({"ts": 100 * DAY}) is None
    feed(det, [60000], start=3 * DAY)
    det.learn_one({"price": 60000.0, "ts": 1 * DAY})  # late: no negative gap
    assert det.expected_gap() == DAY and det.last_seen == 3 * DAY


# -- picklable state -----------------------------------------------------------------------------

@pytest.mark.parametrize(
    "factory",
    [RollingZScore, IQRFences, ForecastResidual, StaleFeed, lambda: CeilingPrice(70000.0)],
)
def test_detector_state_pickles_and_continues_identically(factory):
    det = factory()
    prices = [60000, 61000, 60000, 59000, 60000, 62500, 60000, 59500, 60000, 61000, 64000]
    feed(det, prices)
    copy = pickle.loads(pickle.dumps(det))
    for i, price in enumerate([60500, 90000, 58000, 61000]):
        x = {"price": float(price), "ts": (20 + i) * DAY}
        assert det.score_one(x) == copy.score_one(x)
        det.learn_one(x)
        copy.learn_one(x)
