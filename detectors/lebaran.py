"""Dates of Idul Fitri (Lebaran, 1 Syawal) and Idul Adha (10 Zulhijah) in Indonesia.

Food prices in Indonesia follow the Islamic calendar: demand peaks in Ramadan and before
Lebaran, again before Idul Adha, and those move about 11 days earlier every Gregorian year. The
seasonal terms of the price indicators therefore count days from these dates.

The table holds 2010-2040. 2010-2025 are the dates the Indonesian government set (the Ministry
of Religious Affairs' sidang isbat, as published in the joint ministerial decrees, SKB 3
Menteri, on national holidays); where Muhammadiyah celebrated a day earlier (e.g. Idul Fitri
2023, Idul Adha 2022 and 2023) the government date is kept. From 2026 the table holds the Umm
al-Qura calendar's dates computed with the ``hijridate`` library (2.6.0); Indonesia's isbat
follows the sighting of the new moon and may fall one day later (as in 2019, 2023 and 2025
for Idul Fitri), which does not matter at the resolution the indicators use (weeks and lunar
months). Dates outside the table are computed with ``hijridate`` when asked for.

>>> idul_fitri(2024), idul_adha(2024)
(datetime.date(2024, 4, 10), datetime.date(2024, 6, 17))
>>> days_from_idul_fitri(date(2024, 3, 31))  # Ramadan: Lebaran is 10 days ahead
-10
>>> days_since_idul_fitri(date(2024, 4, 20))
10
"""
from __future__ import annotations

import bisect
from datetime import date

_D = date
IDUL_FITRI_DATES = (
    # Government (isbat) dates
    _D(2010, 9, 10), _D(2011, 8, 31), _D(2012, 8, 19), _D(2013, 8, 8), _D(2014, 7, 28),
    _D(2015, 7, 17), _D(2016, 7, 6), _D(2017, 6, 25), _D(2018, 6, 15), _D(2019, 6, 5),
    _D(2020, 5, 24), _D(2021, 5, 13), _D(2022, 5, 2), _D(2023, 4, 22), _D(2024, 4, 10),
    _D(2025, 3, 31),
    # Umm al-Qura (hijridate 2.6.0)
    _D(2026, 3, 20), _D(2027, 3, 9), _D(2028, 2, 26), _D(2029, 2, 14), _D(2030, 2, 4),
    _D(2031, 1, 24), _D(2032, 1, 14), _D(2033, 1, 2), _D(2033, 12, 23), _D(2034, 12, 12),
    _D(2035, 12, 1), _D(2036, 11, 19), _D(2037, 11, 8), _D(2038, 10, 29), _D(2039, 10, 19),
    _D(2040, 10, 7),
)
IDUL_ADHA_DATES = (
    # Government (isbat) dates
    _D(2010, 11, 17), _D(2011, 11, 6), _D(2012, 10, 26), _D(2013, 10, 15), _D(2014, 10, 5),
    _D(2015, 9, 24), _D(2016, 9, 12), _D(2017, 9, 1), _D(2018, 8, 22), _D(2019, 8, 11),
    _D(2020, 7, 31), _D(2021, 7, 20), _D(2022, 7, 10), _D(2023, 6, 29), _D(2024, 6, 17),
    _D(2025, 6, 6),
    # Umm al-Qura (hijridate 2.6.0)
    _D(2026, 5, 27), _D(2027, 5, 16), _D(2028, 5, 5), _D(2029, 4, 24), _D(2030, 4, 13),
    _D(2031, 4, 2), _D(2032, 3, 22), _D(2033, 3, 11), _D(2034, 3, 1), _D(2035, 2, 18),
    _D(2036, 2, 7), _D(2037, 1, 26), _D(2038, 1, 16), _D(2039, 1, 5), _D(2039, 12, 26),
    _D(2040, 12, 14),
)
FIRST_YEAR, LAST_YEAR = 2010, 2040
# Mean length of the Islamic year in days (12 synodic months).
HIJRI_YEAR_DAYS = 354.367


def _umm_al_qura(year: int, month: int, day: int) -> list[date]:
    """Gregorian dates in ``year`` of a Hijri month and day (Umm al-Qura, via hijridate)."""
    from hijridate import Gregorian, Hijri

    first = Gregorian(year, 1, 1).to_hijri().year
    found = [date(*Hijri(h, month, day).to_gregorian().datetuple()) for h in (first, first + 1)]
    return [d for d in found if d.year == year]


def _feasts(table: tuple[date, ...], month: int, day: int, years: range) -> list[date]:
    dates = [d for d in table if d.year in years]
    for year in years:
        if not FIRST_YEAR <= year <= LAST_YEAR:
            dates.extend(_umm_al_qura(year, month, day))
    return sorted(dates)


def idul_fitri_dates(year: int) -> list[date]:
    """Every Idul Fitri in a Gregorian year (two in 2033)."""
    return _feasts(IDUL_FITRI_DATES, 10, 1, range(year, year + 1))


def idul_adha_dates(year: int) -> list[date]:
    """Every Idul Adha in a Gregorian year (two in 2039)."""
    return _feasts(IDUL_ADHA_DATES, 12, 10, range(year, year + 1))


def idul_fitri(year: int) -> date:
    """The (first) Idul Fitri of a Gregorian year."""
    return idul_fitri_dates(year)[0]


def idul_adha(year: int) -> date:
    """The (first) Idul Adha of a Gregorian year."""
    return idul_adha_dates(year)[0]


def _around(table: tuple[date, ...], month: int, day: int, when: date) -> list[date]:
    if FIRST_YEAR < when.year < LAST_YEAR:
        i = bisect.bisect_left(table, when)
        return list(table[max(i - 2, 0): i + 2])
    return _feasts(table, month, day, range(when.year - 1, when.year + 2))


def days_from_idul_fitri(day: date) -> int:
    """Signed days from the nearest Idul Fitri (negative before it: Ramadan)."""
    return min(((day - d).days for d in _around(IDUL_FITRI_DATES, 10, 1, day)), key=abs)


def days_from_idul_adha(day: date) -> int:
    """Signed days from the nearest Idul Adha."""
    return min(((day - d).days for d in _around(IDUL_ADHA_DATES, 12, 10, day)), key=abs)


def days_since_idul_fitri(day: date) -> int:
    """Days since the latest Idul Fitri on or before ``day`` (0 .. about 354)."""
    return min((day - d).days for d in _around(IDUL_FITRI_DATES, 10, 1, day) if d <= day)
