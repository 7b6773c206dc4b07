"""Rule files are validated as a whole; every mistake is reported as file:line: reason."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from base.catalog import load_catalog
from rules.errors import RuleSetError
from detectors.stack import DETECTOR_NAMES
from rules.loader import load_rules, parse_rule_text, rule_files

CATALOG = load_catalog()
DETECTORS = set(DETECTOR_NAMES)
ROOT = Path(__file__).resolve().parent.parent


def errors_of(text: str) -> list[str]:
    with pytest.raises(RuleSetError) as caught:
        parse_rule_text(text, "r.yaml", CATALOG, DETECTORS)
    return [str(e) for e in caught.value.errors]


def test_the_shipped_rules_load_with_their_routing_and_inhibition():
    ruleset = load_rules(rule_files(ROOT / "rules"), CATALOG, DETECTORS)
    assert {"harga-menyimpang", "pasar-lebih-mahal", "kenaikan-tajam", "di-atas-het", "data-terhenti"} <= set(
        ruleset.by_name())
    assert ruleset.router.root is not None and len(ruleset.inhibit) == 3
    assert [r.level for r in ruleset.by_name()["pasar-lebih-mahal"].rungs] == ["waspada", "siaga", "awas"]


def test_the_readme_example_of_before_ladders_still_loads():
    text = """
defaults:
  routes: {topics: true, telegram: [-1001234567890]}
rules:
  - name: harga-menyimpang
    summary: "Harga satu pasar menyimpang jauh dari pasar lain"
    scope:
      commodity: ["cabai-*", "bawang-merah"]
      province: ["32", "Jawa Tengah"]
      market: "*"
    when: quarantined and crossmarket.score >= 5
    severity: warning
    for: 1
    keep_firing_for: 2
  - name: data-terhenti
    kind: health
    when: stale
    severity: info
