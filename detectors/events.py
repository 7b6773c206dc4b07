"""Score a backtest's alerts against labelled real events: how early, how often, how noisy.

A label file is a CSV with columns ``id, commodity, market, start, peak, end, kind, source``
(dates ISO; ``market`` is a glob: ``*`` = every market of the commodity in the data,
``pasar-*`` the daily markets only). For each rule and
each labelled event on a series, the event is *warned* when the rule's alert fired on that
series between ``start - lead_days`` and ``end``; the lead is ``peak - first alert`` in days
(negative: the alert came after the peak). Every firing alert of the rule on a series outside
all of that series' events (widened the same way) is a false alarm; false alarms are reported
per series-year of data (the span from the series' first to last tick). ``warned_ahead`` counts
the events whose first warning came at least ``WARN_AHEAD_DAYS`` (14) days before the peak: a
warning people can still act on. With ``split`` (a time) every figure is also given for the
period before it (events whose peak, alerts and series-years before the split: the period
thresholds are chosen on) and from it on (held out), under ``periods``.

>>> events = [{"id": "e1", "commodity": "cabai", "market": "*", "start": "2024-01-10",
...            "peak": "2024-01-20", "end": "2024-01-31", "kind": "spike", "source": "x"}]
>>> day = 86400.0
>>> t0 = 1704042000.0  # 2024-01-01 00:00 WIB
>>> ticks = [{"commodity": "cabai", "market": "a", "ts": t0},
...          {"commodity": "cabai", "market": "a", "ts": t0 + 365 * day}]
>>> alerts = [{"rule": "naik", "transition": "fired", "commodity": "cabai", "market": "a", "ts": t0 + 12 * day},
...           {"rule": "naik", "transition": "fired", "commodity": "cabai", "market": "a", "ts": t0 + 200 * day}]
>>> result = evaluate_events(events, alerts, ticks)
>>> spikes = result["per_rule"]["naik"]["by_kind"]["spike"]
>>> spikes["warned"], spikes["median_lead_days"]
('1/1', 7.0)
>>> result["per_rule"]["naik"]["false_alarms"], result["per_rule"]["naik"]["false_alarms_per_series_year"]
(1, 1.0)
>>> spikes["warned_ahead"]  # 7 days before the peak is too late to act on
'0/1'
>>> periods = evaluate_events(events, alerts, ticks, split=t0 + 100 * day)["periods"]
>>> periods["before"]["per_rule"]["naik"]["false_alarms"], periods["after"]["per_rule"]["naik"]["false_alarms"]
(0, 1)
>>> periods["before"]["event_series"], periods["after"]["event_series"], periods["before"]["series_years"]
({'spike': 1}, {}, 0.27)
"""
from __future__ import annotations

import csv
import fnmatch
import statistics
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

WIB = timezone(timedelta(hours=7))
DAY = 86400.0
YEAR = 365.25 * DAY
# An early warning may come this many days before the labelled start of an event.
LEAD_DAYS = 14
# A warning people can act on comes at least this many days before the peak (issue 18's goal).
WARN_AHEAD_DAYS = 14
FIELDS = ("id", "commodity", "market", "start", "peak", "end", "kind", "source")


def load_events(path: Path) -> list[dict]:
    """Read a label file (see the module doc); lines starting with ``#`` are comments."""
    with path.open(newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.DictReader(line for line in handle if not line.startswith("#"))]
    for row in rows:
        missing = [f for f in FIELDS if not row.get(f)]
        if missing:
            raise ValueError(f"{path}: event {row.get('id')!r} lacks {missing}")
    return rows


def _day_start(iso: str) -> float:
    d = date.fromisoformat(iso)
    return datetime(d.year, d.month, d.day, tzinfo=WIB).timestamp()


