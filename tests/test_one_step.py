"""One step, taken by all: the same ticks through the live engine (real Redis, real processes)
and through the backtest's replay give the same verdicts and the same alerts."""
from __future__ import annotations

import math

import pytest

from detectors import recorded
from detectors.stack import DetectorStack
from pipeline.backtest import load_production_rules
from pipeline.replay import Replay, reporting_days
from base.catalog import load_catalog
from rules.engine import RuleEngine
from base.config import PROJECT_ROOT
from tests.system import System
from tests import partitions

SAMPLE = PROJECT_ROOT / "tests" / "fixtures" / "pihps-jabar-sample.csv"  # 18 markets, 29 days, chilli and shallots


@pytest.mark.timeout(180)
def test_the_live_engine_and_the_backtest_come_to_the_same_verdicts_and_alerts(tmp_path):
    ticks = recorded.read_path(SAMPLE, load_catalog())
    days = list(reporting_days(ticks))
    system = System(tmp_path).start()
    try:
        sent = 0
        for day in days:  # one batch a day, as the backtest takes them
            assert system.post(day).status_code == 202
            sent += len(day)
            system.wait_processed(sent)
        live = {}
        for commodity in ("bawang-merah", "cabai-rawit-merah"):
            for market in {t["market"] for t in ticks}:
                points = system.http.get(f"/api/v1/series/{commodity}/{market}/history").json()["points"]
                live.update({(commodity, market, p["ts"]): p["verdict"] for p in points})
        live_alerts = sorted((e["rule"], e["key"], e["transition"], e["ts"]) for e in
                             partitions.alert_events(system.redis))
        rules_dir = system.rules_dir
    finally:
        system.stop()

    ruleset, ceilings, _ = load_production_rules([rules_dir], rules_dir / "catalog")
    replay = Replay(DetectorStack(ceilings=ceilings), RuleEngine(ruleset))
    replayed = {}
    for day in days:
        for tick, verdict in zip(day, replay.batch(day)):
            replayed[(tick["commodity"], tick["market"], tick["ts"])] = verdict
    assert len(live) == len(replayed) == len(ticks)
    for key, verdict in replayed.items():
        mine = live[key]
        assert (mine["fired"], mine["quarantined"]) == (verdict["fired"], verdict["quarantined"]), key
        assert set(mine["scores"]) == set(verdict["scores"]), key
        assert all(math.isclose(mine["scores"][n], s, rel_tol=1e-9, abs_tol=1e-12) for n, s in verdict["scores"].items())
    backtest_alerts = sorted((e["rule"], f"{e['rule']}/{e['commodity']}/{e['market']}", e["transition"], e["ts"])
                             for e in replay.alerts)
    assert live_alerts == backtest_alerts and live_alerts  # the same, and not trivially none


def test_alerts_raised_by_imported_history_are_recorded_but_told_only_if_still_firing_live():
    from pipeline.step import Step
    from rules.loader import parse_rule_text

    rules = parse_rule_text("rules:\n  - name: tinggi\n    when: price > 60000\n    routes: {topics: true}\n",
                            "r.yaml", load_catalog(), {"zscore"})
    step = Step(DetectorStack(), RuleEngine(rules))
    tick = {"commodity": "cabai-rawit-merah", "market": "pasar-agung", "province": "32"}
    history = [{**tick, "price": p, "ts": d * 86400.0, "backfill": True}
               for d, p in enumerate([50000.0, 70000.0, 52000.0, 71000.0])]
    events = [e for d in history for e in step.ticks([d]).alerts]
    assert [e["transition"] for e in events] == ["fired", "resolved", "fired"]
    assert all(e["notify"] is False and e["backfill"] and e["routes"]["topics"] is False for e in events)
    [told] = step.ticks([{**tick, "price": 72000.0, "ts": 4 * 86400.0}]).alerts  # live, still firing
    assert told["transition"] == "unmuted" and told["notify"] is True and "backfill" not in told