"""
    ruleset = parse_rule_text(text, "old.yaml", CATALOG, DETECTORS)
    rule = ruleset.by_name()["harga-menyimpang"]
    assert rule.routes.telegram == (-1001234567890,) and rule.scope.province == ("32", "33")


@pytest.mark.parametrize("text, expected", [
    ("rules:\n  - name: a\n    value: crossmarket.score\n    levels:\n      - {severity: info, enter: 4, exit: 5}\n",
     "r.yaml:5: rule 'a': levels: level 1: exit 5 is above enter 4"),
    ("rules:\n  - name: a\n    value: crossmarket.score\n    levels:\n      - {severity: warning, enter: 4}\n"
     "      - {severity: info, enter: 6}\n", "r.yaml:6: rule 'a': levels: level 2: a higher level cannot have a lower"),
    ("rules:\n  - name: a\n    value: crossmarket.score\n    levels:\n      - {severity: info, enter: 6}\n"
     "      - {severity: info, level: x, enter: 4}\n", "r.yaml:6: rule 'a': levels: level 2: levels go from lowest"),
    ("rules:\n  - name: a\n    value: crossmarket.score\n    severity: info\n",
     "r.yaml:3: rule 'a': value: 'value:' is read by 'levels:'"),
    ("rules:\n  - name: a\n    levels: [{severity: info, enter: 1}]\n", "r.yaml:3: rule 'a': levels: a ladder needs 'value:'"),
    ("rules:\n  - name: a\n    when: stale\n    message: 'harga {price.__class__}'\n",
     "r.yaml:4: rule 'a': message: firing: {price.__class__}: only plain names"),
    ("rules:\n  - name: a\n    when: stale\n    message: {firing: 'harga {harga}'}\n",
     "r.yaml:4: rule 'a': message: firing: {harga}: unknown name 'harga'"),
    ("rules:\n  - name: a\n    when: stale\n    message: {resolved: '{commodity:.1f}'}\n",
     "does not fit a text"),
    ("rules:\n  - name: a\n    when: stale\n    labels: {severity: high}\n", "'severity' is set by the engine"),
    ("rules:\n  - name: a\n    when: stale\n    scope: {commodity: cabe-*}\n",
     "r.yaml:4: rule 'a': scope: commodity 'cabe-*' matches no commodity"),
    ("defaults:\n  when: stale\nrules: []\n", "r.yaml:2: defaults cannot set 'when'"),
    ("rules:\n  - name: a\n    when: stale\n    when: quarantined\n", "r.yaml:4: not valid YAML: duplicate key 'when'"),
    ("receivers: [{name: ops}]\nroute: {receiver: opz}\n", "r.yaml:2: route root: receiver 'opz' is not a defined"),
    ("receivers: [{name: ops}]\nroute:\n  receiver: ops\n  routes:\n    - matchers: ['sevrity=\"critical\"']\n",
     "r.yaml:5: route root.1: sevrity=\"critical\": unknown label 'sevrity'; did you mean 'severity'?"),
    ("receivers: [{name: ops}]\nroute:\n  receiver: ops\n  routes:\n    - matchers: ['severity=\"critcal\"']\n",
     "no alert has severity 'critcal'; did you mean 'critical'?"),
    ("receivers: [{name: ops}]\nroute:\n  receiver: ops\n  routes:\n    - matchers: ['commodity=\"cabe\"']\n",
     "no alert has commodity 'cabe'"),
    ("receivers: [{name: ops}]\nroute:\n  receiver: ops\n  routes:\n    - {matchers: ['kind=\"health\"'], active_time: [siang]}\n",
     "r.yaml:5: route root.1: active_time: unknown time window 'siang'"),
    ("time_windows:\n  malam: [{times: ['21:00-06:00']}]\n", "r.yaml:2: time window 'malam': times: '21:00-06:00' must run forward"),
    ("time_windows:\n  kerja: [{weekdays: [senin:minggu], timezone: Asia/Bandung}]\n", "unknown time zone 'Asia/Bandung'"),
    ("inhibit:\n  - {source: ['severity=\"critical\"'], target: ['level=\"siaga\"'], equal: [comodity]}\n",
     "r.yaml:2: inhibit rule: target: level=\"siaga\": no alert has level 'siaga'"),
    ("inhibit:\n  - {source: ['severity=\"critical\"'], target: ['severity=\"info\"'], equal: [comodity]}\n",
     "r.yaml:2: inhibit rule: equal: unknown label 'comodity'; did you mean 'commodity'?"),
    ("inhibit:\n  - {source: ['severity=\"critical\"']}\n", "r.yaml:2: inhibit rule 1: target is required"),
])
def test_mistakes_are_reported_with_file_line_and_reason(text, expected):
    assert any(expected in error for error in errors_of(text)), errors_of(text)


def test_every_mistake_of_a_file_is_reported_at_once():
    errors = errors_of("rules:\n  - name: a\n    when: nosuch\n  - name: b\n    when: stale\n    severity: loud\n"
                       "route: {receiver: nobody}\n")
    assert [e.split(":")[1] for e in errors] == ["3", "6", "7"]


def test_one_routing_tree_per_set_and_names_unique_across_files(tmp_path):
    (tmp_path / "a.yaml").write_text("receivers: [{name: ops, telegram: [1]}]\nroute: {receiver: ops}\n")
    (tmp_path / "b.yaml").write_text("receivers: [{name: ops}]\nroute: {receiver: ops}\n")
    with pytest.raises(RuleSetError) as caught:
        load_rules(rule_files(tmp_path), CATALOG, DETECTORS)
    reasons = [str(e) for e in caught.value.errors]
    assert any("receiver 'ops' is defined in more than one file" in r for r in reasons)
    assert any(r.startswith(f"{tmp_path / 'b.yaml'}:2: the routing tree is already defined in") for r in reasons)


def test_a_route_in_one_file_may_use_receivers_of_another(tmp_path):
    (tmp_path / "receivers.yaml").write_text("receivers: [{name: ops, telegram: [-100]}]\n")
    (tmp_path / "routing.yaml").write_text("route: {receiver: ops}\n")
    (tmp_path / "rules.yaml").write_text("rules: [{name: a, when: stale, labels: {team: tpid}}]\n")
    ruleset = load_rules(rule_files(tmp_path), CATALOG, DETECTORS)
    assert ruleset.router.root.receiver == "ops" and ruleset.by_name()["a"].labels == (("team", "tpid"),)


def test_scope_exclusions_leave_out_the_named_markets_and_provinces():
    text = "rules:\n  - name: a\n    when: stale\n    scope: {market: ['!nasional'], province: ['*', '!Papua*']}\n"
    scope = parse_rule_text(text, "r.yaml", CATALOG, DETECTORS).rules[0].scope
    assert scope.matches("bawang-merah", "32", "pasar-agung")
    assert not scope.matches("bawang-merah", "32", "nasional")
    assert not scope.matches("bawang-merah", "91", "pasar-youtefa")


def shipped_copy(directory: Path) -> Path:
    directory.mkdir()
    for path in rule_files(ROOT / "rules"):
        (directory / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    return directory


def rules_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "server.cli", "rules", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=50)


@pytest.mark.parametrize("name", ["routing.yaml", "prices.yaml", "feeds.yaml"])
def test_checking_one_shipped_file_checks_it_with_the_rest_of_its_directory(name):
    result = rules_cli("check", f"rules/{name}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"rules/{name}: ok") and result.stderr == ""


def test_one_yaml_indentation_error_is_one_error_at_its_file_and_line(tmp_path):
    directory = shipped_copy(tmp_path / "rules")
    prices = directory / "prices.yaml"
    lines = prices.read_text(encoding="utf-8").splitlines(keepends=True)
    line = next(i for i, text in enumerate(lines) if text.startswith('    summary: "Harga satu pasar')) + 1
    lines[line - 1] = " " + lines[line - 1]  # one space too many
    prices.write_text("".join(lines), encoding="utf-8")
    with pytest.raises(RuleSetError) as caught:
        load_rules(rule_files(directory), CATALOG, DETECTORS)
    [error] = caught.value.errors
    assert (error.file, error.line) == (str(prices), line) and error.reason.startswith("not valid YAML")
    checked = rules_cli("check", str(directory / "routing.yaml"))
    assert checked.returncode == 1 and checked.stderr.splitlines() == [str(error)]


def test_a_rejected_rule_does_not_make_other_files_matchers_fail_too(tmp_path):
    directory = shipped_copy(tmp_path / "rules")
    feeds = directory / "feeds.yaml"
    text = feeds.read_text(encoding="utf-8")
    assert "    when: stale\n    severity: info\n" in text  # data-terhenti, which routing.yaml's inhibit names
    feeds.write_text(text.replace("    when: stale\n    severity: info\n", "    when: stale\n    severity: loud\n"),
                     encoding="utf-8")
    with pytest.raises(RuleSetError) as caught:
        load_rules(rule_files(directory), CATALOG, DETECTORS)
    assert [(e.file, "rule 'data-terhenti': severity: must be one of" in e.reason)
            for e in caught.value.errors] == [(str(feeds), True)]


def test_an_unknown_detector_is_named_with_the_one_meant():
    assert errors_of("rules:\n  - name: x\n    when: zscor.score > 3\n") == [
        "r.yaml:3: rule 'x': when: unknown detector 'zscor'; did you mean 'zscore'?"]
    [bare] = errors_of("rules:\n  - name: x\n    when: crossmarkt\n")
    assert "unknown name 'crossmarkt'; did you mean 'crossmarket'?" in bare
