"""References an analyst compares a price with (detectors/references.py) and their endpoint,
GET /api/v1/references, through a real server fed the demo data."""
from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from detectors.references import (
    CRISIS_DAYS,
    MIN_DAYS,
    Ceiling,
    aligned_day_a_year_earlier,
    combine,
    daily_prices,
    references_of,
    series_references,
)
from detectors.season import WIB
from tests.demo_feed import SHALLOT, WEST_JAVA, feed_demo
from tests.system import wait_for


def ts(day: date, hour: int = 10) -> float:
    return datetime(day.year, day.month, day.day, hour, tzinfo=WIB).timestamp()


def days(first: date, count: int, price, step: int = 1) -> list[tuple[float, float]]:
    return [(ts(first + timedelta(days=i * step)), price(i) if callable(price) else price) for i in range(count)]


START = date(2024, 1, 1)


def test_a_steady_price_is_at_its_three_month_average():
    result = series_references(days(START, 100, 30000.0), None)
    assert result["references"]["avg3m"]["value"] == pytest.approx(30000.0)
    assert result["deviation"]["avg3m"] == pytest.approx(0.0)
    assert result["references"]["ceiling"] is None and result["deviation"]["ceiling"] is None


def test_the_average_covers_the_91_days_before_the_price_and_not_the_price_itself():
    # 100 days at 20.000 then 91 days at 30.000 then today at 60.000: only the 30.000 days count.
    points = days(START, 100, 20000.0) + days(START + timedelta(days=100), 91, 30000.0)
    points.append((ts(START + timedelta(days=191)), 60000.0))
    result = series_references(points, None)
    assert result["references"]["avg3m"]["value"] == pytest.approx(30000.0)
    assert result["references"]["avg3m"]["days"] == 91
    assert result["deviation"]["avg3m"] == pytest.approx(1.0)


def test_a_day_with_many_ticks_counts_once():
    # A day of 24 hourly ticks at 10.000 and 29 days at 20.000: the average is by day.
    points = [(ts(START) + hour * 3600.0 - 10 * 3600.0, 10000.0) for hour in range(24)]
    points += days(START + timedelta(days=1), 29, 20000.0)
    points.append((ts(START + timedelta(days=30)), 20000.0))
    assert len(daily_prices(points)) == 31
    average = series_references(points, None)["references"]["avg3m"]["value"]
    assert average == pytest.approx((10000.0 + 29 * 20000.0) / 30)


def test_the_price_a_week_earlier_is_the_newest_report_7_to_13_days_before():
    points = days(START, 20, lambda i: 1000.0 * (i + 1))
    week = series_references(points, None)["references"]["week"]
    assert week == {"value": 13000.0, "date": (START + timedelta(days=12)).isoformat()}
    gap = days(START, 1, 1000.0) + days(START + timedelta(days=14), 1, 2000.0)
    assert series_references(gap, None)["references"]["week"] is None


def test_too_short_a_history_has_no_three_month_average():
    short = series_references(days(START, MIN_DAYS, 30000.0), None)  # MIN_DAYS - 1 before the last
    assert short["references"]["avg3m"] is None and short["deviation"]["avg3m"] is None
    enough = series_references(days(START, MIN_DAYS + 1, 30000.0), None)
    assert enough["references"]["avg3m"]["days"] == MIN_DAYS


def test_the_year_earlier_level_is_aligned_on_lebaran():
    # Lebaran 2023 was 22 April, 2024 on 10 April: ten days before each are 12 April 2023 and
    # 31 March 2024, not the same Gregorian date.
    assert aligned_day_a_year_earlier(date(2024, 3, 31)) == date(2023, 4, 12)
    points = days(date(2023, 4, 1), 40, lambda i: 50000.0 if i == 11 else 40000.0)
    points.append((ts(date(2024, 3, 31)), 70000.0))
    result = series_references(points, None)
    year = result["references"]["year"]
    assert year["date"] == "2023-04-12"
    assert year["days"] == 7 and year["value"] == pytest.approx((6 * 40000.0 + 50000.0) / 7)
    assert result["deviation"]["year"] == pytest.approx(70000.0 / year["value"] - 1)


