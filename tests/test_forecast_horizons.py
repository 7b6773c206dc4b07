"""Forecasts 1-28 ticks ahead (detectors/forecast_horizons.py): accuracy against the last price,
conformal interval coverage, breach odds in verdicts, rules, the backtest report and the API.

Synthetic series have a known distribution, so coverage is checked against its nominal level;
the real ones are the PIHPS chilli fixtures (tests/fixtures/pihps-cabai-5-markets-2020-2022.csv:
five West Java markets, 2020-2022).
"""
from __future__ import annotations

import json
import math
import pickle
import random
from pathlib import Path

import pytest
import redis
from redis.asyncio import Redis as AsyncRedis
from starlette.applications import Starlette
from starlette.testclient import TestClient

from detectors.forecast_error import ForecastTracker
from detectors.forecast_horizons import HORIZONS, HorizonForecast
from detectors.recorded import read_paths
from detectors.stack import DetectorStack
from detectors.state import decode_state, encode_state
from pipeline import backtest
from pipeline.replay import reporting_days
from base.catalog import load_catalog
from rules.expressions import ExpressionError, compile_condition
from server import forecast_api
from base import keys
from server.access import Gate
from tests import partitions
from tests.redis_server import start_redis

FIXTURES = Path(__file__).parent / "fixtures"
FIVE_MARKETS = FIXTURES / "pihps-cabai-5-markets-2020-2022.csv"
SERIES = ("cabai-rawit-merah", "pasar-agung")
DAY = 86400.0


def run_series(prices: list[float], model: HorizonForecast | None = None,
               consensus: list[float] | None = None) -> dict[int, ForecastTracker]:
    """Feed ``prices`` to a forecaster; score each horizon's forecasts as the backtest does."""
    model = model or HorizonForecast()
    trackers = {h: ForecastTracker(horizon=h, season=0.0) for h in HORIZONS}
    for day, price in enumerate(prices):
        x = {"price": price, "ts": day * DAY}
        if consensus is not None:
            x["consensus"] = consensus[day]
        model.learn_one(x)
        for h, tracker in trackers.items():
            tracker.observe(("c", "m"), day * DAY, price, model.predict(h))
    return trackers


def random_walk(n: int, sigma: float, seed: int) -> list[float]:
    rng = random.Random(seed)
    log_price, prices = math.log(50000.0), []
    for _ in range(n):
        log_price += rng.gauss(0.0, sigma)
        prices.append(math.exp(log_price))
    return prices


def out_of_line(n: int, seed: int) -> tuple[list[float], list[float]]:
    """A market whose price strays from the other markets' (a random walk) and drifts back:
    prices, and the log-price the other markets suggest (the stack's consensus feature)."""
    rng = random.Random(seed)
    market, stray, prices, consensus = math.log(50000.0), 0.0, [], []
    for _ in range(n):
        market += rng.gauss(0.0, 0.01)
        stray = 0.9 * stray + rng.gauss(0.0, 0.04)
        prices.append(math.exp(market + stray))
        consensus.append(market)
    return prices, consensus


def _swap(pair: tuple[list[float], list[float]]) -> tuple:
    prices, consensus = pair
    return prices, None, consensus


# -- the forecaster ------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2])
def test_conformal_intervals_cover_a_known_random_walk_at_their_nominal_level(seed):
    summaries = {h: t.summary() for h, t in run_series(random_walk(6000, 0.03, seed)).items()}
    for h, summary in summaries.items():
        assert summary["interval_ticks"] > 5000
        assert abs(summary["coverage80"] - 0.80) <= 0.03, (h, summary)
        assert abs(summary["coverage95"] - 0.95) <= 0.03, (h, summary)


def test_interval_widths_follow_the_spread_of_the_walk():
    model = HorizonForecast()
    run_series(random_walk(3000, 0.02, 3), model)
    one, month = model.predict(1), model.predict(28)
    # A random walk's h-step spread grows as sqrt(h): 95% of N(0, 0.02) is +-3.9%.
    assert 0.025 < math.log(one["hi95"] / one["point"]) < 0.06
    assert math.log(month["hi95"] / month["lo95"]) > 3.0 * math.log(one["hi95"] / one["lo95"])
    assert one["lo95"] < one["lo80"] < one["point"] < one["hi80"] < one["hi95"]


