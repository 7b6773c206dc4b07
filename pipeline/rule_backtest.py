"""``pasarwatch rules backtest``: what a changed rule file would have raised on recorded data,
next to what the rules in force raised, before the change goes live.

The recorded ticks (read by ``detectors.recorded``) go through the production detector stack
once, one reporting day per batch (``pipeline.replay.reporting_days``), followed by the stale
sweep, as in the engine; the same verdicts then go through two rule engines: the rules in force
and the candidate set (the rules directory with the changed file in place of its namesake).
Silences are not replayed (past silences are not known); inhibition and routing are.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date, datetime
from pathlib import Path
from typing import cast

from detectors.recorded import WIB, read_paths
from detectors.stack import DetectorStack
from base.contracts import AlertEvent, Tick
from pipeline.replay import reporting_days
from pipeline.step import Step
from base.catalog import Catalog
from rules.engine import RuleEngine
from rules.errors import RuleSetError
from rules.loader import in_context, load_rules, rule_files
from rules.model import RuleSet

EXAMPLES = 5


def rule_sets(file: Path, rules_dir: Path, catalog: Catalog, detectors: set[str]) -> tuple[RuleSet | None, RuleSet]:
    """(rules in force, candidate); the first is None when the directory's rules do not load."""
    current_paths = rule_files(rules_dir) if rules_dir.is_dir() else []
    candidate_paths = rule_files(file) if file.is_dir() else in_context(file, rules_dir)
    candidate = load_rules(candidate_paths, catalog, detectors)
    try:
        current = load_rules(current_paths, catalog, detectors) if current_paths else None
    except RuleSetError:
        current = None
    return current, candidate


def compare(data: list[Path], current: RuleSet | None, candidate: RuleSet, catalog: Catalog, ceilings: dict,
            since: str | None = None, until: str | None = None) -> dict:
    ticks = read_paths(data, catalog)
    if not ticks:
        raise ValueError("no ticks in the data")
    low = _day_start(since) if since else float("-inf")
    high = _day_start(until) + 86400.0 if until else float("inf")
    sets = {"candidate": candidate, **({"current": current} if current is not None else {})}
    tallies = {name: Tally() for name in sets}
    by_commodity: dict[str, list[dict]] = defaultdict(list)
    for tick in ticks:
        by_commodity[tick["commodity"]].append(tick)
    for group in by_commodity.values():
        # One step per rule set, each with its own stack (the same verdicts: the stack is
        # deterministic), exactly as the engine would take them.
        steps = {name: Step(DetectorStack(ceilings=ceilings), RuleEngine(ruleset)) for name, ruleset in sets.items()}
        for day in reporting_days(group):
            now = max(t["ts"] for t in day)
            for name, step in steps.items():
                events = step.ticks(cast(list[Tick], day)).alerts + step.sweep(now).alerts  # read as ticks
                tallies[name].add([e for e in events if low <= e["ts"] < high])
    first, last = ticks[0]["ts"], ticks[-1]["ts"]
    return {
        "ticks": len(ticks),
        "series": len({(t["commodity"], t["market"]) for t in ticks}),
        "from": _day(max(first, low)), "to": _day(min(last, high - 1)),
        "current": tallies["current"].report() if "current" in tallies else None,
        "candidate": tallies["candidate"].report(),
    }


class Tally:
    def __init__(self) -> None:
        self.transitions: dict[str, Counter] = defaultdict(Counter)
        self.severities: dict[str, Counter] = defaultdict(Counter)
        self.series: dict[str, set] = defaultdict(set)
        self.notified: Counter = Counter()
        self.muted: Counter = Counter()
        self.examples: dict[str, list] = defaultdict(list)

    def add(self, events: list[AlertEvent]) -> None:
        for event in events:
            rule = event["rule"]
            self.transitions[rule][event["transition"]] += 1
            if event["state"] == "firing":
                self.severities[rule][event["severity"]] += 1
            if event["transition"] == "fired":
                self.series[rule].add(f"{event['commodity']}/{event['market']}")
                if len(self.examples[rule]) < EXAMPLES:
                    self.examples[rule].append({"date": _day(event["ts"]), "market": event["market"],
                                                "severity": event["severity"], "message": event.get("message")})
                if not event.get("notify"):
                    self.muted[rule] += 1
            if event.get("notify"):
                self.notified[rule] += 1

    def report(self) -> dict:
        rules = {}
        for rule in sorted(self.transitions):
            counts = self.transitions[rule]
            rules[rule] = {
                "fired": counts["fired"], "escalated": counts["escalated"], "deescalated": counts["deescalated"],
                "resolved": counts["resolved"], "reminders": counts["repeated"] + counts["unmuted"],
                "series": len(self.series[rule]), "notifications": self.notified[rule],
                "muted_at_firing": self.muted[rule], "severities": dict(sorted(self.severities[rule].items())),
                "examples": self.examples[rule],
            }
        return {"fired": sum(r["fired"] for r in rules.values()),
                "notifications": sum(r["notifications"] for r in rules.values()), "rules": rules}


def format_comparison(report: dict) -> str:
    current, candidate = report["current"], report["candidate"]
    lines = [f"{report['ticks']} ticks, {report['series']} series, alerts counted {report['from']} .. {report['to']}",
             "", f"{'rule':<28}{'fired now':>10}{'fired new':>10}{'change':>8}{'notif. new':>12}{'series':>8}"]
    names = sorted(set(candidate["rules"]) | set((current or {}).get("rules", {})))
    for name in names:
        new = candidate["rules"].get(name, {})
        old = (current or {}).get("rules", {}).get(name, {}) if current else None
        before = "-" if old is None else str(old.get("fired", 0))
        change = "" if old is None else f"{new.get('fired', 0) - old.get('fired', 0):+d}"
        lines.append(f"{name:<28}{before:>10}{new.get('fired', 0):>10}{change:>8}"
                     f"{new.get('notifications', 0):>12}{new.get('series', 0):>8}")
    lines.append(f"{'total':<28}{'-' if current is None else current['fired']:>10}{candidate['fired']:>10}")
    for name, rule in candidate["rules"].items():
        if rule["examples"]:
            escalations = f" ({rule['escalated']} escalations)" if rule["escalated"] else ""
            lines.append(f"\n{name}: first alerts{escalations}")
            lines.extend(f"  {e['date']} {e['market']} {e['severity']}: {e['message']}" for e in rule["examples"])
    return "\n".join(lines)


def _day_start(text: str) -> float:
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD)") from None
    return datetime(day.year, day.month, day.day, tzinfo=WIB).timestamp()


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, WIB).date().isoformat()
