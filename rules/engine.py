"""Turn verdicts into alert events: the alert lifecycle, per rule and series, without I/O.

An alert's identity is ``rule/commodity/market`` (never the value). It fires once its
condition has held for ``for`` (ticks, or a duration), is not repeated while it keeps firing,
and resolves once the condition has been false for ``keep_firing_for``.

>>> from rules.catalog import load_catalog
>>> from rules.loader import parse_rule_text
>>> rules = parse_rule_text('''
... rules:
...   - name: lonjakan
...     when: zscore.fired
...     for: 2
...     keep_firing_for: 2
... ''', "example.yaml", load_catalog(), {"zscore"})
>>> engine = RuleEngine(rules)
>>> tick = {"commodity": "bawang-merah", "market": "pasar-kosambi", "province": "32", "price": 90000.0}
>>> spike = {"scores": {"zscore": 6.0}, "fired": ["zscore"], "reasons": {}, "expected": None}
>>> calm = {"scores": {"zscore": 0.5}, "fired": [], "reasons": {}, "expected": None}
>>> [e["state"] for t in range(1, 7)
...  for e in engine.on_tick({**tick, "ts": float(t)}, spike if t in (1, 2, 3) else calm)]
['firing', 'resolved']
"""
from __future__ import annotations

from dataclasses import dataclass

from rules.loader import Rule, RuleSet


@dataclass
class AlertState:
    """Where one rule stands on one series; pickled into the engine's checkpoint."""

    true_ticks: int = 0
    true_since: float | None = None
    false_ticks: int = 0
    false_since: float | None = None
    firing: bool = False
    started_at: float | None = None
    first_price: float | None = None
    event: dict | None = None  # the firing event, so a resolution can refer to it


class RuleEngine:
    def __init__(self, ruleset: RuleSet):
        self.ruleset = ruleset
        self.states: dict[str, AlertState] = {}
        self.dirty: set[str] = set()

    def swap(self, ruleset: RuleSet, now: float) -> list[dict]:
        """Put a new rule set in force; alerts of rules that no longer exist are resolved."""
        kept = {rule.name for rule in ruleset.rules}
        events = []
        for key, state in list(self.states.items()):
            if key.split("/", 1)[0] in kept:
                continue
            if state.firing and state.event is not None:
                events.append({**state.event, "state": "resolved", "resolved_at": now,
                               "resolved_reason": "rule removed"})
            del self.states[key]
            self.dirty.add(key)
        self.ruleset = ruleset
        return events

    def on_tick(self, tick: dict, verdict: dict) -> list[dict]:
        expected = verdict.get("expected") or {}
        level = expected.get("level")
        context = {
            "price": tick["price"],
            "quarantined": bool(verdict.get("quarantined")),
            "fired_count": len(verdict.get("fired") or ()),
            "change": tick["price"] / level - 1.0 if level else 0.0,
            "stale": False,
            "age": 0.0,
        }
        return self._evaluate("tick", tick, verdict, context)

    def on_health(self, health: dict) -> list[dict]:
        """Feed-health signal for a series: {commodity, market, province, state, age, ts, price}."""
        context = {
            "price": health.get("price") or 0.0,
            "quarantined": False,
            "fired_count": 0,
            "change": 0.0,
            "stale": health["state"] == "stale",
            "age": health.get("age") or 0.0,
        }
        verdict = {"scores": {}, "fired": [], "reasons": {}, "expected": None}
        return self._evaluate("health", health, verdict, context)

    def firing(self) -> list[dict]:
        return [state.event for state in self.states.values() if state.firing and state.event]

    def _evaluate(self, kind: str, tick: dict, verdict: dict, context: dict) -> list[dict]:
        events = []
        commodity, market, province = tick["commodity"], tick["market"], tick.get("province", "")
        for rule in self.ruleset.rules:
            if rule.kind != kind or not rule.scope.matches(commodity, province, market):
                continue
            key = f"{rule.name}/{commodity}/{market}"
            state = self.states.get(key)
            holds = rule.when.evaluate(verdict, context)
            if state is None:
                if not holds:
                    continue  # nothing to remember for a series that never met the rule
                state = self.states[key] = AlertState()
            self.dirty.add(key)
            event = _step(rule, key, state, holds, tick, verdict)
            if event is not None:
                events.append(event)
            if not state.firing and state.true_ticks == 0:
                del self.states[key]
        return events


def _step(rule: Rule, key: str, state: AlertState, holds: bool, tick: dict, verdict: dict) -> dict | None:
    ts = tick["ts"]
    if holds:
        state.false_ticks, state.false_since = 0, None
        if state.true_ticks == 0:
            state.true_since = ts
            state.first_price = tick.get("price")
        state.true_ticks += 1
        if state.firing:
            return None
        if state.true_ticks >= rule.for_ticks and ts - (state.true_since or ts) >= rule.for_seconds:
            state.firing = True
            state.started_at = state.true_since
            state.event = _alert_event(rule, key, "firing", tick, verdict, state)
            return state.event
        return None
    state.true_ticks, state.true_since = 0, None
    if not state.firing:
        return None
    if state.false_ticks == 0:
        state.false_since = ts
    state.false_ticks += 1
    if state.false_ticks >= rule.keep_ticks and ts - (state.false_since or ts) >= rule.keep_seconds:
        event = _alert_event(rule, key, "resolved", tick, verdict, state)
        state.firing, state.event, state.false_ticks, state.false_since = False, None, 0, None
        return event
    return None


def _alert_event(rule: Rule, key: str, state_name: str, tick: dict, verdict: dict, state: AlertState) -> dict:
    firing_event = state.event or {}
    resolved = state_name == "resolved"
    return {
        "type": "alert",
        "key": key,
        "rule": rule.name,
        "state": state_name,
        "severity": rule.severity,
        "summary": rule.summary,
        "commodity": tick["commodity"],
        "market": tick["market"],
        "province": tick.get("province", ""),
        "price": tick.get("price"),
        "fired_price": firing_event.get("price", tick.get("price")) if resolved else tick.get("price"),
        "ts": tick["ts"],
        "started_at": state.started_at,
        "resolved_at": tick["ts"] if resolved else None,
        "duration": tick["ts"] - state.started_at if resolved and state.started_at is not None else None,
        "expected": verdict.get("expected") or firing_event.get("expected"),
        "detectors": list(firing_event.get("detectors", [])) if resolved else list(verdict.get("fired") or []),
        "reasons": dict(firing_event.get("reasons", {})) if resolved else dict(verdict.get("reasons") or {}),
        "quarantined": bool(verdict.get("quarantined")),
        "routes": rule.routes.as_json(),
    }