def test_the_model_beats_the_last_price_where_prices_revert_and_says_so_at_one_tick():
    trackers = run_series(*_swap(out_of_line(4000, 4)))
    for h in (7, 14, 28):
        assert trackers[h].summary()["mase"] < 0.95, h
    # At one tick the point is the last price: it was not beaten on 2019-2022.
    assert trackers[1].summary()["mase"] == 1.0
    model = HorizonForecast()
    prices, consensus = out_of_line(500, 5)
    run_series(prices, model, consensus)
    assert model.predict(1)["model"] is False and model.predict(1)["point"] == pytest.approx(model.last_price())
    assert model.predict(28)["model"] is True


def test_a_series_reported_monthly_gets_the_last_price_with_intervals_around_it():
    # The weights were fitted on reporting days; a monthly series is not what they know.
    model = HorizonForecast()
    for month, price in enumerate(random_walk(200, 0.05, 6)):
        model.learn_one({"price": price, "ts": month * 30 * DAY})
    for h in HORIZONS:
        made = model.predict(h)
        assert made["model"] is False and made["point"] == pytest.approx(model.last_price())
        assert made["lo95"] < made["point"] < made["hi95"]


def test_breach_probabilities_match_a_known_distribution():
    # 14 steps of N(0, 0.02): sd 0.0748 in log; P(rise >= 10%) = P(Z > log 1.1 / 0.0748) = 10%.
    model = HorizonForecast()
    prices = random_walk(8000, 0.02, 7)
    predicted, happened = [], []
    for day, price in enumerate(prices):
        model.learn_one({"price": price, "ts": day * DAY})
        p = model.probability_above(14, price * 1.1)
        if p is not None and day + 14 < len(prices):
            predicted.append(p)
            happened.append(prices[day + 14] >= price * 1.1)
    rate, mean_p = sum(happened) / len(happened), sum(predicted) / len(predicted)
    assert abs(rate - 0.10) < 0.03 and abs(mean_p - rate) < 0.03
    # The served odds are those, recalibrated on 2019-2022: still ordered, still probabilities.
    last = model.last_price()
    odds = model.odds(reference=last * 1.2)
    assert set(odds) == {"p_rise_10", "p_above_reference"}
    assert all(0.0 < p < 1.0 for p in odds.values())
    assert model.odds(reference=last * 0.8)["p_above_reference"] > 0.5 > odds["p_above_reference"]
    assert "p_above_reference" not in model.odds(reference=None)


def test_state_round_trips_through_the_checkpoint_codec_and_goes_on_identically():
    prices = random_walk(400, 0.03, 8)
    model = HorizonForecast()
    for day, price in enumerate(prices[:300]):
        model.learn_one({"price": price, "ts": day * DAY, "consensus": math.log(price) + 0.01})
    restored = decode_state(encode_state(model))
    for day, price in enumerate(prices[300:], start=300):
        for m in (model, restored):
            m.learn_one({"price": price, "ts": day * DAY})
    assert [restored.predict(h) for h in HORIZONS] == [model.predict(h) for h in HORIZONS]
    # Memory is bounded: windows, pending forecasts and the rest do not grow with history.
    size = len(encode_state(model))
    for day, price in enumerate(random_walk(3000, 0.03, 9), start=400):
        model.learn_one({"price": price, "ts": day * DAY})
    assert len(encode_state(model)) < 1.1 * size < 7000


# -- the stack, rules ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack() -> DetectorStack:
    from detectors.ceiling import references

    stack = DetectorStack(ceilings=references(load_catalog().commodities.values()))
    for day in reporting_days(read_paths([FIVE_MARKETS], load_catalog())):
        stack.process_batch(day)
    return stack


def test_verdicts_carry_breach_odds_that_rules_read_as_forecast_fields(stack):
    tick = {"commodity": SERIES[0], "market": SERIES[1], "province": "32", "price": 60000.0,
            "ts": 1672531200.0 + 2 * DAY}
    verdict = stack.process(tick)
    odds = verdict["odds"]
    assert set(odds) == {"p_above_reference", "p_rise_10"}
    assert all(0.0 <= p <= 1.0 for p in odds.values())
    names = {"forecast", "zscore"}
    likely = compile_condition(f"forecast.p_rise_10 >= {odds['p_rise_10'] - 0.01}", names)
    unlikely = compile_condition(f"forecast.p_above_reference > {odds['p_above_reference'] + 0.01}", names)
    assert likely.evaluate(verdict, {}) is True and unlikely.evaluate(verdict, {}) is False
    with pytest.raises(ExpressionError, match="p_rise_10"):
        compile_condition("forecast.p_rise_20 > 0.5", names)
    # Rules cross process boundaries (the backtest's workers) rebuilt from their source.
    rebuilt = pickle.loads(pickle.dumps(likely))
    assert rebuilt.evaluate(verdict, {}) is True