def test_the_crisis_criterion_needs_fifteen_days_above_its_reference():
    hap = Ceiling(40000.0, "HAP")
    # 15 days at +10% over the HAP: the 7.5% level is met, the 12.5% one is not.
    met = series_references(days(START, CRISIS_DAYS, 44000.0), hap)["crisis"]["ceiling"]
    assert [(level["threshold"], level["days"], level["met"]) for level in met] == [
        (0.075, 15, True), (0.125, 0, False)]
    # A day below the threshold in the middle restarts the count.
    broken = days(START, CRISIS_DAYS, lambda i: 40000.0 if i == 5 else 44000.0)
    level = series_references(broken, hap)["crisis"]["ceiling"][0]
    assert level["days"] == 9 and level["since"] == (START + timedelta(days=6)).isoformat() and not level["met"]
    # Weekends without a report do not break a run: 15 calendar days, 11 of them weekdays.
    weekdays = [(t, p) for t, p in days(START, 15, 44000.0) if datetime.fromtimestamp(t, WIB).weekday() < 5]
    assert series_references(weekdays, hap)["crisis"]["ceiling"][0]["met"]


def test_the_crisis_criterion_against_the_three_month_average():
    # 60 days at 30.000, then 15 days at 36.000: the average rises with them, yet stays 15% below.
    points = days(START, 60, 30000.0) + days(START + timedelta(days=60), 15, 36000.0)
    levels = series_references(points, None)["crisis"]["avg3m"]
    assert [level["met"] for level in levels] == [True, True]
    assert levels[0]["since"] == (START + timedelta(days=60)).isoformat()


def test_a_province_is_the_median_of_its_markets_each_day():
    a = daily_prices(days(START, 3, 10000.0))
    b = daily_prices(days(START, 3, 20000.0))
    c = daily_prices(days(START, 2, 90000.0))
    assert [price for _, price in combine([a, b, c])] == [20000.0, 20000.0, 15000.0]
    assert references_of([], None)["price"] is None


# -- the endpoint, on a real server ------------------------------------------------------------

def test_the_endpoint_shows_the_lebaran_shallot_surge_against_the_three_month_average(system):
    sent = feed_demo(system)
    system.wait_processed(sent, timeout=120)
    wait_for(lambda: len(system.http.get("/api/v1/series", params={"commodity": SHALLOT}).json()["series"]) == 18,
             20, "the 18 markets' latest prices")
    response = system.http.get("/api/v1/references", params={"commodity": SHALLOT, "province": WEST_JAVA})
    assert response.status_code == 200, response.text
    body = response.json()
    west_java = next(p for p in body["provinces"] if p["province"] == WEST_JAVA)
    assert west_java["day"] == "2024-04-17" and west_java["markets"] == 18
    assert 0.7 <= west_java["deviation"]["avg3m"] <= 0.9, west_java  # about +80%
    assert west_java["references"]["ceiling"] == {"value": 41500.0, "kind": "HAP"}
    assert west_java["references"]["year"] is None  # the demo data start in September 2023
    assert [level["met"] for level in west_java["crisis"]["avg3m"]] == [True, True]
    assert len(body["series"]) == 18
    agung = next(s for s in body["series"] if s["market"] == "pasar-agung")
    assert agung["latest_price"] == 80000.0 and agung["deviation"]["avg3m"] > 0.5
    assert body["national"]["markets"] == 18


def test_the_endpoint_names_the_bad_field(system):
    missing = system.http.get("/api/v1/references")
    assert missing.status_code == 422 and missing.json()["errors"][0]["field"] == "commodity"
    unknown = system.http.get("/api/v1/references", params={"commodity": SHALLOT, "province": "99"})
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "province"
    empty = system.http.get("/api/v1/references", params={"commodity": SHALLOT})
    assert empty.status_code == 200 and empty.json()["series"] == []
