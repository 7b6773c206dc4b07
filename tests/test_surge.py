"""The commodity-wide surge detector (detectors/surge.py) and the rule that reads it
(rules/kenaikan-serentak.yaml)."""
from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest

from base.catalog import load_catalog
from detectors import recorded
from detectors.recorded import WIB
from detectors.state import decode_state, encode_state
from detectors.surge import PanelSurge
from rules.loader import load_rules
from detectors.stack import DETECTOR_NAMES

ROOT = Path(__file__).resolve().parent.parent
CHILLI = ROOT / "tests" / "fixtures" / "pihps-cabai-rawit-merah-2021-05-08.csv"
DAY = 86400.0


def panel_of(days: int, markets: int = 6, surge: PanelSurge | None = None) -> PanelSurge:
    surge = surge or PanelSurge()
    for day in range(days):
        for m in range(markets):
            x = {"market": f"m{m}", "price": 40000.0 + 1000 * m + 500 * (day % 3), "ts": day * DAY}
            surge.score_one(x)
            surge.learn_one(x)
    return surge


def test_silent_until_enough_markets_have_history_then_near_one_on_steady_prices():
    surge = panel_of(10)  # 10 reports: fewer than the 15 a market's average needs
    assert surge.score_one({"market": "m0", "price": 40000.0, "ts": 10 * DAY}) is None
    panel_of(10, surge=surge)
    assert surge.score_one({"market": "m0", "price": 40500.0, "ts": 20 * DAY}) == pytest.approx(1.0, abs=0.02)


def test_one_markets_entry_error_does_not_move_the_panel_but_a_shared_rise_does():
    surge = panel_of(30)
    error = {"market": "m0", "price": 387500.0, "ts": 30 * DAY}
    assert surge.score_one(error) < 1.05
    for m in range(4):  # four of six markets 30% up
        surge.learn_one({"market": f"m{m}", "price": 1.3 * (40000.0 + 1000 * m), "ts": 30 * DAY})
    follower = {"market": "m5", "price": 45000.0, "ts": 30 * DAY}
    assert surge.score_one(follower) >= surge.threshold
    assert "above its own average of the last 30 reports (6 markets)" in surge.explain(follower, surge.score_one(follower))


def test_ratios_older_than_max_age_are_not_counted():
    surge = panel_of(30)
    assert surge.score_one({"market": "m0", "price": 40000.0, "ts": 30 * DAY + 15 * DAY}) is None


def test_checkpoint_round_trip_scores_the_same():
    surge = panel_of(40)
    restored = decode_state(encode_state(surge))
    tick = {"market": "m2", "price": 47000.0, "ts": 40 * DAY}
    assert restored.score_one(tick) == surge.score_one(tick)
    assert list(restored._history["m2"]) == list(surge._history["m2"])


def test_warns_the_july_2021_chilli_rise_two_weeks_before_its_peak():
    # 18 West Java markets, May-Aug 2021: the labelled rise started 2021-06-21 and peaked on
    # 2021-07-19 (tests/fixtures/price-events.csv, cabai-2021-juli).
    ticks = recorded.read_paths([CHILLI], load_catalog())
    surge = PanelSurge()
    first = None
    for tick in ticks:
        x = {"market": tick["market"], "price": tick["price"], "ts": tick["ts"]}
        score = surge.score_one(x)
        if first is None and score is not None and score >= surge.threshold:
            first = datetime.fromtimestamp(tick["ts"], WIB).date()
        if tick["price"] < 200000.0:  # the two entry errors of the fixture are not learned
            surge.learn_one(x)
    assert first is not None and date(2021, 6, 21) <= first <= date(2021, 7, 5)


def test_the_rule_loads_with_the_stacks_own_detector_names():
    catalog = load_catalog()
    assert "surge" in DETECTOR_NAMES
    ruleset = load_rules([ROOT / "rules" / "kenaikan-serentak.yaml"], catalog, set(DETECTOR_NAMES))
    assert [rule.name for rule in ruleset.rules] == ["kenaikan-serentak"]


def test_the_rule_through_the_stack_warns_the_july_2021_chilli_rise_two_weeks_ahead(tmp_path):
    # The production stack from cold (May 2021) and the shipped rule over the 18 markets: the
    # labelled rise (cabai-2021-juli, peak 2021-07-19) warned at least 14 days before its peak at
    # nearly every market, and no false alarm in the four months.
    from detectors.events import evaluate_events, load_events
    from pipeline.backtest import load_production_rules, run_ticks

    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "kenaikan-serentak.yaml").write_text((ROOT / "rules" / "kenaikan-serentak.yaml").read_text())
    ruleset, ceilings, catalog = load_production_rules([rules], ROOT / "rules" / "catalog")
    ticks = recorded.read_paths([CHILLI], catalog)
    result = run_ticks(ticks, ruleset, ceilings, jobs=1, detail=True)
    events = load_events(ROOT / "tests" / "fixtures" / "price-events.csv")
    figures = evaluate_events(events, result["alert_events"], ticks)["per_rule"]["kenaikan-serentak"]
    ahead, series = map(int, figures["by_kind"]["spike"]["warned_ahead"].split("/"))
    assert series == 18 and ahead >= 15
    assert figures["false_alarms"] == 0
