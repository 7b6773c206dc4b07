"""What an operator's text can cost: matcher regexes run in linear time (RE2), patterns RE2
cannot run are refused where they are written, and rule files are bounded in size and expansion."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from detectors.stack import DETECTOR_NAMES
from rules.catalog import load_catalog
from rules.errors import RuleSetError
from rules.loader import parse_rule_text
from rules.matchers import MAX_PATTERN, MatcherError, parse_matcher
from rules.silences import SilenceError, new_silence

ROOT = Path(__file__).resolve().parent.parent
CATALOG = load_catalog()
DETECTORS = set(DETECTOR_NAMES)
CATASTROPHIC = "(.*){30}Z"  # Python's re: 4 s on 8 characters, exponential beyond

# Run in a child process: on a backtracking engine the match never ends and holds the GIL,
# so only killing a process bounds it.
ENGINE_SCRIPT = f"""
import json
from rules.catalog import load_catalog
from rules.engine import RuleEngine
from rules.loader import parse_rule_text
from rules.silences import new_silence

PATTERN = {CATASTROPHIC!r}
RULES = '''
rules:
  - name: lonjakan
    when: zscore.fired
    severity: warning
receivers:
  - name: semua
    topics: true
  - name: pola
    topics: false
route:
  receiver: semua
  routes:
    - matchers: ['market=~"%s"']
      receiver: pola
inhibit:
  - source: ['severity="critical"']
    target: ['market=~"%s"']
    equal: [commodity]
''' % (PATTERN, PATTERN)
engine = RuleEngine(parse_rule_text(RULES, "r.yaml", load_catalog(), {{"zscore"}}))
engine.set_silences([new_silence({{"matchers": ['market=~"%s"' % PATTERN], "duration": "2h",
                                  "author": "budi", "comment": "uji"}}, now=1000.0)])
spike = {{"scores": {{"zscore": 6.0}}, "fired": ["zscore"], "reasons": {{}}, "expected": None}}
out = {{}}
for market in ("a" * 10_000, "a" * 9_999 + "Z"):
    tick = {{"commodity": "cabai-rawit-merah", "market": market, "province": "32", "price": 90000.0, "ts": 1000.0}}
    [event] = engine.on_tick(tick, spike)
    out[market[-1]] = {{"silenced": event["silenced_by"] is not None,
                        "receivers": [r["name"] for r in event["routes"]["receivers"]]}}
print(json.dumps(out))
"""


def test_a_catastrophic_regex_in_silence_route_and_inhibit_matchers_runs_in_linear_time():
    """On a backtracking engine this child never finishes (killed at the timeout: the failure)."""
    try:
        done = subprocess.run([sys.executable, "-c", ENGINE_SCRIPT], cwd=ROOT, capture_output=True,
                              text=True, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"matching {CATASTROPHIC!r} against a 10,000-character label did not end in 30 s")
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)
    assert out["a"] == {"silenced": False, "receivers": ["semua"]}  # no Z: neither the silence nor the route
    assert out["Z"] == {"silenced": True, "receivers": []}  # ends in Z: silenced (its route would be "pola")


@pytest.mark.parametrize("pattern", [r"(a)\1", "(?=pasar)pasar-.*", "(?<!x)y", "(?P<n>a)(?P=n)"])
def test_patterns_re2_cannot_run_are_refused_in_matchers(pattern):
    with pytest.raises(MatcherError, match="bad regular expression"):
        parse_matcher(f'market=~"{pattern}"')


def test_a_pattern_longer_than_the_cap_is_refused():
    with pytest.raises(MatcherError, match=f"at most {MAX_PATTERN} characters"):
        parse_matcher({"name": "market", "op": "=~", "value": "a" * (MAX_PATTERN + 1)})
    assert parse_matcher({"name": "market", "op": "=~", "value": "a" * MAX_PATTERN}).matches(
        {"market": "a" * MAX_PATTERN})


def test_a_rule_file_with_a_backreference_is_refused_at_its_line():
    text = ("rules:\n  - name: x\n    when: zscore.fired\n"
            "inhibit:\n  - source: ['severity=\"critical\"']\n    target: ['market=~\"(pasar)-\\1\"']\n")
    with pytest.raises(RuleSetError) as caught:
        parse_rule_text(text, "r.yaml", CATALOG, DETECTORS)
    [error] = caught.value.errors
    assert (error.file, error.line) == ("r.yaml", 5)
    assert "target" in error.reason and "bad regular expression" in error.reason


def test_a_silence_with_lookaround_is_refused_naming_the_matchers_field():
    with pytest.raises(SilenceError) as caught:
        new_silence({"matchers": ['market=~"(?!pasar-agung).*"'], "duration": "2h", "author": "budi",
                     "comment": "x"}, now=1000.0)
    [error] = caught.value.errors
    assert error["field"] == "matchers" and error["reason"] == "bad_matcher"
    assert "lookaround" in error["detail"]