def evaluate_events(events: list[dict], alerts: list[dict], ticks: list[dict],
                    detail: bool = False, lead_days: float = LEAD_DAYS, split: float | None = None) -> dict:
    """Per rule: events warned, lead days, false alarms per series-year (see the module doc).

    With ``split`` (a time) the same figures are also given per period under ``periods``:
    ``before`` (events whose peak, alerts and series-years before it) and ``after`` (from it on).
    """
    span: dict[tuple[str, str], list[float]] = {}
    for tick in ticks:
        key = (tick["commodity"], tick["market"])
        first_last = span.setdefault(key, [tick["ts"], tick["ts"]])
        first_last[0] = min(first_last[0], tick["ts"])
        first_last[1] = max(first_last[1], tick["ts"])
    # (event, series) pairs with the event's widened window, for the series in the data.
    cases = []
    for event in events:
        for key, (first, last) in span.items():
            if key[0] != event["commodity"] or not fnmatch.fnmatchcase(key[1], event["market"]):
                continue
            lo = _day_start(event["start"]) - lead_days * DAY
            hi = _day_start(event["end"]) + DAY
            if hi < first or lo > last:
                continue
            cases.append((event, key, lo, hi, _day_start(event["peak"])))
    by_series: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for _, key, lo, hi, _ in cases:
        by_series[key].append((lo, hi))
    firing: dict[str, dict[tuple[str, str], list[float]]] = defaultdict(lambda: defaultdict(list))
    for alert in alerts:
        # A new alert, not a ladder's escalation or a repeat of one already counted.
        if alert["transition"] == "fired":
            firing[alert["rule"]][(alert["commodity"], alert["market"])].append(alert["ts"])
    series_years = sum((last - first) / YEAR for first, last in span.values())
    case_count = Counter(event["kind"] for event, *_ in cases)
    per_event: list[dict] = []
    per_rule = _per_rule(cases, by_series, firing, series_years, per_event if detail else None)
    result: dict = {
        "summary": {"events": len(events), "event_series": dict(sorted(case_count.items())),
                    "series_years": round(series_years, 2), "lead_days_allowed": lead_days,
                    "warned_ahead_days": WARN_AHEAD_DAYS},
        "per_rule": per_rule,
    }
    if split is not None:
        result["periods"] = {"split": split}
        for period, inside in (("before", lambda t: t < split), ("after", lambda t: t >= split)):
            years = sum(max(0.0, min(last, split) - first) / YEAR if period == "before"
                        else max(0.0, last - max(first, split)) / YEAR for first, last in span.values())
            chosen = [case for case in cases if inside(case[4])]
            times = {rule: {key: [t for t in ts_list if inside(t)] for key, ts_list in keys.items()}
                     for rule, keys in firing.items()}
            result["periods"][period] = {
                "event_series": dict(sorted(Counter(event["kind"] for event, *_ in chosen).items())),
                "series_years": round(years, 2),
                "per_rule": _per_rule(chosen, by_series, times, years, None, set(firing)),
            }
    if detail:
        result["per_event"] = per_event
    return result


def _per_rule(cases: list[tuple], by_series: dict, firing: dict, series_years: float,
              per_event: list[dict] | None, rules: set[str] | None = None) -> dict:
    """Each rule's warnings of ``cases`` and its alerts outside every event of their series."""
    case_count = Counter(event["kind"] for event, *_ in cases)
    kinds = sorted(case_count)
    per_rule = {}
    for rule in sorted(rules if rules is not None else firing):
        times = firing.get(rule, {})
        leads: dict[str, list[float]] = defaultdict(list)
        warned: Counter[str] = Counter()
        for event, key, lo, hi, peak in cases:
            inside = [t for t in times.get(key, ()) if lo <= t <= hi]
            lead = round((peak - min(inside)) / DAY, 1) if inside else None
            if lead is not None:
                warned[event["kind"]] += 1
                leads[event["kind"]].append(lead)
            if per_event is not None:
                per_event.append({"rule": rule, "event": event["id"], "series": "/".join(key),
                                  "warned": bool(inside), "lead_days": lead})
        false_alarms = sum(
            1 for key, ts_list in times.items() for t in ts_list
            if not any(lo <= t <= hi for lo, hi in by_series.get(key, ()))
        )
        per_rule[rule] = {
            "by_kind": {kind: _warning_stats(warned[kind], case_count[kind], leads[kind])
                        for kind in kinds},
            "false_alarms": false_alarms,
            "false_alarms_per_series_year": round(false_alarms / series_years, 2) if series_years else None,
        }
    return per_rule


def _warning_stats(warned: int, cases: int, leads: list[float]) -> dict:
    ahead = sum(1 for lead in leads if lead >= WARN_AHEAD_DAYS)
    return {
        "warned": f"{warned}/{cases}",
        "warned_share": round(warned / cases, 3) if cases else None,
        "median_lead_days": statistics.median(leads) if leads else None,
        "warned_ahead": f"{ahead}/{cases}",
        "warned_ahead_share": round(ahead / cases, 3) if cases else None,
    }
