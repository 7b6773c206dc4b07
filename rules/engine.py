"""Turn verdicts into alert events: the alert lifecycle, per rule and series, without I/O.

An alert's identity is ``rule/commodity/market`` (never the value). Each rung of a rule's
ladder (a rule without ``levels`` has one) is entered once its condition has held for ``for``
(ticks, or a duration) and left once it has been false for ``keep_firing_for``; a rung is
entered at its ``enter`` level and left below its ``exit`` level. The alert fires when its
first rung is entered, changes severity (``escalated`` / ``deescalated``, still firing, same
key) when its highest entered rung changes, and resolves when no rung is left.

Every event is then checked against inhibition rules and silences and routed (see
``rules.routing``); a muted event carries ``notify: false`` and no routes. An alert that
nobody was told of resolves without notification, and is notified (``unmuted``) on a later
tick if it is still firing once the mute has lifted.

A rule with ``confirm: SEVERITY`` tells nobody of its rungs at or above that severity until a
second, independent observation agrees: the same rule firing for the same commodity at
another market of the province, or the condition held by ticks from a second source on the
same series. Until then its events carry ``awaiting_confirmation`` and no routes (a forged or
mistyped tick from one device cannot raise a province-wide alarm); when the confirmation
comes, a ``confirmed`` event is routed. An alert that resolves unconfirmed was never told.

>>> from base.catalog import load_catalog
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
>>> [e["transition"] for t in range(1, 7)
...  for e in engine.on_tick({**tick, "ts": float(t)}, spike if t in (1, 2, 3) else calm)]
['fired', 'resolved']
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from base.contracts import AlertEvent, Tick, Verdict
from base.failures import describe_error
from rules.events import build_event
from rules.expressions import TickScope
from rules.inhibition import FiringIndex
from rules.lifecycle import AlertState, advance, note_source
from rules.model import SEVERITIES, Routes, Rule, RuleSet
from rules.routing import DEFAULT_GROUP_INTERVAL, DEFAULT_GROUP_WAIT, Receiver, routes_json
from rules.silences import is_silenced

HEALTH_FLAGS = {"stale": "stale", "no_data": "no_data", "error": "detector_error"}
MAX_SCOPED = 100_000  # series whose applicable rules are remembered (then the memo starts over)
MAX_ERRORS = 1_000  # rule failures kept between two take_errors calls (the rest are dropped)


@dataclass
class _Step:
    rule: Rule
    key: str
    state: AlertState
    tick: dict
    verdict: dict
    value: float | None
    event: dict | None


class RuleEngine:
    def __init__(self, ruleset: RuleSet):
        self.states: dict[str, AlertState] = {}
        self.dirty: set[str] = set()
        self.silences: list[dict] = []
        self._silence_wall: float | None = None
        self.errors: list[tuple[str, str]] = []
        self._use(ruleset)

    def _use(self, ruleset: RuleSet) -> None:
        self.ruleset = ruleset
        self._by_name = ruleset.by_name()
        self._repeats = ruleset.router.has_repeat()
        # Scopes are globs: matching them for every rule on every tick cost more than the
        # conditions did, and a series' applicable rules only change with the rule set.
        self._scoped: dict[tuple[str, str, str, str], tuple[Rule, ...]] = {}

    def _rules_for(self, kind: str, commodity: str, province: str, market: str) -> tuple[Rule, ...]:
        key = (kind, commodity, province, market)
        rules = self._scoped.get(key)
        if rules is None:
            if len(self._scoped) >= MAX_SCOPED:
                self._scoped.clear()
            rules = self._scoped[key] = tuple(
                rule for rule in self.ruleset.rules
                if rule.kind == kind and rule.scope.matches(commodity, province, market))
        return rules

    def set_silences(self, silences: list[dict], wall: float | None = None) -> None:
        """The silences in force (``stores.silences.active_silences``); call once per batch.

        Silences are an operator's wall-clock intent ("mute this for 2 hours from now"): with
        ``wall``, they are judged at that time, whatever time the ticks carry (a replay of 2024
        prices is silenced by a silence made today). Without it (offline rule tests and
        backtests, where silences are written in the data's own time) at the tick's time."""
        self.silences = list(silences)
        self._silence_wall = wall

    def swap(self, ruleset: RuleSet, now: float) -> list[AlertEvent]:
        """Put a new rule set in force; alerts of rules that no longer exist are resolved."""
        old = self._by_name
        kept = {rule.name for rule in ruleset.rules}
        steps = []
        for key, state in list(self.states.items()):
            name = key.split("/", 1)[0]
            if name in kept:
                continue
            if state.firing and state.event is not None and name in old:
                tick = {**state.event, "ts": now}
                state.top = -1
                event = build_event(old[name], key, "resolved", tick, {}, state, state.event.get("value"),
                                    self.ruleset.names)
                event["resolved_reason"] = "rule removed"
                steps.append(_Step(old[name], key, state, tick, {}, None, event))
            del self.states[key]
            self.dirty.add(key)
        events = self._finish(steps)  # routed as the rules that raised them were
        self._use(ruleset)
        return events

    def on_tick(self, tick: Tick | dict, verdict: Verdict | dict) -> list[AlertEvent]:
        return self.on_batch([tick], [verdict])

    def on_batch(self, ticks: Sequence[Tick | dict], verdicts: Sequence[Verdict | dict]) -> list[AlertEvent]:
        """Like ``on_tick`` for each pair, but inhibition sees every alert of the batch: a crisis
        raised by a later tick of the same batch still mutes a warning raised by an earlier one."""
        steps: list[_Step] = []
        for tick, verdict in zip(cast(Sequence[dict], ticks), cast(Sequence[dict], verdicts)):  # read as plain data
            steps.extend(self._evaluate("tick", tick, verdict, _tick_context(tick, verdict)))
        return self._finish(steps)

    def on_health(self, health: dict) -> list[AlertEvent]:
        """Feed-health signal for a series: {commodity, market, province, state, age, ts, price};
        ``state`` is ok, stale, no_data or error (a detector failed)."""
        return self.on_health_batch([health])

    def on_health_batch(self, healths: list[dict]) -> list[AlertEvent]:
        """``on_health`` for the changes of one sweep, finished together: thousands of feeds
        going stale at once cost one pass over the firing alerts, not one per feed."""
        steps: list[_Step] = []
        for health in healths:
            steps.extend(self._evaluate("health", health, *_health_inputs(health)))
        return self._finish(steps)

    def firing(self) -> list[dict]:
        return [state.event for state in self.states.values() if state.firing and state.event]

    def keep_quiet(self, event: dict) -> None:
        """Record ``event`` without telling anyone: it was raised by history being imported,
        not by news. If its alert is still firing when live ticks come, it is told then
        (``unmuted``), as a muted alert is."""
        _mark(event, [], [], None)
        event["backfill"] = True
        state = self.states.get(event["key"])
        if state is not None and state.event is event:
            state.notified, state.last_notified = False, None

    def recheck_muted(self, now: float) -> list[AlertEvent]:
        """Firing alerts nobody was told of because a silence or an inhibition muted them, told
        now (``unmuted``) if that mute has lifted: a silence deleted or expired, the inhibiting
        alert resolved. Without this they would wait for their series' next tick, a day later
        for daily prices. Cheap to call often: only alerts whose recorded mute is gone are
        evaluated again."""
        live_silences = {silence.get("id") for silence in self.silences}
        steps = []
        for key, state in self.states.items():
            event = state.event
            if not state.firing or state.notified or state.awaiting or event is None:
                continue
            silence, inhibitors = event.get("silenced_by"), event.get("inhibited_by") or ()
            lifted = (silence is not None and silence not in live_silences) or any(
                not self._still_firing(other) for other in inhibitors)
            rule = self._by_name.get(event.get("rule", ""))
            if not lifted or rule is None:
                continue
            tick = {"commodity": event["commodity"], "market": event["market"],
                    "province": event.get("province", ""), "price": event.get("price"), "ts": now}
            verdict = {"scores": {}, "fired": list(event.get("detectors") or ()),
                       "reasons": dict(event.get("reasons") or {}), "expected": event.get("expected"),
                       "quarantined": bool(event.get("quarantined"))}
            steps.append(_Step(rule, key, state, tick, verdict, event.get("value"), None))
        return self._finish(steps) if steps else []

    def _still_firing(self, key: str) -> bool:
        state = self.states.get(key)
        return state is not None and state.firing

    def route(self, event: dict, now: float) -> list[Receiver]:
        """Who ``event`` goes to at ``now``: the routing tree, plus the rule's own ``routes``."""
        rule = self._by_name.get(event.get("rule", ""))
        return _receivers(self.ruleset, rule, event, now)

    # -- evaluation -------------------------------------------------------------------------

    def _evaluate(self, kind: str, tick: dict, verdict: dict, context: dict) -> list[_Step]:
        steps = []
        commodity, market, province = tick["commodity"], tick["market"], tick.get("province", "")
        scope = TickScope(verdict, context)
        for rule in self._rules_for(kind, commodity, province, market):
            key = f"{rule.name}/{commodity}/{market}"
            state = self.states.get(key)
            try:
                gate = rule.when.holds(scope) if rule.when is not None else True
                value = rule.value.number_in(scope) if rule.value is not None else None
            except Exception as exc:  # noqa: BLE001 - one rule's failure must not stop the others
                self._failed(rule.name, exc)
                continue  # this rule's state stays as it was: the tick is not evidence either way
            if state is None:
                enter = rule.rungs[0].enter
                if not gate or (value is not None and enter is not None and value < enter):
                    continue  # nothing to remember for a series that never met the rule
                state = self.states[key] = AlertState()
            self.dirty.add(key)
            transition = advance(rule, state, gate, value, tick)
            note_source(state, tick, transition)
            event = None
            if transition is not None:
                event = self._build(rule, key, transition, tick, verdict, state, value)
            steps.append(_Step(rule, key, state, tick, verdict, value, event))
            if not state.firing:
                state.event = None
                if not any(r.true_ticks or r.active for r in state.rungs):
                    del self.states[key]
            elif event is not None:
                state.event = event
        return steps

    def _build(self, rule: Rule, key: str, transition: str, tick: dict, verdict: dict, state: AlertState,
               value: float | None) -> dict:
        """The event; if the rule's message cannot be rendered, the event still goes out with
        its summary as the message (the alert itself must not be lost to a template)."""
        try:
            return build_event(rule, key, transition, tick, verdict, state, value, self.ruleset.names)
        except Exception as exc:  # noqa: BLE001
            self._failed(rule.name, exc)
            return build_event(rule, key, transition, tick, verdict, state, value, self.ruleset.names,
                               use_template=False)

    def _failed(self, rule: str, exc: Exception) -> None:
        if len(self.errors) < MAX_ERRORS:
            self.errors.append((rule, describe_error(exc)))

    def take_errors(self) -> list[tuple[str, str]]:
        """Rule failures since the last call, ``(rule name, error)``: the engine counts and logs them."""
        errors, self.errors = self.errors, []
        return errors

    def _finish(self, steps: list[_Step]) -> list[AlertEvent]:
        """Inhibition, silences and routing for what the steps raised, at the end of a batch."""
        firing = self.firing()
        index = FiringIndex(firing, self.ruleset.inhibit)
        markets = _FiringMarkets(firing)
        events = []
        for step in steps:
            event, state = step.event, step.state
            now = step.tick["ts"]
            if event is None:
                event = self._reminder(step, markets, index, now)
                if event is None:
                    continue
            elif event["state"] == "resolved":
                silence = self._silenced(event, now)
                receivers = self.route(event, now) if state.notified and silence is None else []
                _mark(event, receivers, [], silence)
                state.notified, state.last_notified, state.awaiting = False, None, False
            elif _unconfirmed(step, markets):
                _mark(event, [], [], None)
                event["awaiting_confirmation"] = state.awaiting = True
            else:
                receivers, inhibited, silence = self._deliveries(event, index, now)
                if _mark(event, receivers, inhibited, silence):
                    state.notified, state.last_notified, state.awaiting = True, now, False
            events.append(event)
        return cast(list[AlertEvent], events)  # build_event makes every field an AlertEvent names

    def _deliveries(self, event: dict, index: FiringIndex, now: float) -> tuple[list[Receiver], list[str], dict | None]:
        inhibited = index.inhibitors(event)
        silence = self._silenced(event, now)
        receivers = [] if inhibited or silence else self.route(event, now)
        return receivers, inhibited, silence

    def _silenced(self, event: dict, now: float) -> dict | None:
        return is_silenced(event, self.silences, now if self._silence_wall is None else self._silence_wall)

    def _reminder(self, step: _Step, firing: _FiringMarkets, index: FiringIndex, now: float) -> dict | None:
        """``confirmed`` once a held alert is confirmed, ``unmuted`` for a firing alert nobody
        heard of, ``repeated`` after repeat_interval."""
        state = step.state
        if not state.firing or state.event is None or not state.rungs[state.top].true_ticks:
            return None  # not firing, or only in its keep_firing_for grace: nothing new to tell
        if state.awaiting:
            transition = "confirmed"
        elif state.notified:
            transition = "repeated"
        else:
            transition = "unmuted"
        if (transition == "repeated" and not self._repeats) or _unconfirmed(step, firing):
            return None
        candidate = self._build(step.rule, step.key, transition, step.tick, step.verdict, state, step.value)
        receivers, inhibited, silence = self._deliveries(candidate, index, now)
        if transition == "repeated":
            elapsed = now - (state.last_notified or now)
            receivers = [r for r in receivers if r.repeat_interval and elapsed >= r.repeat_interval]
        if not _mark(candidate, receivers, inhibited, silence):
            return None
        state.notified, state.last_notified, state.event, state.awaiting = True, now, candidate, False
        self.dirty.add(step.key)
        return candidate


def _unconfirmed(step: _Step, firing: _FiringMarkets) -> bool:
    """True while the alert's current rung needs a confirmation it does not have."""
    rule, state, tick = step.rule, step.state, step.tick
    if rule.confirm is None or state.top < 0:
        return False
    if SEVERITIES.index(rule.rungs[state.top].severity) < SEVERITIES.index(rule.confirm):
        return False
    if len(state.sources) >= 2:
        return False
    return not firing.elsewhere(rule.name, tick)


class _FiringMarkets:
    """The markets where each (rule, commodity, province) fires, built on first use per batch:
    a confirmation looks up one entry instead of scanning every firing alert."""

    def __init__(self, firing: list[dict]):
        self._firing = firing
        self._markets: dict[tuple[str, str, str], set[str]] | None = None

    def elsewhere(self, rule: str, tick: dict) -> bool:
        """Whether ``rule`` fires for the tick's commodity at another market of its province."""
        if self._markets is None:
            self._markets = {}
            for event in self._firing:
                group = (event["rule"], event["commodity"], event.get("province", ""))
                self._markets.setdefault(group, set()).add(event["market"])
        markets = self._markets.get((rule, tick["commodity"], tick.get("province", "")), ())
        return any(market != tick["market"] for market in markets)


def _health_inputs(health: dict) -> tuple[dict, dict]:
    """The verdict and context a feed-health rule is evaluated on."""
    context = {
        "price": health.get("price") or 0.0, "quarantined": False, "fired_count": 0, "change": 0.0,
        "expected_level": 0.0, "expected_lo": 0.0, "expected_hi": 0.0,
        "age": health.get("age") or 0.0,
        **{name: health.get("state") == state for state, name in HEALTH_FLAGS.items()},
    }
    return {"scores": {}, "fired": [], "reasons": {}, "expected": None}, context


def _tick_context(tick: dict, verdict: dict) -> dict:
    expected = verdict.get("expected") or {}
    level = expected.get("level")
    return {
        "price": tick["price"],
        "quarantined": bool(verdict.get("quarantined")),
        "fired_count": len(verdict.get("fired") or ()),
        "change": tick["price"] / level - 1.0 if level else 0.0,
        "expected_level": level or 0.0,
        "expected_lo": expected.get("lo") or 0.0,
        "expected_hi": expected.get("hi") or 0.0,
        "stale": False, "no_data": False, "detector_error": bool(verdict.get("errors")),
        "age": 0.0,
    }


def _receivers(ruleset: RuleSet, rule: Rule | None, event: dict, now: float) -> list[Receiver]:
    receivers = ruleset.router.route(event, now)
    own = rule.routes if rule is not None else None
    if own is None and ruleset.router.root is None:
        own = Routes()  # no routing tree anywhere: the rule's subscribers, as before trees existed
    if own is not None:
        config = own.receiver(event["rule"])
        receivers.append(Receiver(config.name, "rule", config.telegram, config.topics,
                                  f"rule:{event['key']}", (), DEFAULT_GROUP_WAIT, DEFAULT_GROUP_INTERVAL, None))
    return receivers


def _mark(event: dict, receivers: list[Receiver], inhibited: list[str], silence: dict | None) -> bool:
    """Put the routing outcome into the event; True when it reaches someone."""
    event["routes"] = routes_json(receivers)
    event["awaiting_confirmation"] = False
    event["inhibited_by"] = inhibited
    event["silenced_by"] = silence["id"] if silence else None
    event["notify"] = any(r.telegram or r.topics for r in receivers)
    return event["notify"]
