"""The engine's detection path over recorded ticks, without Redis: what a backtest runs.

The engine's own step (pipeline/step.py), over the ticks of one reporting day at a time (as a
day's reports reach the engine together), then the stale-feed sweep at the day's last
timestamp. The stack and the rules are the production classes with the production defaults;
the caller passes the rule set and ceilings the engine would load. What differs from the live
engine is only time: the sweep runs once a reporting day, at event time.

The report counts ticks, quarantined ticks, detector firings and alerts per rule and per series,
the error and interval coverage of the forecasts 1, 7, 14 and 28 ticks ahead next to the naive
baselines, and the calibration of the 14-tick breach odds (detectors/forecast_error.py). With
``split`` (a time) the forecast figures are also given for targets before it and from it on
(``forecast_split``): choose on the first period, report the second.

>>> from rules.engine import RuleEngine
>>> from rules.loader import RuleSet
>>> replay = Replay(DetectorStack(), RuleEngine(RuleSet((), ())))
>>> ticks = [{"commodity": "cabai", "market": m, "province": "32", "price": p, "ts": d * 86400.0}
...          for d in range(20) for m, p in (("a", 60000.0), ("b", 61000.0), ("c", 59000.0))]
>>> for day in reporting_days(ticks):
...     _ = replay.batch(day)
>>> report = replay.report()
>>> report["ticks"], report["series"], report["days"], report["alerts"]["total"]
(60, 3, 20, 0)
"""
from __future__ import annotations

import time
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from collections.abc import Iterable, Iterator
from typing import cast

from detectors.forecast_error import (BreachTracker, ForecastTracker, merge_breach, merge_totals,
                                      summarize, summarize_breach)
from detectors.forecast_horizons import HORIZONS
from detectors.stack import DetectorStack
from base.contracts import AlertEvent, Tick, Verdict
from pipeline.step import Step
from rules.engine import RuleEngine

# Reporting days are Indonesian (WIB) calendar days: a morning's reports share one date.
WIB = timezone(timedelta(hours=7))


def reporting_days(ticks: Iterable[dict], tz: timezone = WIB) -> Iterator[list[dict]]:
    """Consecutive ticks of the same local date, as one batch each (ticks sorted by time)."""
    batch: list[dict] = []
    current = None
    for tick in ticks:
        day = datetime.fromtimestamp(tick["ts"], tz).date()
        if batch and day != current:
            yield batch
            batch = []
        current = day
        batch.append(tick)
    if batch:
        yield batch


class Replay:
    def __init__(self, stack: DetectorStack, rules: RuleEngine, horizons: tuple[int, ...] = HORIZONS,
                 split: float | None = None):
        self.step = Step(stack, rules)
        self.stack, self.rules = stack, rules
        self.split = split
        # Periods: all targets, and with a split the targets before it and from it on.
        bounds: dict[str, tuple[float | None, float | None]] = {"all": (None, None)}
        if split is not None:
            bounds.update(before=(None, split), after=(split, None))
        self.trackers = {period: [ForecastTracker(horizon=h, since=lo, until=hi) for h in horizons]
                         for period, (lo, hi) in bounds.items()}
        self.breach = {period: BreachTracker(since=lo, until=hi) for period, (lo, hi) in bounds.items()}
        self.alerts: list[dict] = []  # the fields of each event a report needs
        self.ticks = 0
        self.days = 0
        self.quarantined = 0
        self.fired: Counter[str] = Counter()
        self.series: set[tuple[str, str]] = set()
        self._started = time.perf_counter()

    def batch(self, ticks: list[dict]) -> list[Verdict]:
        """One reporting batch through stack, rules and sweep; returns the verdicts."""
        judged = self.step.ticks(cast(list[Tick], ticks))  # detectors/recorded.py reads rows into ticks
        verdicts = judged.verdicts
        for event in judged.alerts:
            self._record(event)
        for tick, verdict in zip(ticks, verdicts):
            key = (tick["commodity"], tick["market"])
            self.series.add(key)
            self.ticks += 1
            self.quarantined += verdict["quarantined"]
            self.fired.update(verdict["fired"])
            if not verdict.get("late"):
                self._track(key, tick, verdict)
        self.days += 1
        self.sweep(max(t["ts"] for t in ticks))
        return verdicts

    def _track(self, key: tuple[str, str], tick: dict, verdict: Verdict) -> None:
        accepted = not verdict["quarantined"]
        made = {t.horizon: self.stack.horizon_forecast(key, t.horizon) for t in self.trackers["all"]}
        reference = self.stack.reference(tick["commodity"], tick.get("province"))
        for period, trackers in self.trackers.items():
            for tracker in trackers:
                tracker.observe(key, tick["ts"], tick["price"], made[tracker.horizon], accepted)
            self.breach[period].observe(key, tick["ts"], tick["price"], verdict.get("odds"), reference, accepted)

    def sweep(self, now: float) -> None:
        """The engine's stale-feed sweep at event time ``now``."""
        for event in self.step.sweep(now).alerts:
            self._record(event)

    def _record(self, event: AlertEvent) -> None:
        self.alerts.append({
            "rule": event["rule"], "state": event["state"], "transition": event["transition"],
            "severity": event["severity"],
            "commodity": event["commodity"], "market": event["market"], "ts": event["ts"],
            "price": event["price"], "started_at": event["started_at"],
            "detectors": event["detectors"],
        })

    def report(self, detail: bool = False) -> dict:
        """Counts, alerts per rule and per series, forecast errors; ``detail`` adds each alert."""
        seconds = time.perf_counter() - self._started
        per_rule: Counter[str] = Counter()
        per_series: dict[str, Counter[str]] = defaultdict(Counter)
        for event in self.alerts:
            if event["state"] == "firing":
                per_rule[event["rule"]] += 1
                per_series[f"{event['commodity']}/{event['market']}"][event["rule"]] += 1
        report = {
            "ticks": self.ticks,
            "series": len(self.series),
            "days": self.days,
            "quarantined": self.quarantined,
            "detectors_fired": dict(sorted(self.fired.items())),
            "alerts": {
                "total": sum(per_rule.values()),
                "per_rule": dict(sorted(per_rule.items())),
                "per_series": {key: dict(sorted(c.items())) for key, c in sorted(per_series.items())},
            },
            "forecast": self._forecast("all"),
            "forecast_totals": {period: {"horizons": [t.totals() for t in trackers],
                                         "breach": self.breach[period].totals()}
                                for period, trackers in self.trackers.items()},
            "seconds": round(seconds, 3),
            "us_per_tick": round(1e6 * seconds / self.ticks, 1) if self.ticks else None,
        }
        if self.split is not None:
            report["forecast_split"] = {"split": self.split, "before": self._forecast("before"),
                                        "after": self._forecast("after")}
        if detail:
            report["alert_events"] = self.alerts
        return report

    def _forecast(self, period: str) -> dict:
        out = {f"h{t.horizon}": _with_point(t.summary()) for t in self.trackers[period]}
        out["breach"] = self.breach[period].summary()
        return out


