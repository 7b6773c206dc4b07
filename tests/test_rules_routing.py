"""The routing tree, time windows and inhibition, as pure functions over alert events."""
from __future__ import annotations

from datetime import datetime

import pytest

from base.catalog import load_catalog
from rules.engine import RuleEngine
from rules.inhibition import inhibitors, parse_inhibit_rule
from rules.loader import parse_rule_text
from rules.matchers import MatcherError, parse_matcher
from rules.routing import routes_json

CATALOG = load_catalog()
ROUTING = """
rules:
  - {name: naik, when: zscore.fired, severity: warning}
  - {name: het, when: ceiling.fired, severity: critical, labels: {team: harga}}
receivers:
  - {name: pelanggan, topics: true}
  - {name: tpid-jabar, telegram: [-1001]}
  - {name: tpid-papua, telegram: [-1002]}
  - {name: pusat, telegram: [-1003]}
time_windows:
  kerja: [{weekdays: [senin:jumat], times: ["08:00-16:00"]}]
  malam: [{times: ["21:00-24:00", "00:00-06:00"]}]
route:
  receiver: pelanggan
  group_by: [commodity]
  group_wait: 1m
  repeat_interval: 1d
  routes:
    - matchers: ['severity="critical"']
      receiver: pusat
      continue: true
      group_by: [commodity, province]
    - matchers: ['province="32"']
      receiver: tpid-jabar
      active_time: [kerja]
      routes:
        - {matchers: ['commodity=~"cabai-.*"'], quiet_time: [malam], when_quiet: drop}
    - matchers: ['province=~"9[1-6]"']
      receiver: tpid-papua
      active_time: [kerja]
"""


def at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def event(**fields) -> dict:
    return {"rule": "naik", "severity": "warning", "commodity": "bawang-merah", "market": "pasar-kosambi",
            "province": "32", "key": "naik/bawang-merah/pasar-kosambi", "labels": {}, **fields}


@pytest.fixture(scope="module")
def rules() -> RuleEngine:
    return RuleEngine(parse_rule_text(ROUTING, "routing.yaml", CATALOG, {"zscore", "ceiling"}))


def names(receivers) -> list[tuple[str, str | None]]:
    return [(r.name, None if r.deliver_at is None else datetime.fromtimestamp(r.deliver_at).isoformat())
            for r in receivers]


def test_the_first_matching_route_wins_unless_it_continues(rules):
    monday_10 = at("2024-07-01T10:00:00+07:00")
    assert [r.name for r in rules.route(event(), monday_10)] == ["tpid-jabar"]
    critical = event(rule="het", severity="critical", labels={"team": "harga"})
    assert [r.name for r in rules.route(critical, monday_10)] == ["pusat", "tpid-jabar"]
    assert [r.name for r in rules.route(event(province="33"), monday_10)] == ["pelanggan"]  # no child matched


def test_children_inherit_receiver_grouping_and_timing(rules):
    [chilli] = rules.route(event(commodity="cabai-rawit-merah"), at("2024-07-01T10:00:00+07:00"))
    assert (chilli.name, chilli.route, chilli.group_wait, chilli.repeat_interval) == ("tpid-jabar", "root.2.1", 60.0, 86400.0)
    assert chilli.group_key == 'root.2.1:tpid-jabar:{commodity="cabai-rawit-merah"}'
    [pusat, _] = rules.route(event(rule="het", severity="critical"), at("2024-07-01T10:00:00+07:00"))
    assert pusat.group_key == 'root.1:pusat:{commodity="bawang-merah",province="32"}'


def test_outside_working_hours_a_route_holds_until_its_window_opens_in_the_provinces_own_zone(rules):
    saturday = at("2024-07-06T10:00:00+07:00")
    assert names(rules.route(event(), saturday)) == [("tpid-jabar", datetime.fromtimestamp(at("2024-07-08T08:00:00+07:00")).isoformat())]
    # 07:30 WIB is 09:30 WIT: Papua's office is open, Jawa Barat's is not yet
    early = at("2024-07-02T07:30:00+07:00")
    [papua] = rules.route(event(province="91", market="pasar-youtefa"), early)
    assert papua.deliver_at is None
    [jabar] = rules.route(event(), early)
    assert jabar.deliver_at == at("2024-07-02T08:00:00+07:00")
    routes = routes_json([papua, jabar])
    assert routes["telegram"] == [-1002] and [r["name"] for r in routes["receivers"]] == ["tpid-papua", "tpid-jabar"]


def test_a_quiet_route_that_drops_leaves_the_alert_with_no_receiver(rules):
    assert rules.route(event(commodity="cabai-rawit-merah"), at("2024-07-01T22:00:00+07:00")) == []
    # after the night (and inside working hours) it delivers again
    assert [r.name for r in rules.route(event(commodity="cabai-rawit-merah"), at("2024-07-02T09:00:00+07:00"))] == ["tpid-jabar"]


def test_reminders_follow_repeat_interval():
    text = ROUTING.replace("      active_time: [kerja]\n      routes:", "      routes:")
    rules = RuleEngine(parse_rule_text(text, "routing.yaml", CATALOG, {"zscore", "ceiling"}))
    spike = {"scores": {"zscore": 6.0}, "fired": ["zscore"], "reasons": {}, "expected": None}
    tick = {"commodity": "bawang-merah", "market": "pasar-kosambi", "province": "32", "price": 1.0}
    start = at("2024-07-01T10:00:00+07:00")
    seen = [(hours, e["transition"]) for hours in (0, 12, 23, 24, 30, 48)
            for e in rules.on_tick({**tick, "ts": start + hours * 3600}, spike)]
    assert seen == [(0, "fired"), (24, "repeated"), (48, "repeated")]


@pytest.mark.parametrize("text, labels, matches", [
    ('severity="critical"', {"severity": "critical"}, True),
    ("severity!=critical", {"severity": "critical"}, False),
    ('commodity=~"cabai-.*"', {"commodity": "cabai-rawit"}, True),
    ('commodity=~"cabai"', {"commodity": "cabai-rawit"}, False),  # anchored, as in Alertmanager
    ('market!~"pasar-.*"', {"market": "nasional"}, True),
    ('team=""', {}, True),  # a missing label is the empty value
])
def test_matchers(text, labels, matches):
    assert parse_matcher(text).matches(labels) is matches


@pytest.mark.parametrize("text", ["severity", "severity=~\"(\"", "1abc=x", 'a=="b"'])
def test_bad_matchers_are_refused(text):
    with pytest.raises(MatcherError):
        parse_matcher(text)


def test_inhibition_needs_equal_labels_and_never_mutes_both_ways():
    rule = parse_inhibit_rule({"source": ['severity="critical"'], "target": ['severity=~"info|warning"'],
                               "equal": ["commodity", "market"]})
    crisis = event(rule="het", severity="critical", key="het/bawang-merah/pasar-kosambi")
    assert inhibitors(event(), [crisis], (rule,)) == ["het/bawang-merah/pasar-kosambi"]
    assert inhibitors(event(market="pasar-agung", key="naik/bawang-merah/pasar-agung"), [crisis], (rule,)) == []
    everything = parse_inhibit_rule({"source": ['rule=~".*"'], "target": ['rule=~".*"']})
    other = event(rule="het", key="het/bawang-merah/pasar-kosambi")
    assert inhibitors(event(), [other], (everything,)) == []
