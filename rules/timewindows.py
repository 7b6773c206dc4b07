"""Named time windows for routes: working hours, quiet nights, market days.

A window is a list of intervals; it is open when any interval is. An interval may restrict
``weekdays`` (English or Indonesian names, ranges with ``:``), ``times`` (``"07:00-17:00"``,
local time, end exclusive, ``24:00`` allowed), ``days_of_month`` (``1:7``, ``-1`` = last day)
and ``months``. Local time is the interval's ``timezone`` or, by default, the time zone of the
alert's province (WIB, WITA or WIT), so one window means "office hours" in Jakarta and in
Jayapura alike.

>>> window = parse_window([{"weekdays": ["senin:jumat"], "times": ["07:00-17:00"]}])
>>> monday_9_wib = 1719799200.0  # 2024-07-01 09:00 WIB
>>> window.is_open(monday_9_wib, "Asia/Jakarta"), window.is_open(monday_9_wib - 3 * 3600, "Asia/Jakarta")
(True, False)
>>> window.next_open(monday_9_wib - 3 * 3600, "Asia/Jakarta") - (monday_9_wib - 2 * 3600)
0.0
"""
from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_TIMEZONE = "Asia/Jakarta"
PROVINCE = "province"  # the timezone value meaning "the alert's province's zone"
# Indonesia keeps no daylight saving time: fixed offsets stand in where tzdata is missing.
_FIXED = {"Asia/Jakarta": 7, "Asia/Pontianak": 7, "Asia/Makassar": 8, "Asia/Jayapura": 9, "UTC": 0}
_DAYS = {name: i for i, names in enumerate((
    ("monday", "senin"), ("tuesday", "selasa"), ("wednesday", "rabu"), ("thursday", "kamis"),
    ("friday", "jumat", "jum'at"), ("saturday", "sabtu"), ("sunday", "minggu", "ahad"))) for name in names}
_MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_name) if name}
_TIME_RANGE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
INTERVAL_KEYS = {"weekdays", "times", "days_of_month", "months", "timezone"}


class WindowError(ValueError):
    pass


@lru_cache(maxsize=64)
def zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        if name in _FIXED:
            return timezone(timedelta(hours=_FIXED[name]), name)
        raise WindowError(f"unknown time zone {name!r} (use an IANA name such as Asia/Jakarta)") from None


@dataclass(frozen=True)
class Interval:
    weekdays: frozenset[int] | None = None
    minutes: tuple[tuple[int, int], ...] | None = None  # [start, end) minutes of the day
    days_of_month: tuple[tuple[int, int], ...] | None = None
    months: frozenset[int] | None = None
    timezone: str = PROVINCE

    def day_matches(self, day: datetime) -> bool:
        if self.weekdays is not None and day.weekday() not in self.weekdays:
            return False
        if self.months is not None and day.month not in self.months:
            return False
        if self.days_of_month is not None:
            length = calendar.monthrange(day.year, day.month)[1]
            if not any(_day_number(lo, length) <= day.day <= _day_number(hi, length)
                       for lo, hi in self.days_of_month):
                return False
        return True

    def ranges(self) -> tuple[tuple[int, int], ...]:
        return self.minutes if self.minutes is not None else ((0, 1440),)


@dataclass(frozen=True)
class Window:
    intervals: tuple[Interval, ...]

    def is_open(self, ts: float, default_tz: str = DEFAULT_TIMEZONE) -> bool:
        for interval in self.intervals:
            local = datetime.fromtimestamp(ts, zone(_tz(interval, default_tz)))
            minute = local.hour * 60 + local.minute
            if interval.day_matches(local) and any(lo <= minute < hi for lo, hi in interval.ranges()):
                return True
        return False

    def closes_at(self, ts: float, default_tz: str = DEFAULT_TIMEZONE) -> float:
        """When the ranges open at ``ts`` end (``ts`` itself when the window is closed)."""
        end = ts
        for interval in self.intervals:
            tz = zone(_tz(interval, default_tz))
            local = datetime.fromtimestamp(ts, tz)
            minute = local.hour * 60 + local.minute
            if not interval.day_matches(local):
                continue
            midnight = local.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
            for lo, hi in interval.ranges():
                if lo <= minute < hi:
                    end = max(end, (midnight + timedelta(minutes=hi)).replace(tzinfo=tz).timestamp())
        return end

    def next_open(self, ts: float, default_tz: str = DEFAULT_TIMEZONE, horizon_days: int = 400) -> float | None:
        """The first moment at or after ``ts`` when the window is open; None if never soon."""
        best: float | None = None
        for interval in self.intervals:
            tz = zone(_tz(interval, default_tz))
            start = datetime.fromtimestamp(ts, tz).replace(hour=0, minute=0, second=0, microsecond=0)
            for offset in range(horizon_days):
                day = (start + timedelta(days=offset)).replace(tzinfo=None)
                if not interval.day_matches(day):
                    continue
                found = None
                for lo, hi in interval.ranges():
                    opens = (day + timedelta(minutes=lo)).replace(tzinfo=tz).timestamp()
                    closes = (day + timedelta(minutes=hi)).replace(tzinfo=tz).timestamp()
                    if closes > ts:
                        candidate = max(opens, ts)
                        found = candidate if found is None else min(found, candidate)
                if found is not None:
                    best = found if best is None else min(best, found)
                    break
        return best


