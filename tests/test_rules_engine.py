"""The rule engine's alert lifecycle: ladders, hysteresis, for/keep_firing_for, state, reloads."""
from __future__ import annotations

import pickle

from base.catalog import load_catalog
from rules.engine import RuleEngine
from rules.lifecycle import AlertState
from rules.loader import parse_rule_text

CATALOG = load_catalog()
TICK = {"commodity": "bawang-merah", "market": "pasar-kosambi", "province": "32", "price": 38000.0}
LADDER = """
rules:
  - name: mahal
    value: crossmarket.score
    levels:
      - {level: waspada, severity: info, enter: 4, exit: 3}
      - {level: siaga, severity: warning, enter: 6, exit: 5}
      - {level: awas, severity: critical, enter: 9, exit: 7, for: 1}
    for: 2
    keep_firing_for: 2
    message:
      firing: "{level} {value:.1f} mulai {fired_value:.1f}"
      resolved: "selesai, puncak {peak_value:.1f}, harga {price_rp} (mulai {fired_price_rp})"
"""


def engine(text: str = LADDER) -> RuleEngine:
    return RuleEngine(parse_rule_text(text, "t.yaml", CATALOG, {"crossmarket", "zscore"}))


def verdict(score: float) -> dict:
    return {"scores": {"crossmarket": score}, "fired": ["crossmarket"] if score >= 4 else [], "reasons": {},
            "expected": None}


def run(rules: RuleEngine, scores: list[float], start: int = 0, price=None) -> list[tuple[int, str, str]]:
    out = []
    for step, score in enumerate(scores, start):
        tick = {**TICK, "ts": step * 86400.0, "price": price[step] if price else TICK["price"]}
        out.extend((step, e["transition"], e["level"]) for e in rules.on_tick(tick, verdict(score)))
    return out


def test_a_ladder_climbs_and_falls_as_one_alert_with_severity_change_events():
    rules = engine()
    events = run(rules, [5, 5, 7, 7, 10, 8, 6.5, 6.5, 4.5, 4.5, 3.5, 1, 1])
    assert events == [(1, "fired", "waspada"), (3, "escalated", "siaga"), (4, "escalated", "awas"),
                      (7, "deescalated", "siaga"), (9, "deescalated", "waspada"), (12, "resolved", "waspada")]


def test_a_jump_straight_to_the_top_fires_at_the_top_rung_after_its_own_for():
    # awas has `for: 1`: it fires on the first report, the lower rungs never get a say
    assert run(engine(), [0, 12, 12]) == [(1, "fired", "awas")]
    assert run(engine(), [0, 8, 8, 8]) == [(2, "fired", "siaga")]


def test_severity_changes_carry_the_previous_rung_and_keep_the_start():
    rules = engine()
    tick = {**TICK, "price": 38000.0}
    events = [e for step, s in enumerate([5, 5, 7, 7]) for e in rules.on_tick({**tick, "ts": step * 86400.0}, verdict(s))]
    fired, escalated = events
    assert escalated["state"] == "firing" and escalated["key"] == fired["key"] == "mahal/bawang-merah/pasar-kosambi"
    assert (escalated["severity"], escalated["previous_severity"], escalated["previous_level"]) == ("warning", "info", "waspada")
    assert escalated["started_at"] == fired["started_at"] == 0.0
    assert escalated["message"] == "siaga 7.0 mulai 5.0"


def test_the_resolution_message_names_values_at_firing_and_at_resolution():
    rules = engine()
    prices = [38000.0, 41000.0, 52000.0, 45000.0, 39000.0, 38500.0]
    resolved = [e for step, (s, p) in enumerate(zip([5, 5, 7, 2, 2, 2], prices))
                for e in rules.on_tick({**TICK, "ts": step * 86400.0, "price": p}, verdict(s))
                if e["state"] == "resolved"]
    assert resolved[0]["message"] == "selesai, puncak 7.0, harga Rp 39.000 (mulai Rp 41.000)"
    assert (resolved[0]["fired_price"], resolved[0]["peak_price"], resolved[0]["price"]) == (41000.0, 52000.0, 39000.0)


