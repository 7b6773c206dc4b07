"""Where one rule stands on one series, and one observation's step of it, without I/O.

An alert's state is a ladder of rungs (a rule without ``levels`` has one), each entered once its
condition has held for ``for`` (ticks, or a duration) and left once it has been false for
``keep_firing_for``; ``advance`` moves every rung by one observation and says which transition
the alert made. The state is what the engine checkpoints per rule and series
(rules/checkpoint.py registers it).

>>> from base.catalog import load_catalog
>>> from rules.loader import parse_rule_text
>>> rule = parse_rule_text('''
... rules:
...   - name: lonjakan
...     when: zscore.fired
...     for: 2
... ''', "example.yaml", load_catalog(), {"zscore"}).rules[0]
>>> state = AlertState()
>>> [advance(rule, state, True, None, {"ts": float(t), "price": 90000.0}) for t in (1, 2, 3)]
[None, 'fired', None]
>>> state.firing, state.started_at
(True, 1.0)
"""
from __future__ import annotations

from dataclasses import dataclass, field

from rules.model import Rule

MAX_SOURCES = 4  # distinct sources remembered per alert: two confirm, a few more are history


@dataclass
class RungState:
    true_ticks: int = 0
    true_since: float | None = None
    false_ticks: int = 0
    false_since: float | None = None
    active: bool = False


@dataclass
class AlertState:
    """Where one rule stands on one series; encoded into the engine's checkpoint (rules/checkpoint.py)."""

    rungs: list[RungState] = field(default_factory=list)
    top: int = -1  # highest entered rung, -1 when not firing
    started_at: float | None = None
    fired_price: float | None = None
    fired_value: float | None = None
    peak_price: float | None = None
    peak_value: float | None = None
    event: dict | None = None  # the latest firing event (what pw:firing holds)
    notified: bool = False  # someone was told this alert fired
    last_notified: float | None = None
    awaiting: bool = False  # its current rung needs a confirmation nobody has given yet
    sources: list[str] = field(default_factory=list)  # sources whose ticks met the condition

    @property
    def firing(self) -> bool:
        return self.top >= 0

    def __setstate__(self, saved: dict) -> None:
        if "rungs" not in saved:  # a checkpoint from before ladders: one rung
            rung = RungState(saved.get("true_ticks", 0), saved.get("true_since"), saved.get("false_ticks", 0),
                             saved.get("false_since"), bool(saved.get("firing")))
            saved = {"rungs": [rung], "top": 0 if rung.active else -1, "started_at": saved.get("started_at"),
                     "fired_price": saved.get("first_price"), "event": saved.get("event"),
                     "notified": bool(saved.get("firing"))}
        self.__dict__.update(AlertState().__dict__)
        self.__dict__.update(saved)


def note_source(state: AlertState, tick: dict, transition: str | None) -> None:
    """Remember which sources' ticks met the rule while it is pending or firing."""
    if transition == "resolved":
        state.sources = []
        return
    # The authenticated device, not the client-written ``source``: one device cannot confirm
    # its own alert by inventing a second source name (ticks without a device: replays, tests).
    source = tick.get("device") or tick.get("source")
    holds = any(rs.true_ticks for rs in state.rungs)
    if holds and source and source not in state.sources and len(state.sources) < MAX_SOURCES:
        state.sources.append(source)


def advance(rule: Rule, state: AlertState, gate: bool, value: float | None, tick: dict) -> str | None:
    """Advance every rung of ``rule`` by one observation; the transition it makes, if any."""
    ts = tick["ts"]
    if len(state.rungs) != len(rule.rungs):  # the rule's ladder changed on reload
        state.rungs = (state.rungs + [RungState() for _ in rule.rungs])[:len(rule.rungs)]
    for rung, rs in zip(rule.rungs, state.rungs):
        bound = rung.exit if rs.active else rung.enter
        if rung.enter is None or value is None or bound is None:
            holds = gate
        else:
            holds = gate and value >= bound
        if holds:
            rs.false_ticks, rs.false_since = 0, None
            if rs.true_ticks == 0:
                rs.true_since = ts
            rs.true_ticks += 1
            if not rs.active and rs.true_ticks >= rung.for_ticks and ts - rs.true_since >= rung.for_seconds:
                rs.active = True
        else:
            rs.true_ticks, rs.true_since = 0, None
            if rs.active:
                if rs.false_ticks == 0:
                    rs.false_since = ts
                rs.false_ticks += 1
                if rs.false_ticks >= rung.keep_ticks and ts - rs.false_since >= rung.keep_seconds:
                    rs.active, rs.false_ticks, rs.false_since = False, 0, None
    old, new = state.top, max((i for i, rs in enumerate(state.rungs) if rs.active), default=-1)
    state.top = new
    price = tick.get("price")
    if new >= 0:
        if old < 0:
            starts = [rs.true_since for rs in state.rungs if rs.active and rs.true_since is not None]
            state.started_at = min(starts) if starts else ts
            state.fired_price, state.fired_value = price, value
            state.peak_price = state.peak_value = None
        state.peak_price = _max(state.peak_price, price)
        state.peak_value = _max(state.peak_value, value)
    if old == new:
        return None
    if old < 0:
        return "fired"
    if new < 0:
        return "resolved"
    return "escalated" if new > old else "deescalated"


def _max(current: float | None, value: float | None) -> float | None:
    if not isinstance(value, (int, float)):
        return current
    return value if current is None else max(current, value)
