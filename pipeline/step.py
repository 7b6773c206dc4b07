"""One step of detection, without I/O: what the engine, the backtest and the rule tools all run.

``Step.ticks(ticks)`` judges the ticks that arrived together: a tick older than its series'
newest (beyond ``allowed_lateness``) is late, history rather than news, and gets
``late_verdict()`` without being scored or learned; the others go through the detector stack
together (``DetectorStack.process_batch``: a day's reports see each other) and then through the
rules together (``RuleEngine.on_batch``: a crisis later in the batch mutes an earlier warning).
Alerts raised by ticks marked ``backfill`` (history being imported) are recorded but told to
nobody (``RuleEngine.keep_quiet``). ``Step.sweep(now)`` is the periodic feed-health check: the
stale-feed detector over every series and the health rules over the changes, finished together,
plus the firing alerts whose mute has lifted. Failures the stack or the rules contained come
back as ``errors`` for the caller to count; nothing here logs, reads a clock or touches Redis.

>>> from detectors.stack import DetectorStack
>>> from base.catalog import load_catalog
>>> from rules.engine import RuleEngine
>>> from rules.loader import parse_rule_text
>>> rules = parse_rule_text('''
... rules:
...   - name: menyimpang
...     when: quarantined
... ''', "r.yaml", load_catalog(), {"zscore"})
>>> step = Step(DetectorStack(), RuleEngine(rules))
>>> def day(d, error_at=None):
...     return [{"commodity": "cabai", "market": m, "province": "32", "ts": d * 86400.0,
...              "price": 387500.0 if m == error_at else 50000.0 + 4000 * i + 500 * (d % 3)}
...             for i, m in enumerate(["a", "b", "c", "d", "e"])]
>>> for d in range(12):
...     _ = step.ticks(day(d))
>>> judged = step.ticks(day(12, error_at="a"))
>>> judged.verdicts[0]["quarantined"], [e["key"] for e in judged.alerts]
(True, ['menyimpang/cabai/a'])
>>> step.ticks([{**day(3)[1], "price": 999999.0}]).verdicts[0]["late"]  # yesterday's news
True
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import cast

from detectors.stack import DetectorStack
from base.contracts import AlertEvent, Tick, Verdict
from rules.engine import RuleEngine

Series = tuple[str, str]


def blank_verdict() -> Verdict:
    """A verdict no detector has spoken in."""
    return {"scores": {}, "fired": [], "reasons": {}, "quarantined": False, "expected": None}


def late_verdict() -> Verdict:
    """The verdict of a late tick: judged by nothing (see ``Step.ticks``)."""
    return {"scores": {}, "fired": [], "reasons": {}, "quarantined": False, "expected": None, "late": True}


@dataclass
class Judged:
    """What one batch of ticks came to."""

    verdicts: list[Verdict]  # one per tick, in order; late ticks carry late_verdict()
    newest: list[bool]  # per tick: it is now its series' newest (the latest price to show)
    alerts: list[AlertEvent] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (cause, error): "detector:ipa", "rule:x"


@dataclass
class Swept:
    """What one feed-health sweep came to."""

    health: list[dict] = field(default_factory=list)
    alerts: list[AlertEvent] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)


class Step:
    """The detector stack and the rules over a stream of batches, and what they need to know of
    each series between batches (its newest time, province and last price)."""

    def __init__(self, stack: DetectorStack | None, rules: RuleEngine, allowed_lateness: float = 0.0):
        """``stack`` None: every tick gets a blank verdict (rule tests that give all scores by hand)."""
        self.stack = stack
        self.rules = rules
        self.allowed_lateness = allowed_lateness
        self.latest_ts: dict[Series, float] = {}
        self.provinces: dict[Series, str] = {}
        self.last_price: dict[Series, float] = {}

    def ticks(self, ticks: Sequence[Tick], silences: list[dict] | None = None, wall: float | None = None,
              adjust: Callable[[list[Tick], list[Verdict]], None] | None = None) -> Judged:
        """Judge ticks that arrived together. ``silences`` in force (with ``wall``, judged at
        that wall time; see ``RuleEngine.set_silences``); ``adjust(ticks, verdicts)`` may change
        the verdicts before the rules see them (rule tests that give scores by hand)."""
        current = [tick for tick in ticks if not self._late(tick)]
        # The stack and the rules take and give plain dicts: these are their contracts' shapes.
        verdicts = (cast(list[Verdict], self.stack.process_batch(cast(list[dict], current)))
                    if self.stack is not None else [blank_verdict() for _ in current])
        if adjust is not None:
            adjust(current, verdicts)
        judged = {id(tick): verdict for tick, verdict in zip(current, verdicts)}
        result = Judged([judged.get(id(tick)) or late_verdict() for tick in ticks], [])
        for tick, verdict in zip(ticks, result.verdicts):
            series = (tick["commodity"], tick["market"])
            self.provinces[series] = tick.get("province", "")
            is_newest = not verdict.get("late") and tick["ts"] >= self.latest_ts.get(series, float("-inf"))
            result.newest.append(is_newest)
            if is_newest:
                self.last_price[series] = tick["price"]
            result.errors.extend((f"detector:{name}", error) for name, error in (verdict.get("errors") or {}).items())
        if current:
            if silences is not None:
                self.rules.set_silences(silences, wall)
            result.alerts = self.rules.on_batch(current, verdicts)
            past = {(t["commodity"], t["market"], t["ts"]) for t in current if t.get("backfill")}
            for event in result.alerts:
                if (event["commodity"], event["market"], event["ts"]) in past:
                    # Raised by imported history: recorded and shown, never told as news.
                    self.rules.keep_quiet(cast(dict, event))
            result.errors.extend((f"rule:{rule}", error) for rule, error in self.rules.take_errors())
        return result

    def sweep(self, now: float | Callable[[Series], float], silences: list[dict] | None = None,
              wall: float | None = None, event_now: float | None = None) -> Swept:
        """Feed health at ``now`` (one time, or each series' own), the health rules over what
        changed, and (with ``event_now``) firing alerts whose silence or inhibition has lifted."""
        if silences is not None:
            self.rules.set_silences(silences, wall)
        swept = Swept()
        for change in self.stack.sweep(now) if self.stack is not None else ():
            series = (change["commodity"], change["market"])
            swept.health.append({"type": "health", **change, "province": self.provinces.get(series, ""),
                                 "price": self.last_price.get(series)})
        if swept.health:
            swept.alerts.extend(self.rules.on_health_batch(swept.health))
        if event_now is not None:
            swept.alerts.extend(self.rules.recheck_muted(event_now))
        swept.errors.extend((f"rule:{rule}", error) for rule, error in self.rules.take_errors())
        return swept

    def _late(self, tick: Tick) -> bool:
        """Whether ``tick`` is older than its series' newest by more than the allowed lateness.
        The newest moves as the batch is read, so a batch out of order is judged in order."""
        series = (tick["commodity"], tick["market"])
        newest = self.latest_ts.get(series, float("-inf"))
        if tick["ts"] < newest - self.allowed_lateness:
            return True
        self.latest_ts[series] = max(newest, tick["ts"])
        return False