def test_hovering_between_exit_and_enter_does_not_flap():
    events = run(engine(), [4.5, 4.5, 3.2, 4.4, 3.1, 4.9, 3.3, 2, 2])
    assert events == [(1, "fired", "waspada"), (8, "resolved", "waspada")]


def test_for_and_keep_firing_for_in_time_count_time_not_ticks():
    rules = engine("""
rules:
  - name: lonjakan
    when: zscore.fired
    for: 2d
    keep_firing_for: 12h
""")
    spike = {"scores": {"zscore": 6.0}, "fired": ["zscore"], "reasons": {}, "expected": None}
    calm = {"scores": {}, "fired": [], "reasons": {}, "expected": None}
    hour = 3600.0
    seen = []
    for ts, v in [(0, spike), (6 * hour, spike), (47 * hour, spike), (48 * hour, spike), (50 * hour, calm),
                  (61 * hour, calm), (62 * hour, calm)]:
        seen.extend((ts / hour, e["transition"]) for e in rules.on_tick({**TICK, "ts": ts}, v))
    assert seen == [(48.0, "fired"), (62.0, "resolved")]


def test_rule_state_survives_a_pickle_round_trip_mid_ladder():
    rules = engine()
    run(rules, [5, 5, 7])
    restored = engine()
    restored.states = pickle.loads(pickle.dumps(rules.states))
    assert run(restored, [7], start=3) == [(3, "escalated", "siaga")]
    assert run(rules, [7], start=3) == [(3, "escalated", "siaga")]


def test_a_checkpoint_from_before_ladders_restores_as_a_firing_one_rung_alert():
    old = AlertState.__new__(AlertState)
    old_fields = {"true_ticks": 3, "true_since": 0.0, "false_ticks": 0, "false_since": None, "firing": True,
                  "started_at": 0.0, "first_price": 38000.0, "event": {"key": "k", "level": "warning"}}
    old.__setstate__(old_fields)
    assert old.firing and old.top == 0 and old.rungs[0].active and old.notified and old.fired_price == 38000.0


def test_removing_a_rule_resolves_its_alerts_and_tells_who_heard_them():
    rules = engine()
    run(rules, [5, 5])
    events = rules.swap(parse_rule_text("rules: []\n", "t.yaml", CATALOG, set()), now=10 * 86400.0)
    assert [(e["transition"], e["resolved_reason"], e["notify"]) for e in events] == [("resolved", "rule removed", True)]
    assert rules.states == {}


def test_reloading_a_rule_with_a_different_ladder_keeps_the_alert():
    rules = engine()
    run(rules, [5, 5, 7, 7])
    shorter = engine(LADDER.replace("      - {level: awas, severity: critical, enter: 9, exit: 7, for: 1}\n", "")
                     .replace("      - {level: siaga, severity: warning, enter: 6, exit: 5}\n", "")).ruleset
    rules.swap(shorter, now=4 * 86400.0)
    assert run(rules, [7, 1, 1], start=4) == [(4, "deescalated", "waspada"), (6, "resolved", "waspada")]


def test_a_batch_sees_the_inhibiting_alert_raised_later_in_the_same_batch():
    text = """
rules:
  - name: naik
    when: zscore.fired
    severity: warning
  - name: krisis
    scope: {market: pasar-kosambi}
    when: crossmarket.score >= 9
    severity: critical
inhibit:
  - source: ['severity="critical"']
    target: ['severity="warning"']
    equal: [commodity]
"""
    both = {"scores": {"zscore": 6.0, "crossmarket": 10.0}, "fired": ["zscore"], "reasons": {}, "expected": None}
    other = {**TICK, "market": "pasar-agung", "ts": 0.0}
    batched = engine(text).on_batch([other, {**TICK, "ts": 0.0}], [both, both])
    assert {(e["rule"], e["market"], bool(e["inhibited_by"])) for e in batched} == {
        ("naik", "pasar-agung", True), ("naik", "pasar-kosambi", True), ("krisis", "pasar-kosambi", False)}
    one_by_one = engine(text)
    first = one_by_one.on_tick(other, both)
    assert [(e["rule"], bool(e["inhibited_by"])) for e in first] == [("naik", False)]
