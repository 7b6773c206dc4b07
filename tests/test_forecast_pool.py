"""Intervals of sparse series from their commodity's pool of residuals
(detectors/forecast_horizons.py ``ResidualPool``, kept by detectors/stack.py), and the monthly
panel's forecast figures that README.md and docs/detection.md give.

Fixture: tests/fixtures/pihps-monthly-2018-2023.csv is
../shared/data/pihps-monthly/provinsi-bulanan-2018-2023.csv copied unchanged (monthly average
consumer prices of shallots, chicken and premium rice in 34 provinces, January 2018 to June 2023;
origin in that folder's README).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from base.catalog import load_catalog
from detectors.forecast_horizons import HORIZONS, MIN_RESIDUALS, HorizonForecast
from detectors.recorded import read_paths
from detectors.stack import DetectorStack
from detectors.state import decode_state, encode_state
from pipeline import backtest
from pipeline.replay import reporting_days
from tests.test_forecast_horizons import random_walk

MONTHLY = Path(__file__).parent / "fixtures" / "pihps-monthly-2018-2023.csv"
DAY = 86400.0


def feed(stack: DetectorStack, markets: int, months: int, commodity: str = "bawang-merah",
         start: int = 0, step: float = 30 * DAY, since: float = 0.0) -> None:
    """Ticks ``start`` to ``months`` of random walks (one per market), ``step`` apart from ``since``."""
    prices = {m: random_walk(months, 0.04, seed=m + 100 * len(commodity)) for m in range(markets)}
    for t in range(start, months):
        stack.process_batch([{"commodity": commodity, "market": f"prov-{m}", "price": prices[m][t],
                              "ts": since + (t - start) * step} for m in range(markets)])


def pool_is_the_union_of_sparse_windows(stack: DetectorStack) -> None:
    for commodity, pool in stack._pools.items():
        members = [s.horizons for (c, _), s in stack._series.items() if c == commodity and s.horizons.sparse()]
        for i in range(len(HORIZONS)):
            assert pool.sorted[i] == sorted(r for m in members for r in m._residuals[i]), (commodity, i)
        assert all(s.horizons.pool is pool for (c, _), s in stack._series.items() if c == commodity)


def test_sparse_series_share_their_commodity_pool_and_daily_ones_stay_out():
    stack = DetectorStack()
    feed(stack, markets=6, months=40)
    feed(stack, markets=4, months=40, commodity="beras-premium")
    feed(stack, markets=3, months=60, commodity="cabai-rawit-merah", step=DAY)  # daily: not pooled
    pool_is_the_union_of_sparse_windows(stack)
    assert len(stack._pools["bawang-merah"].sorted[2]) == sum(
        len(stack.series_state(("bawang-merah", f"prov-{m}")).horizons._residuals[2]) for m in range(6))
    assert all(not ordered for ordered in stack._pools["cabai-rawit-merah"].sorted)
    # 14 months ahead: 40 months give each series 26 residuals of its own; the pool has them all,
    # so its intervals exist from the first warm month on, where a series alone has too few.
    own = stack.series_state(("bawang-merah", "prov-0")).horizons
    assert len(own._residuals[3]) < MIN_RESIDUALS and stack.horizon_forecast(("bawang-merah", "prov-0"), 28) is not None


def test_a_series_that_becomes_sparse_joins_the_pool_and_leaves_it_when_reported_daily_again():
    stack = DetectorStack()
    model_of = lambda: stack.series_state(("bawang-merah", "prov-0")).horizons  # noqa: E731
    feed(stack, markets=2, months=30, step=DAY)
    assert not model_of().sparse()
    feed(stack, markets=2, months=130, start=30, step=30 * DAY, since=30 * DAY)
    assert model_of().sparse()
    pool_is_the_union_of_sparse_windows(stack)
    feed(stack, markets=2, months=400, start=130, step=DAY, since=3200 * DAY)
    assert not model_of().sparse() and all(not ordered for ordered in stack._pools["bawang-merah"].sorted)
    pool_is_the_union_of_sparse_windows(stack)


def test_the_pool_is_rebuilt_from_restored_series_and_forecasts_go_on_identically():
    stack = DetectorStack()
    feed(stack, markets=5, months=45)
    # Series by series, as the engine restores a checkpoint; and the whole stack, as tools do.
    pieced = DetectorStack()
    for key in stack.series_keys():
        pieced.set_series_state(key, decode_state(encode_state(stack.series_state(key))))
    for key in stack.series_keys():  # restoring a series twice must not count its window twice
        pieced.set_series_state(key, decode_state(encode_state(stack.series_state(key))))
    pieced.set_panel_state("bawang-merah", decode_state(encode_state(stack.panel_state("bawang-merah"))))
    pieced.set_surge_state("bawang-merah", decode_state(encode_state(stack.surge_state("bawang-merah"))))
    whole = decode_state(encode_state(stack))
    for restored in (pieced, whole):
        pool_is_the_union_of_sparse_windows(restored)
        assert restored._pools["bawang-merah"].sorted == stack._pools["bawang-merah"].sorted
    for other in (stack, pieced, whole):
        feed(other, markets=5, months=60, start=45, since=45 * 30 * DAY)
    for key in stack.series_keys():
        expected = [stack.horizon_forecast(key, h) for h in HORIZONS]
        assert [pieced.horizon_forecast(key, h) for h in HORIZONS] == expected
        assert [whole.horizon_forecast(key, h) for h in HORIZONS] == expected


def test_a_checkpoint_alone_serves_the_interval_the_engine_issued():
    # The API reads one series' checkpoint, without its commodity's pool: it serves the bounds
    # stored with the last forecast issued, those the stack computed from the pool.
    stack = DetectorStack()
    feed(stack, markets=6, months=50)
    key = ("bawang-merah", "prov-3")
    alone = decode_state(encode_state(stack.series_state(key))).horizons
    assert alone.pool is None and alone.sparse()
    for h in HORIZONS:
        assert alone.predict(h) == stack.horizon_forecast(key, h) is not None


def test_daily_series_never_touch_a_pool():
    model = HorizonForecast()
    for day, price in enumerate(random_walk(300, 0.02, 1)):
        model.learn_one({"price": price, "ts": day * DAY})
    assert not model.sparse() and model.reported_daily() and model.pool is None


# -- the figures of README.md and docs/detection.md ----------------------------------------------


def run_monthly(gamma: float | None = None, pooled: bool = True) -> dict:
    """The monthly backtest's JSON; ``gamma`` replaces the pool's ACI step, ``pooled=False``
    gives each series its own residuals and the daily step, as before the pool."""
    import contextlib
    import io

    from detectors import forecast_horizons

    out = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(out):
        if gamma is not None or not pooled:
            patch.setattr(forecast_horizons, "POOL_GAMMA", 0.02 if gamma is None else gamma)
        if not pooled:
            patch.setattr(DetectorStack, "_join_pool", lambda self, commodity, series: None)
        assert backtest.main([str(MONTHLY), "--jobs", "1", "--json", "--split", "2023-01-01"]) == 0
    return json.loads(out.getvalue())


@pytest.fixture(scope="module")
def monthly() -> dict:
    return run_monthly()


# (horizon, forecasts with an interval, 80% coverage, 95% coverage), as docs/detection.md gives them.
CHOOSE_2018_2022 = [("h1", 3750, 0.809, 0.956), ("h7", 3144, 0.795, 0.942), ("h14", 2431, 0.811, 0.936),
                    ("h28", 84, 0.536, 0.750)]
HELD_OUT_2023 = [("h1", 606, 0.822, 0.954), ("h7", 606, 0.630, 0.794), ("h14", 606, 0.700, 0.785),
                 ("h28", 595, 0.739, 0.859)]


def test_monthly_panel_coverage_per_horizon_as_documented(monthly):
    split = monthly["forecast_split"]
    for period, rows in (("before", CHOOSE_2018_2022), ("after", HELD_OUT_2023)):
        for h, n, c80, c95 in rows:
            figures = split[period][h]
            assert figures["interval_ticks"] == n, (period, h)
            assert figures["coverage80"] == pytest.approx(c80, abs=0.0005), (period, h)
            assert figures["coverage95"] == pytest.approx(c95, abs=0.0005), (period, h)
            # The point is the last price at every horizon on monthly ticks.
            assert figures["mase"] == pytest.approx(1.0) and figures["point"] == "last price"
    # Chosen on 2018-2022: within 3 points of nominal there at 1, 7 and 14 months.
    for h, _, c80, c95 in CHOOSE_2018_2022[:3]:
        assert abs(c80 - 0.80) <= 0.03 and abs(c95 - 0.95) <= 0.03, h


def test_monthly_breach_odds_as_documented(monthly):
    split = monthly["forecast_split"]
    for period, event, n, brier, climatology in (
            ("before", "above_reference", 1026, 0.116, 0.160), ("before", "rise_10", 1026, 0.186, 0.227),
            ("after", "above_reference", 606, 0.104, 0.148), ("after", "rise_10", 606, 0.341, 0.250)):
        figures = split[period]["breach"][event]
        assert figures["n"] == n
        assert figures["brier"] == pytest.approx(brier, abs=0.0005)
        assert figures["brier_climatology"] == pytest.approx(climatology, abs=0.0005)


def test_without_the_pool_the_monthly_figures_are_those_of_before():
    split = run_monthly(pooled=False)["forecast_split"]
    for period, rows in (("before", [("h1", 3652, 0.816, 0.939), ("h7", 2440, 0.776, 0.891),
                                     ("h14", 1026, 0.786, 0.881), ("h28", 0, None, None)]),
                         ("after", [("h1", 606, 0.804, 0.952), ("h7", 606, 0.592, 0.762),
                                    ("h14", 606, 0.691, 0.746), ("h28", 0, None, None)])):
        for h, n, c80, c95 in rows:
            figures = split[period][h]
            assert figures["interval_ticks"] == n, (period, h)
            if n:
                assert figures["coverage80"] == pytest.approx(c80, abs=0.0005), (period, h)
                assert figures["coverage95"] == pytest.approx(c95, abs=0.0005), (period, h)


def test_the_pool_step_is_the_one_closest_to_nominal_on_2018_2022():
    distance = {}
    for gamma in (0.02, 0.05, 0.1, 0.15, 0.2):
        before = run_monthly(gamma)["forecast_split"]["before"]
        distance[gamma] = round(sum(100 * abs(before[h]["coverage80"] - 0.80) + 100 * abs(before[h]["coverage95"] - 0.95)
                                    for h in ("h1", "h7", "h14")), 1)
    assert distance == {0.02: 11.3, 0.05: 10.1, 0.1: 6.5, 0.15: 5.3, 0.2: 6.3}
    from detectors.forecast_horizons import POOL_GAMMA
    assert min(distance, key=distance.__getitem__) == POOL_GAMMA


def test_the_held_out_half_year_misses_because_of_rice():
    # January-June 2023: premium rice rose past anything in its own or its commodity's history;
    # shallots and chicken were covered. Per commodity, through the stack as the backtest runs it.
    from detectors.forecast_error import ForecastTracker

    catalog = load_catalog()
    stack = DetectorStack()
    split = 1672506000.0  # 2023-01-01 00:00 WIB
    trackers: dict = {}
    for day in reporting_days(read_paths([MONTHLY], catalog)):
        verdicts = stack.process_batch(day)
        for tick, verdict in zip(day, verdicts):
            key = (tick["commodity"], tick["market"])
            for h in (7, 14, 28):
                tracker = trackers.setdefault((tick["commodity"], h), ForecastTracker(horizon=h, season=0.0, since=split))
                tracker.observe(key, tick["ts"], tick["price"], stack.horizon_forecast(key, h), not verdict["quarantined"])
    coverage = {key: round(100 * t.summary()["coverage95"], 1) for key, t in trackers.items()}
    assert coverage == {("beras-premium", 7): 41.4, ("beras-premium", 14): 34.3, ("beras-premium", 28): 59.4,
                        ("bawang-merah", 7): 98.5, ("bawang-merah", 14): 100.0, ("bawang-merah", 28): 99.5,
                        ("daging-ayam-ras", 7): 97.1, ("daging-ayam-ras", 14): 100.0, ("daging-ayam-ras", 28): 96.6}