# -- the backtest --------------------------------------------------------------------------------


def test_backtest_reports_mase_and_coverage_per_horizon_and_breach_calibration(capsys):
    assert backtest.main([str(FIVE_MARKETS), "--jobs", "1", "--json", "--split", "2022-01-01"]) == 0
    result = json.loads(capsys.readouterr().out)
    forecast = result["forecast"]
    for name in ("h1", "h7", "h14", "h28"):
        figures = forecast[name]
        assert {"mape", "naive_mape", "mase", "coverage80", "coverage95", "ticks", "seasonal_naive_mape"} <= set(figures)
        assert figures["ticks"] > 3000
        assert 0.5 < figures["mase"] < 1.2
        assert 0.6 < figures["coverage80"] < 0.9 and 0.75 < figures["coverage95"] <= 1.0
    assert forecast["h1"]["mase"] == pytest.approx(1.0) and forecast["h1"]["point"] == "last price"
    assert forecast["h28"]["point"] == "model" and forecast["h28"]["mase"] < 1.0
    breach = forecast["breach"]
    for event in ("above_reference", "rise_10"):
        figures = breach[event]
        assert figures["n"] > 3000 and 0.0 < figures["base_rate"] < 1.0
        assert 0.0 < figures["brier"] < 0.5 and figures["brier_climatology"] > 0.0
        assert sum(row["n"] for row in figures["reliability"]) == figures["n"]
    # The chilli reference (HAP) is passed often enough that the odds must beat climatology.
    assert breach["above_reference"]["brier"] < breach["above_reference"]["brier_climatology"]
    split = result["forecast_split"]
    before, after = split["before"]["h7"]["ticks"], split["after"]["h7"]["ticks"]
    assert before > 2000 and after > 1000 and before + after == forecast["h7"]["ticks"]


# -- the API -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(tmp_path_factory, stack):
    server = start_redis(tmp_path_factory.mktemp("redis"))
    try:
        with redis.Redis.from_url(server.url) as sync:
            app_partitions = partitions.fix(sync, 3)
            sync.hset(partitions.of(sync, SERIES[0]).state_series, keys.series_key(*SERIES),
                      encode_state(stack.series_state(SERIES)))
        app = Starlette(routes=forecast_api.routes)
        app.state.redis = AsyncRedis.from_url(server.url)
        app.state.partitions = app_partitions
        app.state.catalog = load_catalog()
        app.state.gate = Gate(public_read=True, device_rate=10.0, device_burst=10.0,
                              ws_per_address=4, allowed_origins=())
        with TestClient(app) as test_client:
            yield test_client
    finally:
        server.stop()


def test_api_serves_calibrated_forecasts_and_breach_odds(client, stack):
    response = client.get("/api/v1/forecast", params={"commodity": SERIES[0], "market": SERIES[1]})
    assert response.status_code == 200
    body = response.json()
    forecasts = {f["h"]: f for f in body["forecasts"]}
    assert sorted(forecasts) == [1, 7, 14, 28]
    for h, f in forecasts.items():
        assert f["lo95"] <= f["lo80"] <= f["point"] <= f["hi80"] <= f["hi95"]
        assert f["point"] == pytest.approx(stack.horizon_forecast(SERIES, h)["point"])
        assert f["ts"] == pytest.approx(body["last_ts"] + h * body["step_seconds"])
        assert f["point_source"] in ("model", "last price") and f["beats_last_price"] == (f["point_source"] == "model")
    assert forecasts[1]["point_source"] == "last price" and forecasts[1]["point"] == pytest.approx(body["last_price"])
    odds = body["odds"]
    assert odds["horizon"] == 14 and odds["reference"] == 57000 and odds["reference_kind"] == "HAP"
    assert odds["reported_daily"] is True
    assert 0.0 <= odds["p_above_reference"] <= 1.0 and 0.0 <= odds["p_rise_10"] <= 1.0
    state = stack.series_state(SERIES).horizons
    assert odds["p_rise_10"] == pytest.approx(state.odds(57000.0)["p_rise_10"])
