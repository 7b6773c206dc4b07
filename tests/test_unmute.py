"""A firing alert muted by a silence or an inhibition is told as soon as the mute lifts, not at
its series' next tick (a day later for daily prices)."""
from __future__ import annotations

from base.catalog import load_catalog
from rules.engine import RuleEngine
from rules.loader import parse_rule_text
from rules.silences import new_silence
from tests.system import wait_for
from tests import partitions
from tests.test_pipeline import MARKETS, feed

RULES = """
rules:
  - name: lonjakan
    when: zscore.fired
    severity: warning
"""
SPIKE = {"scores": {"zscore": 6.0}, "fired": ["zscore"], "reasons": {"zscore": "jump"}, "expected": None}
TICK = {"commodity": "cabai-rawit-merah", "market": "pasar-agung", "province": "32", "price": 90000.0}


def engine_with_silence() -> tuple[RuleEngine, dict]:
    engine = RuleEngine(parse_rule_text(RULES, "s.yaml", load_catalog(), {"zscore"}))
    silence = new_silence({"matchers": ['commodity="cabai-rawit-merah"'], "duration": "2h", "author": "budi",
                           "comment": "checking"}, now=1000.0)
    engine.set_silences([silence])
    return engine, silence


def test_a_lifted_silence_is_told_without_waiting_for_a_tick():
    engine, silence = engine_with_silence()
    [fired] = engine.on_tick({**TICK, "ts": 1000.0}, SPIKE)
    assert fired["notify"] is False and fired["silenced_by"] == silence["id"]
    assert engine.recheck_muted(1100.0) == []  # still silenced: nothing to tell
    engine.set_silences([])  # deleted (the engine reads only silences in force)
    [told] = engine.recheck_muted(1200.0)
    assert told["transition"] == "unmuted" and told["notify"] is True and told["reasons"] == {"zscore": "jump"}
    assert engine.recheck_muted(1300.0) == []  # told once


def test_an_alert_muted_by_inhibition_is_told_when_the_inhibitor_resolves():
    rules = parse_rule_text("""
rules:
  - name: krisis
    when: zscore.score >= 8
    severity: critical
  - name: lonjakan
    when: zscore.fired
    severity: warning
inhibit:
  - source: ['severity="critical"']
    target: ['severity="warning"']
    equal: [commodity, market]
""", "i.yaml", load_catalog(), {"zscore"})
    engine = RuleEngine(rules)
    crisis = {**SPIKE, "scores": {"zscore": 9.0}}
    events = engine.on_tick({**TICK, "ts": 1.0}, crisis)
    warning = next(e for e in events if e["rule"] == "lonjakan")
    assert warning["inhibited_by"] == ["krisis/cabai-rawit-merah/pasar-agung"] and not warning["notify"]
    engine.states.pop("krisis/cabai-rawit-merah/pasar-agung")  # the crisis rule removed from the set
    [told] = engine.recheck_muted(2.0)
    assert told["rule"] == "lonjakan" and told["transition"] == "unmuted" and told["notify"]


def test_deleting_a_silence_tells_the_firing_alert_with_no_new_tick(system):
    sent = feed(system, range(12))
    system.wait_processed(sent)
    made = system.http.post("/api/v1/silences", json={"matchers": ['commodity="cabai-rawit-merah"'],
                                                       "duration": "2h", "author": "budi", "comment": "x"})
    assert made.status_code == 201, made.text
    sent += feed(system, range(12, 13), overrides={12: {MARKETS[0]: 400000.0}})
    system.wait_processed(sent)
    silenced = [a for a in system.alerts() if a["market"] == MARKETS[0] and a["state"] == "firing"]
    assert silenced and all(a["silenced_by"] == made.json()["silence"]["id"] for a in silenced)
    assert system.http.delete(f"/api/v1/silences/{made.json()['silence']['id']}").status_code == 200

    def unmuted() -> list[dict]:
        events = partitions.alert_events(system.redis)
        return [e for e in events if e["transition"] == "unmuted" and e["market"] == MARKETS[0]]

    told = wait_for(unmuted, 15, "the muted alerts to be told after the silence was deleted")
    assert {e["rule"] for e in told} == {a["rule"] for a in silenced} and all(e["notify"] for e in told)
    assert system.processed() == sent  # no tick was needed
