"""The engine's detection path over recorded ticks, without Redis: what a backtest runs.

The engine's own step (pipeline/step.py), over the ticks of one reporting day at a time (as a
day's reports reach the engine together), then the stale-feed sweep at the day's last
timestamp. The stack and the rules are the production classes with the production defaults;
the caller passes the rule set and ceilings the engine would load. What differs from the live
engine is only time: the sweep runs once a reporting day, at event time.

The report counts ticks, quarantined ticks, detector firings and alerts per rule and per series,
and the forecast error of the online model next to the naive baselines
(detectors/forecast_error.py).

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

from detectors.forecast_error import ForecastTracker
from detectors.stack import DetectorStack
from pipeline.contracts import AlertEvent, Tick, Verdict
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
    def __init__(self, stack: DetectorStack, rules: RuleEngine, horizons: tuple[int, ...] = (1, 7)):
        self.step = Step(stack, rules)
        self.stack, self.rules = stack, rules
        self.trackers = [ForecastTracker(horizon=h) for h in horizons]
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
        longest = max((t.horizon for t in self.trackers), default=0)
        for event in judged.alerts:
            self._record(event)
        for tick, verdict in zip(ticks, verdicts):
            key = (tick["commodity"], tick["market"])
            self.series.add(key)
            self.ticks += 1
            self.quarantined += verdict["quarantined"]
            self.fired.update(verdict["fired"])
            if longest and not verdict.get("late"):
                steps = self.stack.forecast(key, longest)
                for tracker in self.trackers:
                    made = steps[tracker.horizon - 1]["level"] if steps else None
                    tracker.observe(key, tick["ts"], tick["price"], made, not verdict["quarantined"])
        self.days += 1
        self.sweep(max(t["ts"] for t in ticks))
        return verdicts

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
            "forecast": {f"h{t.horizon}": t.summary() for t in self.trackers},
            "seconds": round(seconds, 3),
            "us_per_tick": round(1e6 * seconds / self.ticks, 1) if self.ticks else None,
        }
        if detail:
            report["alert_events"] = self.alerts
        return report


PER_TICK = ("mape", "naive_mape")
PER_SEASONAL_TICK = ("mape_seasonal_ticks", "seasonal_naive_mape")


def merge_reports(reports: list[dict]) -> dict:
    """One report from the reports of independent groups (commodities replayed apart)."""
    fired: Counter[str] = Counter()
    per_rule: Counter[str] = Counter()
    per_series: dict[str, dict] = {}
    forecast: dict[str, dict] = {}
    events: list[dict] = []
    for report in reports:
        fired.update(report["detectors_fired"])
        per_rule.update(report["alerts"]["per_rule"])
        per_series.update(report["alerts"]["per_series"])
        events.extend(report.get("alert_events", ()))
        for name, summary in report["forecast"].items():
            total = forecast.setdefault(name, {"horizon": summary["horizon"], "ticks": 0,
                                               "seasonal_ticks": 0, **{f: 0.0 for f in PER_TICK},
                                               **{f: 0.0 for f in PER_SEASONAL_TICK}})
            for fields, count in ((PER_TICK, "ticks"), (PER_SEASONAL_TICK, "seasonal_ticks")):
                if summary[count]:
                    for f in fields:
                        total[f] += summary[f] * summary[count]
                    total[count] += summary[count]
    for total in forecast.values():
        for fields, count in ((PER_TICK, "ticks"), (PER_SEASONAL_TICK, "seasonal_ticks")):
            for f in fields:
                total[f] = total[f] / total[count] if total[count] else None
    events.sort(key=lambda e: (e["ts"], e["commodity"], e["market"], e["rule"]))
    ticks = sum(r["ticks"] for r in reports)
    return {
        "ticks": ticks,
        "series": sum(r["series"] for r in reports),
        "days": max((r["days"] for r in reports), default=0),
        "quarantined": sum(r["quarantined"] for r in reports),
        "detectors_fired": dict(sorted(fired.items())),
        "alerts": {"total": sum(per_rule.values()), "per_rule": dict(sorted(per_rule.items())),
                   "per_series": dict(sorted(per_series.items()))},
        "forecast": forecast,
        "alert_events": events,
    }
