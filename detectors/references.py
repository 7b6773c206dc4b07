"""Reference levels a price analyst compares a price with, and the deviation from each.

The detectors' "usual level" is adaptive: it answers "is today's tick odd?" and catches up with
a sustained rise within days, so a four-week Lebaran surge reads as normal against it. An
analyst (TPID, Bank Indonesia, Badan Pangan) asks another question, "how high is the price
against a level that means something?", with three customary references:

* ``avg3m``: the average of the daily prices over the 91 days before the price's day (the day
  itself excluded, so a price is never compared with itself). Each reporting day counts once,
  whatever number of ticks it has. Known once the window holds ``MIN_DAYS`` reporting days.
* ``year``: the same point of the season a year earlier, aligned on Idul Fitri as the ALPS
  and IPA indicators align their seasons (detectors/lebaran.py): a day ten days before Lebaran
  2024 is compared with ten days before Lebaran 2023, the average over the week around it.
* ``ceiling``: the commodity's HAP or HET (catalog ``ceiling`` / ``ceiling_kind``).

And ``week``, the price a week earlier (the newest reporting day 7 to 13 days before), for the
week-on-week movers of the dashboard's summary.

Badan Pangan's draft food-price crisis criterion (a price 7.5% to 12.5% above its reference,
HAP/HET or the 3-month average, for 15 days) is evaluated here against ``avg3m`` and
``ceiling`` for each of the two thresholds (:func:`crisis`): the rule language reads the HAP/HET
(``ceiling.score``) but has no 3-month average, so rules/crisis.yaml ships the HAP/HET half and
this module serves both halves to the dashboard.

Days are local days in WIB (detectors/season.py); ``points`` are ``(ts, price)`` pairs.

The demo data's Lebaran 2024 shallot surge (server/demo_data: 18 West Java markets, Rp 40.000
to Rp 80.000 in four weeks) is, on 17 April 2024, a surge of about +80% in the province's daily
median price against its 3-month average, and the criterion against the average is met:

>>> import csv
>>> from datetime import datetime
>>> from pathlib import Path
>>> from detectors.season import WIB
>>> demo = Path(__file__).resolve().parents[1] / "server" / "demo_data" / "pihps-jabar-2024.csv"
>>> markets = {}
>>> with demo.open(encoding="utf-8") as handle:
...     for row in csv.DictReader(handle):
...         if row["commodity"] == "bawang-merah" and row["price"] and row["date"] <= "2024-04-17":
...             ts = datetime.fromisoformat(row["date"]).replace(hour=10, tzinfo=WIB).timestamp()
...             markets.setdefault(row["market"], []).append((ts, float(row["price"])))
>>> west_java = references_of(combine(daily_prices(p) for p in markets.values()), Ceiling(41500.0, "HAP"))
>>> west_java["price"], round(west_java["references"]["avg3m"]["value"], -2)
(61000.0, 33800.0)
>>> average, hap = west_java["deviation"]["avg3m"], west_java["deviation"]["ceiling"]
>>> f"{average:+.0%} against the 3-month average, {hap:+.0%} against the HAP"
'+80% against the 3-month average, +47% against the HAP'
>>> west_java["references"]["year"] is None  # the data start after Lebaran 2023
True
>>> [(level["threshold"], level["since"], level["met"]) for level in west_java["crisis"]["avg3m"]]
[(0.075, '2024-04-01', True), (0.125, '2024-04-01', True)]
"""
from __future__ import annotations

import bisect
import statistics
from dataclasses import dataclass
from datetime import date, timedelta
from collections.abc import Iterable

from detectors.lebaran import days_from_idul_fitri, idul_fitri_dates
from detectors.season import local_day

WINDOW_DAYS = 91  # "3 months"
MIN_DAYS = 20  # reporting days the window must hold (PIHPS reports on weekdays: ~65 in 91 days)
YEAR_HALF_WIDTH = 3  # days either side of the aligned day a year earlier
CRISIS_THRESHOLDS = (0.075, 0.125)  # Badan Pangan's draft criterion: 7.5% .. 12.5% above
CRISIS_DAYS = 15
KINDS = ("avg3m", "year", "ceiling", "week")

Daily = list[tuple[date, float]]


@dataclass(frozen=True)
class Ceiling:
    value: float
    kind: str  # HET or HAP


def daily_prices(points: Iterable[tuple[float, float]]) -> Daily:
    """The mean price of each local day with a price, oldest first."""
    sums: dict[date, list[float]] = {}
    for ts, price in points:
        if price > 0:
            entry = sums.setdefault(local_day(ts), [0.0, 0])
            entry[0] += price
            entry[1] += 1
    return [(day, total / count) for day, (total, count) in sorted(sums.items())]


def combine(series: Iterable[Daily]) -> Daily:
    """One daily series from several (the markets of a province): each day's median price."""
    by_day: dict[date, list[float]] = {}
    for daily in series:
        for day, price in daily:
            by_day.setdefault(day, []).append(price)
    return [(day, statistics.median(prices)) for day, prices in sorted(by_day.items())]


