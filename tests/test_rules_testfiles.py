"""Rule test files: the shipped ones pass (so CI runs them), a wrong expectation fails with
file:line, and the ``rules check|test|backtest`` commands exit as documented."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from base.catalog import load_catalog
from pipeline.rules_cli import find_test_files
from rules.notation import expand
from pipeline.rule_tests import format_result, run_test_file
from detectors.ceiling import ceilings_of
from detectors.stack import DETECTOR_NAMES

ROOT = Path(__file__).resolve().parent.parent
CATALOG = load_catalog()
SHIPPED = find_test_files([ROOT / "rules" / "tests"])


def run(path: Path):
    return run_test_file(path, CATALOG, set(DETECTOR_NAMES), ceilings_of(CATALOG))


def test_default_rules_have_tests_for_every_shipped_rule():
    assert {p.name for p in SHIPPED} >= {"prices.test.yaml", "feeds.test.yaml", "routing.test.yaml"}
    text = "".join(p.read_text() for p in SHIPPED)
    for rule in ("harga-menyimpang", "pasar-lebih-mahal", "kenaikan-tajam", "kenaikan-nasional", "di-atas-het",
                 "di-atas-hap", "data-terhenti", "data-tidak-ada", "detektor-galat", "peluang-lewat-hap",
                 "peluang-naik-10"):
        assert f"rule: {rule}" in text, f"no test names {rule}"


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_rule_tests_pass(path):
    outcome = run(path)
    assert outcome.ok, format_result(outcome)
    assert outcome.results


WRONG = """
rule_files: ["{rules}/*.yaml"]
tests:
  - name: wrong severity and a missing event
    detectors: none
    series:
      - {{series: bawang-merah/pasar-kosambi, price: "38000x4", scores: {{crossmarket: "6.5x4"}}}}
    expect:
      - at: 2d
        events:
          - {{rule: pasar-lebih-mahal, severity: critical, message_contains: "siaga"}}
      - at: 3d
        events:
          - {{rule: di-atas-het}}
"""


def test_a_wrong_expectation_fails_with_its_line_and_what_differs(tmp_path):
    path = tmp_path / "wrong.test.yaml"
    path.write_text(WRONG.format(rules=ROOT / "rules"))
    outcome = run(path)
    assert not outcome.ok
    [result] = outcome.results
    assert result.failures[0].startswith(f"{path}:11: at 2d: expected events")
    assert "severity: want 'critical', got 'warning'" in result.failures[0]
    assert any(f.startswith(f"{path}:9: at 2d: unexpected event") for f in result.failures)
    assert any(f.startswith(f"{path}:14: at 3d: expected events {{rule: 'di-atas-het'}} not found") for f in result.failures)


def test_a_broken_test_file_reports_file_line_reason(tmp_path):
    path = tmp_path / "broken.test.yaml"
    path.write_text('rule_files: ["nothing/*.yaml"]\ntests:\n  - name: x\n    series:\n'
                    '      - {series: bawang-merah/pasar-kosambi, price: "38000 oops"}\n    expect: []\n')
    errors = run(path).errors
    assert f"{path}:1: '\"nothing/*.yaml\"'" not in errors
    assert any(e.startswith(f"{path}:1: 'nothing/*.yaml' matches no file") for e in errors)
    assert any(e.startswith(f"{path}:5: test 'x': 'oops' is not a value") for e in errors)
    assert any(e.startswith(f"{path}:6: test 'x': a test needs at least one expectation") for e in errors)


def test_odds_given_by_a_test_must_be_ones_the_forecast_has(tmp_path):
    path = tmp_path / "odds.test.yaml"
    path.write_text(f'rule_files: ["{ROOT}/rules/*.yaml"]\ntests:\n  - name: x\n    detectors: none\n    series:\n'
                    '      - {series: bawang-merah/pasar-kosambi, price: "38000x2", odds: {p_rise_20: "0.9x2"}}\n'
                    '    expect: [{at: 1d, firing: []}]\n')
    errors = run(path).errors
    assert any("unknown odds 'p_rise_20' (known: p_above_reference, p_rise_10)" in e for e in errors), errors


def test_series_notation_follows_promtool():
    assert expand("1+1x4") == [1, 2, 3, 4, 5]
    assert expand("1-2x4") == [1, -1, -3, -5, -7]
    assert expand("1x4") == [1, 1, 1, 1, 1]
    assert expand("1 _x3 2") == [1, None, None, None, 2]


def cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.rules_cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=50)


def test_rules_test_command_exit_codes(tmp_path):
    ok = cli("test")
    assert ok.returncode == 0, ok.stderr
    assert "routing.test.yaml: 2 passed, 0 failed" in ok.stdout
    path = tmp_path / "wrong.test.yaml"
    path.write_text(WRONG.format(rules=ROOT / "rules"))
    failed = cli("test", str(path))
    assert failed.returncode == 1 and f"{path}:11: at 2d" in failed.stderr


def test_rules_check_command_lints_with_file_line(tmp_path):
    assert cli("check").returncode == 0
    bad = tmp_path / "prices.yaml"
    bad.write_text("rules:\n  - name: x\n    value: crossmarket.score\n    levels: [{severity: loud, enter: 1}]\n")
    result = cli("check", str(bad))
    assert result.returncode == 1
    assert result.stderr.strip() == f"{bad}:4: rule 'x': levels: level 1: severity must be one of info, warning, critical"


def test_rules_backtest_compares_a_changed_file_with_the_rules_in_force(tmp_path):
    changed = tmp_path / "prices.yaml"
    changed.write_text((ROOT / "rules" / "prices.yaml").read_text().replace(
        "{level: waspada, severity: info, enter: 4, exit: 3}", "{level: waspada, severity: info, enter: 3, exit: 2}"))
    data = ROOT / "tests" / "fixtures" / "pihps-cabai-rawit-merah-2021-05-08.csv"
    result = cli("backtest", str(changed), "--data", str(data), "--json")
    assert result.returncode == 0, result.stderr
    import json

    report = json.loads(result.stdout)
    before = report["current"]["rules"]["pasar-lebih-mahal"]["fired"]
    after = report["candidate"]["rules"]["pasar-lebih-mahal"]["fired"]
    assert after > before  # a lower threshold raises more alerts, before it goes live
    assert report["current"]["rules"]["harga-menyimpang"] == report["candidate"]["rules"]["harga-menyimpang"]
    assert any(e["market"] == "pasar-agung" and e["date"] == "2021-07-14"
               for e in report["candidate"]["rules"]["harga-menyimpang"]["examples"])
    later = cli("backtest", str(changed), "--data", str(data), "--since", "2021-07-01", "--json")
    assert json.loads(later.stdout)["candidate"]["fired"] < report["candidate"]["fired"]
    broken = tmp_path / "broken.yaml"
    broken.write_text("rules: [{name: x, when: 'zscore.fired and'}]\n")
    failed = cli("backtest", str(broken), "--data", str(data))
    assert failed.returncode == 1 and failed.stderr.startswith(f"{broken}:1: rule 'x': when: cannot parse")