def _tz(interval: Interval, default_tz: str) -> str:
    return default_tz if interval.timezone == PROVINCE else interval.timezone


def _day_number(value: int, length: int) -> int:
    return value if value > 0 else length + 1 + value


def parse_window(value: Any) -> Window:
    """A window from its YAML: a list of intervals (a single mapping is a list of one)."""
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or not value:
        raise WindowError("a time window is a list of intervals with weekdays, times, days_of_month, months")
    return Window(tuple(_interval(item) for item in value))


def _interval(item: Any) -> Interval:
    if not isinstance(item, dict):
        raise WindowError("each interval is a mapping with weekdays, times, days_of_month, months, timezone")
    unknown = set(item) - INTERVAL_KEYS
    if unknown:
        raise WindowError(f"unknown key(s) {', '.join(sorted(map(str, unknown)))} "
                          f"(known: {', '.join(sorted(INTERVAL_KEYS))})")
    tz = item.get("timezone", PROVINCE)
    if not isinstance(tz, str):
        raise WindowError("timezone must be an IANA name such as Asia/Jakarta, or 'province'")
    if tz != PROVINCE:
        zone(tz)
    weekdays = months = minutes = days = None
    if "weekdays" in item:
        weekdays = frozenset(_expand(item["weekdays"], _weekday, 0, 6, "weekdays"))
    if "months" in item:
        months = frozenset(_expand(item["months"], _month, 1, 12, "months"))
    if "times" in item:
        minutes = tuple(_time_range(text) for text in _as_list(item["times"], "times"))
    if "days_of_month" in item:
        days = tuple(_day_range(text) for text in _as_list(item["days_of_month"], "days_of_month"))
    return Interval(weekdays, minutes, days, months, tz)


def _as_list(value: Any, key: str) -> list:
    items = value if isinstance(value, list) else [value]
    if not items:
        raise WindowError(f"{key} is empty")
    return items


def _expand(value: Any, read, low: int, high: int, key: str) -> list[int]:
    result: list[int] = []
    for item in _as_list(value, key):
        first, _, last = str(item).partition(":")
        lo, hi = read(first), read(last) if last else read(first)
        if lo is None or hi is None or not low <= lo <= hi <= high:
            raise WindowError(f"{key}: {item!r} is not a day/month or an ascending range like monday:friday")
        result.extend(range(lo, hi + 1))
    return result


def _weekday(text: str) -> int | None:
    return _DAYS.get(text.strip().lower())


def _month(text: str) -> int | None:
    text = text.strip().lower()
    return int(text) if text.isdigit() else _MONTHS.get(text)


def _time_range(text: Any) -> tuple[int, int]:
    found = _TIME_RANGE.match(str(text))
    if not found:
        raise WindowError(f"times: {text!r} is not a range like 07:00-17:00")
    h1, m1, h2, m2 = (int(part) for part in found.groups())
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if h1 > 23 or m1 > 59 or m2 > 59 or end > 1440 or start >= end:
        raise WindowError(f"times: {text!r} must run forward within one day (split 21:00-06:00 "
                          f"into 21:00-24:00 and 00:00-06:00)")
    return start, end


def _day_range(text: Any) -> tuple[int, int]:
    first, _, last = str(text).partition(":")
    try:
        lo, hi = int(first), int(last) if last else int(first)
    except ValueError:
        raise WindowError(f"days_of_month: {text!r} is not a day or a range like 1:7") from None
    if not (1 <= abs(lo) <= 31 and 1 <= abs(hi) <= 31) or (lo > 0) == (hi > 0) and lo > hi:
        raise WindowError(f"days_of_month: {text!r} is not a day or a range like 1:7 (-1 = last day)")
    return lo, hi
