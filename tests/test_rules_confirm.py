"""A rule with ``confirm:`` tells nobody of a high-severity alert on one device's word."""
from __future__ import annotations

import pickle

import pytest

from base.catalog import load_catalog
from rules.engine import RuleEngine
from rules.errors import RuleSetError
from rules.loader import parse_rule_text

CATALOG = load_catalog()
DAY = 86400.0
RULES = """
rules:
  - name: mahal
    value: crossmarket.score
    confirm: critical
    routes: {telegram: [-100123], topics: false}
    levels:
      - {level: siaga, severity: warning, enter: 4, exit: 3}
      - {level: awas, severity: critical, enter: 9, exit: 7}
    for: 1
    keep_firing_for: 1
"""


def engine() -> RuleEngine:
    return RuleEngine(parse_rule_text(RULES, "t.yaml", CATALOG, {"crossmarket"}))


def tick(day: int, market: str = "pasar-kosambi", source: str = "dev-1") -> dict:
    return {"commodity": "cabai-rawit-merah", "market": market, "province": "32", "price": 90000.0,
            "ts": day * DAY, "source": source}


def verdict(score: float) -> dict:
    return {"scores": {"crossmarket": score}, "fired": ["crossmarket"] if score >= 4 else [],
            "reasons": {}, "expected": None}


def told(events: list[dict]) -> list[tuple[str, str, str, bool]]:
    return [(e["market"], e["transition"], e["level"], e["notify"]) for e in events]


def test_one_source_at_one_market_is_held_until_a_second_source_agrees():
    rules = engine()
    first = rules.on_tick(tick(1), verdict(12))
    assert told(first) == [("pasar-kosambi", "fired", "awas", False)]
    assert first[0]["awaiting_confirmation"] and first[0]["routes"]["telegram"] == []
    # The same device again is no confirmation.
    assert rules.on_tick(tick(2), verdict(12)) == []
    confirmed = rules.on_tick(tick(3, source="dev-2"), verdict(11))
    assert told(confirmed) == [("pasar-kosambi", "confirmed", "awas", True)]
    assert confirmed[0]["routes"]["telegram"] == [-100123] and not confirmed[0]["awaiting_confirmation"]
    assert told(rules.on_tick(tick(4, source="dev-2"), verdict(1))) == [("pasar-kosambi", "resolved", "awas", True)]


def test_the_same_rule_at_another_market_of_the_province_confirms_in_the_same_batch():
    rules = engine()
    events = rules.on_batch([tick(1), tick(1, market="pasar-agung", source="dev-9")], [verdict(12), verdict(10)])
    assert told(events) == [("pasar-kosambi", "fired", "awas", True), ("pasar-agung", "fired", "awas", True)]


def test_another_market_confirms_a_held_alert_later():
    rules = engine()
    assert told(rules.on_tick(tick(1), verdict(12))) == [("pasar-kosambi", "fired", "awas", False)]
    later = rules.on_batch([tick(2), tick(2, market="pasar-agung", source="dev-9")], [verdict(12), verdict(10)])
    assert told(later) == [("pasar-kosambi", "confirmed", "awas", True), ("pasar-agung", "fired", "awas", True)]


def test_an_unconfirmed_alert_ends_without_anyone_hearing_of_it():
    rules = engine()
    rules.on_tick(tick(1), verdict(12))
    resolved = rules.on_tick(tick(2), verdict(1))
    assert told(resolved) == [("pasar-kosambi", "resolved", "awas", False)]


def test_lower_rungs_go_out_at_once_and_only_the_escalation_waits():
    rules = engine()
    assert told(rules.on_tick(tick(1), verdict(5))) == [("pasar-kosambi", "fired", "siaga", True)]
    assert told(rules.on_tick(tick(2), verdict(12))) == [("pasar-kosambi", "escalated", "awas", False)]
    assert told(rules.on_tick(tick(3, source="dev-2"), verdict(12))) == [("pasar-kosambi", "confirmed", "awas", True)]


def test_a_held_alert_survives_a_checkpoint():
    rules = engine()
    rules.on_tick(tick(1), verdict(12))
    restored = engine()
    restored.states = pickle.loads(pickle.dumps(rules.states))
    assert told(restored.on_tick(tick(2, source="dev-2"), verdict(12))) == [("pasar-kosambi", "confirmed", "awas", True)]


def test_confirm_must_name_a_severity():
    with pytest.raises(RuleSetError, match="confirm"):
        parse_rule_text(RULES.replace("confirm: critical", "confirm: yes please"), "t.yaml", CATALOG, {"crossmarket"})
