"""Seasonal terms of a reporting day, shared by the price indicators (ALPS, IPA).

Indonesian food prices have two seasons: the Islamic one (Ramadan, Lebaran, Idul Adha: demand)
and the climate one (rainy season, harvests: supply). The first is counted in days from Idul
Fitri and Idul Adha (detectors/lebaran.py), the second by the Gregorian day of the year.

>>> from datetime import date
>>> terms = regression_terms(date(2024, 3, 31))
>>> len(terms) == TERMS, terms[4:6]  # in Ramadan, not near Idul Adha
(True, (1.0, 0.0))
>>> lunar_season(date(2024, 4, 10)), lunar_season(date(2024, 5, 12))
(0, 1)
>>> lunar_period(date(2025, 3, 31)) - lunar_period(date(2024, 4, 10))
12
>>> lunar_dekad(date(2024, 4, 20)) - lunar_dekad(date(2024, 4, 10)), lunar_dekad(date(2025, 3, 31)) % 36
(1, 0)
"""
from __future__ import annotations

import math
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache

from detectors.lebaran import (
    HIJRI_YEAR_DAYS,
    days_from_idul_adha,
    days_from_idul_fitri,
    days_since_idul_fitri,
)

WIB = timezone(timedelta(hours=7))
# Ramadan and the Lebaran week; the run-up to Idul Adha. Days relative to the feast.
RAMADAN = (-30, 7)
ADHA = (-14, 3)
TERMS = 6
# Any Idul Fitri: Eid cycles are numbered from it.
CYCLE_ORIGIN = date(2015, 7, 17)
LUNAR_MONTH_DAYS = HIJRI_YEAR_DAYS / 12.0


def local_day(ts: float) -> date:
    return datetime.fromtimestamp(ts, WIB).date()


@lru_cache(maxsize=8192)
def regression_terms(day: date) -> tuple[float, ...]:
    """Regressors besides intercept and trend: the Eid cycle, the two feasts, the climate year.

    (sin, cos of the phase since Idul Fitri; sin, cos of the Gregorian year; 1 in Ramadan or
    the Lebaran week; 1 in the run-up to Idul Adha).
    """
    phase = 2.0 * math.pi * days_since_idul_fitri(day) / HIJRI_YEAR_DAYS
    year = 2.0 * math.pi * (day.timetuple().tm_yday - 1) / 365.25
    fitri = days_from_idul_fitri(day)
    adha = days_from_idul_adha(day)
    return (
        math.sin(phase), math.cos(phase), math.sin(year), math.cos(year),
        1.0 if RAMADAN[0] <= fitri <= RAMADAN[1] else 0.0,
        1.0 if ADHA[0] <= adha <= ADHA[1] else 0.0,
    )


@lru_cache(maxsize=8192)
def lunar_season(day: date) -> int:
    """Lunar month of the Eid cycle, 0 .. 11: 0 is the month that starts on Idul Fitri."""
    return min(int(days_since_idul_fitri(day) / LUNAR_MONTH_DAYS), 11)


@lru_cache(maxsize=8192)
def lunar_period(day: date) -> int:
    """A running number of lunar months (12 per Eid cycle), for growth over n months."""
    return 12 * _cycle(day) + lunar_season(day)


@lru_cache(maxsize=8192)
def lunar_dekad(day: date) -> int:
    """A running number of lunar dekads (thirds of a lunar month, 36 per Eid cycle)."""
    within = min(int(days_since_idul_fitri(day) / (LUNAR_MONTH_DAYS / 3.0)), 35)
    return 36 * _cycle(day) + within


def _cycle(day: date) -> int:
    fitri = day - timedelta(days=days_since_idul_fitri(day))
    return round((fitri - CYCLE_ORIGIN).days / HIJRI_YEAR_DAYS)