class _Window:
    """Averages of a daily series over day ranges, by prefix sums (O(log n) per query)."""

    def __init__(self, daily: Daily):
        self.days = [day for day, _ in daily]
        self.sums = [0.0]
        for _, price in daily:
            self.sums.append(self.sums[-1] + price)

    def between(self, first: date, last: date) -> tuple[float, int] | None:
        """(mean, number of days) over days first..last inclusive, or None when there are none."""
        lo = bisect.bisect_left(self.days, first)
        hi = bisect.bisect_right(self.days, last)
        if hi <= lo:
            return None
        return (self.sums[hi] - self.sums[lo]) / (hi - lo), hi - lo


def three_month_average(window: _Window, on: date) -> dict | None:
    first, last = on - timedelta(days=WINDOW_DAYS), on - timedelta(days=1)
    found = window.between(first, last)
    if found is None or found[1] < MIN_DAYS:
        return None
    return {"value": found[0], "days": found[1], "from": first.isoformat(), "to": last.isoformat()}


def aligned_day_a_year_earlier(on: date) -> date:
    """The day at the same distance from Idul Fitri, one Eid cycle earlier.

    >>> aligned_day_a_year_earlier(date(2024, 3, 31))  # 10 days before Lebaran 2024 (10 Apr)
    datetime.date(2023, 4, 12)
    >>> aligned_day_a_year_earlier(date(2024, 5, 1))  # 21 days after it; Lebaran 2023 was 22 Apr
    datetime.date(2023, 5, 13)
    """
    offset = days_from_idul_fitri(on)
    feast = on - timedelta(days=offset)
    earlier = max(d for d in idul_fitri_dates(feast.year - 1) + idul_fitri_dates(feast.year) if d < feast)
    return earlier + timedelta(days=offset)


def year_earlier(window: _Window, on: date) -> dict | None:
    aligned = aligned_day_a_year_earlier(on)
    found = window.between(aligned - timedelta(days=YEAR_HALF_WIDTH), aligned + timedelta(days=YEAR_HALF_WIDTH))
    if found is None:
        return None
    return {"value": found[0], "days": found[1], "date": aligned.isoformat()}


def week_earlier(window: _Window, on: date) -> dict | None:
    i = bisect.bisect_right(window.days, on - timedelta(days=7)) - 1
    if i < 0 or window.days[i] < on - timedelta(days=13):
        return None
    return {"value": window.sums[i + 1] - window.sums[i], "date": window.days[i].isoformat()}


def crisis(daily: Daily, window: _Window, ceiling: Ceiling | None) -> dict:
    """Badan Pangan's draft criterion per reference and threshold: since when the daily price
    has stayed at least ``threshold`` above the reference, and whether that is ``CRISIS_DAYS``.

    A run is broken by a reporting day below the threshold (or without a reference); days
    without a report do not break it.
    """
    result: dict = {"days_required": CRISIS_DAYS}
    for kind in ("avg3m", "ceiling"):
        if kind == "ceiling" and ceiling is None:
            result[kind] = None
            continue
        levels = []
        for threshold in CRISIS_THRESHOLDS:
            since = None
            for day, price in reversed(daily):
                if kind == "avg3m":
                    reference = three_month_average(window, day)
                    value = reference["value"] if reference else None
                else:
                    value = ceiling.value if ceiling is not None else None
                if value is None or price / value - 1.0 < threshold:
                    break
                since = day
                if (daily[-1][0] - day).days + 1 > 4 * CRISIS_DAYS:
                    break  # long enough (``days`` counts up to 61): no need to walk the whole history
            days = (daily[-1][0] - since).days + 1 if since else 0
            levels.append({"threshold": threshold, "since": since.isoformat() if since else None,
                           "days": days, "met": days >= CRISIS_DAYS})
        result[kind] = levels
    return result


def references_of(daily: Daily, ceiling: Ceiling | None) -> dict:
    """Every reference of a daily series' latest day, the deviations and the crisis criterion."""
    if not daily:
        return {"price": None, "day": None, "references": dict.fromkeys(KINDS),
                "deviation": dict.fromkeys(KINDS), "crisis": crisis(daily, _Window(daily), ceiling)}
    window = _Window(daily)
    day, price = daily[-1]
    references: dict[str, dict | None] = {
        "avg3m": three_month_average(window, day),
        "year": year_earlier(window, day),
        "ceiling": {"value": ceiling.value, "kind": ceiling.kind} if ceiling else None,
        "week": week_earlier(window, day),
    }
    deviation = {kind: (price / ref["value"] - 1.0 if ref else None) for kind, ref in references.items()}
    return {"price": price, "day": day.isoformat(), "references": references, "deviation": deviation,
            "crisis": crisis(daily, window, ceiling)}


def series_references(points: Iterable[tuple[float, float]], ceiling: Ceiling | None) -> dict:
    """:func:`references_of` the daily prices of one series' ``(ts, price)`` points."""
    return references_of(daily_prices(points), ceiling)