def _with_point(summary: dict) -> dict:
    """A horizon's figures and what its point mostly was: the model's, or the last price (where
    no model beat it on the choose period, or for series not reported daily;
    detectors/forecast_horizons.py)."""
    share = summary.get("model_share")
    summary["point"] = "model" if share is not None and share >= 0.5 else "last price"
    return summary


def merge_forecast(reports: list[dict]) -> dict:
    """Per period, the forecast figures of independent groups, from their raw sums."""
    merged: dict[str, dict] = {}
    for report in reports:
        for period, totals in report.get("forecast_totals", {}).items():
            into = merged.setdefault(period, {"horizons": {}, "breach": {}})
            for horizon in totals["horizons"]:
                merge_totals(into["horizons"].setdefault(horizon["horizon"], {}), horizon)
            merge_breach(into["breach"], totals["breach"])
    out = {}
    for period, into in merged.items():
        figures = {f"h{h}": _with_point(summarize(t)) for h, t in sorted(into["horizons"].items())}
        figures["breach"] = summarize_breach(into["breach"])
        out[period] = figures
    return out


def merge_reports(reports: list[dict]) -> dict:
    """One report from the reports of independent groups (commodities replayed apart)."""
    fired: Counter[str] = Counter()
    per_rule: Counter[str] = Counter()
    per_series: dict[str, dict] = {}
    events: list[dict] = []
    for report in reports:
        fired.update(report["detectors_fired"])
        per_rule.update(report["alerts"]["per_rule"])
        per_series.update(report["alerts"]["per_series"])
        events.extend(report.get("alert_events", ()))
    forecast = merge_forecast(reports)
    events.sort(key=lambda e: (e["ts"], e["commodity"], e["market"], e["rule"]))
    ticks = sum(r["ticks"] for r in reports)
    merged = {
        "ticks": ticks,
        "series": sum(r["series"] for r in reports),
        "days": max((r["days"] for r in reports), default=0),
        "quarantined": sum(r["quarantined"] for r in reports),
        "detectors_fired": dict(sorted(fired.items())),
        "alerts": {"total": sum(per_rule.values()), "per_rule": dict(sorted(per_rule.items())),
                   "per_series": dict(sorted(per_series.items()))},
        "forecast": forecast.get("all", {}),
        "alert_events": events,
    }
    split = next((r["forecast_split"]["split"] for r in reports if "forecast_split" in r), None)
    if split is not None:
        merged["forecast_split"] = {"split": split, "before": forecast["before"], "after": forecast["after"]}
    return merged
