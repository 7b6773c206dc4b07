"""``pasarwatch backtest``: production stack and rules over recorded ticks, and the NAB score.

Fixtures: tests/fixtures/pihps-cabai-rawit-merah-2021-05-08.csv (18 West Java markets, May-Aug
2021, two real entry errors at Pasar Agung), tests/fixtures/nab (one NAB file with its windows).
"""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from pipeline.nab_run import THRESHOLD, anomaly_scores
from pipeline import backtest, nab
from base.config import PROJECT_ROOT

FIXTURES = Path(__file__).parent / "fixtures"
CHILLI = FIXTURES / "pihps-cabai-rawit-merah-2021-05-08.csv"
NAB_DIR = FIXTURES / "nab"
SPEED = "realTraffic/speed_7578.csv"


def run_cli(capsys, *argv: str) -> dict:
    assert backtest.main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def write_rules(directory: Path, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "only.yaml").write_text(text)
    return directory


# -- recorded ticks ------------------------------------------------------------------------------


def test_replay_reports_alerts_per_rule_and_series(capsys):
    result = run_cli(capsys, str(CHILLI), "--jobs", "1")
    assert result["ticks"] == 1421 and result["series"] == 18
    assert result["days"] == 79  # one batch per reporting day, as the demo feed posts them
    per_rule = result["alerts"]["per_rule"]
    # The two entry errors at Pasar Agung are quarantined and the default rules say so.
    assert per_rule["harga-menyimpang"] >= 2
    assert result["alerts"]["per_series"]["cabai-rawit-merah/pasar-agung"]["harga-menyimpang"] >= 2
    assert result["alerts"]["total"] == sum(per_rule.values())
    assert result["quarantined"] >= 2
    assert {"zscore", "iqr", "forecast", "crossmarket"} <= set(result["detectors_fired"])


def test_backtest_uses_the_given_rule_files(tmp_path, capsys):
    rules = write_rules(tmp_path / "rules", "rules:\n  - name: dikarantina\n    when: quarantined\n")
    result = run_cli(capsys, str(CHILLI), "--rules", str(rules), "--detail", "--jobs", "1")
    assert set(result["alerts"]["per_rule"]) == {"dikarantina"}
    fired = {(e["market"], datetime.fromtimestamp(e["ts"]).date().isoformat())
             for e in result["alert_events"] if e["state"] == "firing"}
    assert ("pasar-agung", "2021-07-14") in fired and ("pasar-agung", "2021-08-25") in fired


def test_ndjson_and_csv_give_the_same_replay(tmp_path, capsys):
    ndjson = tmp_path / "ticks.ndjson"
    with CHILLI.open(newline="") as source, ndjson.open("w") as out:
        for row in csv.DictReader(source):
            out.write(json.dumps(row) + "\n")
    from_csv = run_cli(capsys, str(CHILLI), "--jobs", "1")
    from_ndjson = run_cli(capsys, str(ndjson), "--jobs", "1")
    for field in ("ticks", "series", "quarantined", "alerts", "detectors_fired"):
        assert from_csv[field] == from_ndjson[field]


def test_parallel_commodities_match_a_single_process(capsys):
    sample = FIXTURES / "pihps-jabar-sample.csv"
    one = run_cli(capsys, str(sample), "--jobs", "1")
    two = run_cli(capsys, str(sample), "--jobs", "2")
    for field in ("ticks", "series", "quarantined", "alerts", "detectors_fired", "forecast"):
        assert one[field] == two[field]


def test_forecast_error_is_reported_beside_the_baselines(capsys):
    short = run_cli(capsys, str(CHILLI), "--jobs", "1")["forecast"]["h1"]
    # Four months: model and naive are compared, but no price lies a year back.
    assert short["ticks"] > 1000 and short["seasonal_ticks"] == 0 and short["seasonal_naive_mape"] is None
    result = run_cli(capsys, str(FIXTURES / "pihps-cabai-5-markets-2020-2022.csv"), "--jobs", "1")
    h1, h7 = result["forecast"]["h1"], result["forecast"]["h7"]
    assert h1["seasonal_ticks"] > 1000 and h7["seasonal_ticks"] > 1000
    assert 0.0 < h1["mape"] < h7["mape"] < 0.5
    assert h1["naive_mape"] > 0.0
    # A year-old chilli price is a poor guess: the online model beats the seasonal naive.
    assert h7["mape_seasonal_ticks"] < h7["seasonal_naive_mape"]


def test_nab_style_values_are_a_series_of_their_own(capsys):
    result = run_cli(capsys, str(NAB_DIR / "data" / SPEED), "--jobs", "1")
    assert result["ticks"] == 1127 and result["series"] == 1
    assert result["detectors_fired"].get("anomaly", 0) >= 1


def test_values_at_or_below_zero_replay_through_the_whole_path(tmp_path, capsys):
    values = tmp_path / "zeros.csv"
    rows = [f"2015-03-01 {i // 60:02d}:{i % 60:02d}:00,{(i % 10) - 5}" for i in range(600)]
    values.write_text("timestamp,value\n" + "\n".join(rows) + "\n")
    result = run_cli(capsys, str(values), "--jobs", "1")
    assert result["ticks"] == 600 and result["days"] == 1  # one day: one batch, as the engine's


