"""The odds panel of the dashboard (static/js/odds.js), in headless Chromium against a real
system: it shows the odds ``GET /api/v1/forecast`` returns for the selected series as whole
percentages, marks the horizons where the forecast is only the last price, says "not enough
history yet" rather than 0% for a young series, warns that odds of a series not reported daily
are less reliable, and follows the series and the forecast's refreshed reads."""
from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import expect

from tests.system import System
from tests.test_dashboard_browser import dashboard, playwright  # noqa: F401 - fixtures
from tests.test_pipeline import DAY, MARKETS, START, day_ticks, feed

CHILLI = "cabai-rawit-merah"
SHALLOT = "bawang-merah"
EGGS = "telur-ayam-ras"
WEST_JAVA = "32"
WARM_DAYS = 40  # enough residuals for the 1, 7 and 14-day horizons (and the odds), not for 28
WEEKS = 40
NOT_YET = "belum cukup riwayat"


def chance(p: float) -> str:
    """A probability as the panel writes it (static/js/odds.js chanceText)."""
    percent = round(p * 100 + 1e-9)  # JavaScript's Math.round: halves go up
    return "<1%" if percent < 1 else ">99%" if percent > 99 else f"{percent}%"


def api_forecast(system: System, commodity: str, market: str) -> dict:
    response = httpx.get(f"{system.url}/api/v1/forecast", params={"commodity": commodity, "market": market, "horizon": 28})
    assert response.status_code == 200, response.text
    return response.json()


def weekly_ticks() -> list[dict]:
    """Shallots at one market, reported once a week: a series the odds were not calibrated on."""
    return [{"commodity": SHALLOT, "market": "pasar-kosambi", "province": WEST_JAVA,
             "price": 30000 + 700 * (week % 4), "ts": START + week * 7 * DAY} for week in range(WEEKS)]


def expect_odds_of(board, body: dict) -> None:
    odds = body["odds"]
    expect(board.by_testid("odds-above")).to_contain_text(chance(odds["p_above_reference"]))
    expect(board.by_testid("odds-rise")).to_contain_text(chance(odds["p_rise_10"]))
    for testid, p in (("odds-above", odds["p_above_reference"]), ("odds-rise", odds["p_rise_10"])):
        assert float(board.by_testid(testid).get_attribute("data-p")) == pytest.approx(p, abs=1e-12)


def test_the_odds_panel_shows_the_apis_odds_and_where_the_forecast_is_the_last_price(system, dashboard):
    sent = feed(system, range(WARM_DAYS))
    for ticks in (weekly_ticks(), day_ticks(0, commodity=EGGS), day_ticks(1, commodity=EGGS)):
        assert system.post(ticks).status_code == 202
        sent += len(ticks)
    system.wait_processed(sent, timeout=60)

    # A chilli market reported daily: both odds as the API gives them, the HAP named in rupiah.
    body = api_forecast(system, CHILLI, "pasar-cisalak")
    odds = body["odds"]
    assert odds["reported_daily"] is True and {"p_above_reference", "p_rise_10"} <= odds.keys(), odds
    dashboard.open(CHILLI, WEST_JAVA, "pasar-cisalak")
    panel = dashboard.by_testid("odds")
    expect(panel).to_have_attribute("data-state", "warm")
    expect(panel).to_contain_text("Peluang dalam 14 hari laporan")
    expect(dashboard.by_testid("odds-above")).to_contain_text("Melewati HAP Rp 57.000")
    expect(dashboard.by_testid("odds-rise")).to_contain_text("Naik 10% atau lebih")
    expect_odds_of(dashboard, body)
    expect(dashboard.by_testid("odds-caveat")).to_have_count(0)

    # The forecast per horizon: the 1-day point is the last price, and says so (text, not colour).
    sources = {f["h"]: f["point_source"] for f in body["forecasts"]}
    assert sources == {1: "last price", 7: "model", 14: "model"}, sources
    source = dashboard.page.locator("[data-testid=forecast-source]")
    expect(source.and_(dashboard.page.locator("[data-h='1']"))).to_have_text("harga terakhir*")
    expect(source.and_(dashboard.page.locator("[data-h='1']"))).to_have_attribute("data-source", "last price")
    expect(source.and_(dashboard.page.locator("[data-h='7']"))).to_have_text("model")
    expect(dashboard.by_testid("odds-last-note")).to_contain_text("tidak ada model yang mengalahkan harga terakhir")
    point = dashboard.page.locator("[data-testid=forecast-point]")
    expect(point.and_(dashboard.page.locator("[data-h='1']"))).to_have_text("Rp 44.500")  # day 39's price
    expect(point.and_(dashboard.page.locator("[data-h='28']"))).to_have_text("riwayat kurang")

    # Prices move: the forecast is read again and the panel follows it (a surge at every market
    # makes passing the HAP far likelier than before).
    system.wait_processed(sent + feed_surge(system), timeout=30)
    surged = api_forecast(system, CHILLI, "pasar-cisalak")
    assert chance(surged["odds"]["p_above_reference"]) != chance(odds["p_above_reference"])
    expect_odds_of(dashboard, surged)

    # A series reported weekly: its odds, and the caveat that they were calibrated on daily reports.
    weekly = api_forecast(system, SHALLOT, "pasar-kosambi")
    assert weekly["odds"]["reported_daily"] is False and "p_rise_10" in weekly["odds"], weekly["odds"]
    dashboard.open(SHALLOT, WEST_JAVA, "pasar-kosambi")
    expect(dashboard.chart).to_have_attribute("data-series", f"{SHALLOT}/pasar-kosambi")
    expect(dashboard.by_testid("odds-caveat")).to_contain_text("Dikalibrasi pada laporan harian")
    expect_odds_of(dashboard, weekly)

    # Two days of eggs: no odds yet, and the panel says so rather than 0%.
    assert not {"p_above_reference", "p_rise_10"} & api_forecast(system, EGGS, "pasar-cisalak")["odds"].keys()
    dashboard.open(EGGS, WEST_JAVA, "pasar-cisalak")
    expect(dashboard.chart).to_have_attribute("data-series", f"{EGGS}/pasar-cisalak")
    expect(panel).to_have_attribute("data-state", "cold")
    expect(dashboard.by_testid("odds-rise")).to_contain_text(NOT_YET)
    expect(dashboard.by_testid("odds-rise")).to_have_attribute("data-p", "")
    expect(dashboard.by_testid("odds-caveat")).to_have_count(0)
    expect(panel).not_to_contain_text(re.compile(r"\b0%"))

    # In English too.
    dashboard.by_testid("lang-toggle").click()
    expect(panel).to_contain_text("Odds within 14 reporting days")
    expect(dashboard.by_testid("odds-rise")).to_contain_text("not enough history yet")
    assert dashboard.errors == []


def feed_surge(system: System) -> int:
    """A day at 15% above the usual chilli price at every market; the number of ticks sent."""
    ticks = day_ticks(WARM_DAYS, {market: 45000 * 1.15 for market in MARKETS})
    assert system.post(ticks).status_code == 202
    return len(ticks)