def test_an_unknown_layout_is_refused(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    assert backtest.main([str(bad)]) == 2
    assert "unknown layout" in capsys.readouterr().err


def test_events_are_scored_per_period_with_the_warnings_people_can_act_on(tmp_path, capsys):
    # May-Aug 2021 holds the July 2021 chilli rise (peak 2021-07-19) and the entry error of
    # 2021-07-14; split on 2021-07-01 both belong to the held-out period.
    rules = write_rules(tmp_path / "rules", "rules:\n"
                        "  - {name: dikarantina, when: quarantined}\n"
                        "  - {name: naik, when: change >= 0.1 and not quarantined, keep_firing_for: 5}\n")
    result = run_cli(capsys, str(CHILLI), "--rules", str(rules), "--jobs", "1",
                     "--events", str(FIXTURES / "price-events.csv"), "--split", "2021-07-01")
    events = result["events"]
    before, after = events["periods"]["before"], events["periods"]["after"]
    assert after["event_series"] == {"entry-error": 1, "spike": 18} and before["event_series"] == {}
    assert before["series_years"] + after["series_years"] == pytest.approx(events["summary"]["series_years"], abs=0.02)
    caught = after["per_rule"]["dikarantina"]["by_kind"]["entry-error"]
    assert caught["warned"] == "1/1" and caught["warned_ahead"] == "0/1"  # caught the same day
    spikes = events["per_rule"]["naik"]["by_kind"]["spike"]
    ahead = int(spikes["warned_ahead"].split("/")[0])
    assert ahead <= int(spikes["warned"].split("/")[0]) and spikes["warned_ahead"].endswith("/18")
    assert events["summary"]["warned_ahead_days"] == 14
    # The text output prints the same figures per period.
    assert backtest.main([str(CHILLI), "--rules", str(rules), "--jobs", "1", "--events",
                          str(FIXTURES / "price-events.csv"), "--split", "2021-07-01"]) == 0
    text = capsys.readouterr().out
    assert "from 2021-07-01: naik" in text and "spikes warned 14 d ahead" in text


def test_rules_that_do_not_load_are_refused_with_file_and_line(tmp_path, capsys):
    rules = write_rules(tmp_path / "rules", "rules:\n  - {name: x, when: surje.score >= 1.2}\n")
    assert backtest.main([str(CHILLI), "--rules", str(rules), "--jobs", "1"]) == 2
    assert "only.yaml:2: rule 'x'" in capsys.readouterr().err


def test_module_runs_as_a_command():
    done = subprocess.run([sys.executable, "-m", "pipeline.backtest", str(CHILLI), "--jobs", "1"],
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "1421 ticks, 18 series" in done.stdout and "harga-menyimpang" in done.stdout


# -- NAB -----------------------------------------------------------------------------------------


def test_nab_json_has_the_three_profiles_and_the_file_count(capsys):
    result = run_cli(capsys, "--nab", str(NAB_DIR), "--jobs", "1")
    assert set(result["nab"]) == {"standard", "reward_low_FP_rate", "reward_low_FN_rate"}
    assert result["files"] == 1 and result["threshold"] == THRESHOLD
    assert all(-100.0 <= s <= 100.0 for s in result["nab"].values())


def test_nab_score_is_reproduced_from_the_written_results(tmp_path, capsys):
    out = tmp_path / "results" / "pasarwatch"
    result = run_cli(capsys, "--nab", str(NAB_DIR), "--detail", "--scores-out", str(out), "--jobs", "1")
    written = out / "realTraffic" / "pasarwatch_speed_7578.csv"
    with written.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1127 and set(rows[0]) == {"timestamp", "value", "anomaly_score", "label"}
    stamps = [datetime.fromisoformat(r["timestamp"]) for r in rows]
    scores = [float(r["anomaly_score"]) for r in rows]
    assert all(0.0 <= s <= 1.0 for s in scores)
    windows = nab.load_windows(NAB_DIR / "combined_windows.json")
    profiles = nab.load_profiles(NAB_DIR / "profiles.json")
    again = nab.score_corpus({SPEED: (stamps, scores)}, windows, profiles, THRESHOLD)
    assert again == pytest.approx(result["nab"])
    detail = result["per_file"][SPEED]
    assert detail["windows"] == 4 and detail["hit"] + detail["missed"] == 4


def test_nab_scores_are_strictly_online():
    stamps, values = nab.load_series(NAB_DIR / "data" / SPEED)
    full = anomaly_scores(stamps, values)
    # A record's score cannot depend on anything after it: the scores of a prefix are a prefix.
    for cut in (300, 700):
        assert anomaly_scores(stamps[:cut], values[:cut]) == full[:cut]


def test_nab_detector_fires_on_a_clear_spike_and_handles_zero_and_negative_values():
    t0 = datetime(2015, 3, 1)
    stamps = [t0 + timedelta(minutes=5 * i) for i in range(1000)]
    values = [float((i % 10) - 5) for i in range(1000)]  # zeros and negatives, as NAB has
    values[900] = 60.0
    scores = anomaly_scores(stamps, values)
    assert [i for i, s in enumerate(scores) if s >= THRESHOLD] == [900]


def test_nab_subsets_split_the_files_by_position(tmp_path):
    root = tmp_path / "nab"
    for name in ("a/one.csv", "a/two.csv", "b/three.csv"):
        (root / "data" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "data" / name).write_text("timestamp,value\n")
    assert backtest.nab_files(root, "odd") == ["a/one.csv", "b/three.csv"]
    assert backtest.nab_files(root, "even") == ["a/two.csv"]
