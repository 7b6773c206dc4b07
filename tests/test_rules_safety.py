"""What an operator's text can cost: matcher regexes run in linear time (RE2), patterns RE2
cannot run are refused where they are written, and rule files are bounded in size and expansion."""
from __future__ import annotations

import json
import logging
import subprocess
import sys
import tracemalloc
from pathlib import Path

import orjson
import pytest
import yaml

from detectors.stack import DETECTOR_NAMES
from base import yaml_lines
from base.catalog import load_catalog
from rules.errors import MAX_REASON, RuleSetError
from rules.loader import load_rules, parse_rule_text, rule_files
from rules.matchers import MAX_PATTERN, MatcherError, parse_matcher
from rules.rulebook import Rulebook
from rules.silences import SilenceError, new_silence
from base.yaml_lines import MAX_CHARS
from base import keys
from tests.system import System, wait_for

ROOT = Path(__file__).resolve().parent.parent
CATALOG = load_catalog()
DETECTORS = set(DETECTOR_NAMES)
CATASTROPHIC = "(.*){30}Z"  # Python's re: 4 s on 8 characters, exponential beyond

# Run in a child process: on a backtracking engine the match never ends and holds the GIL,
# so only killing a process bounds it.
ENGINE_SCRIPT = f"""
import json
from base.catalog import load_catalog
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


def alias_bomb(levels: int) -> str:
    """A "billion laughs" routing.yaml: each level's anchor lists the previous one nine times."""
    lines = ["receivers:", "  - name: r", "route:", "  anchors:", '    a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    names = "abcdefghij"[:levels]
    for prev, name in zip(names, names[1:]):
        lines.append(f"    {name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    lines += ["  receiver: r", f"  group_wait: *{names[-1]}"]  # quoted in full by the duration error
    return "\n".join(lines) + "\n"


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "rules"
    directory.mkdir()
    for name in ("prices.yaml", "feeds.yaml", "routing.yaml"):
        (directory / name).write_text((ROOT / "rules" / name).read_text(encoding="utf-8"), encoding="utf-8")
    return directory


def test_an_alias_bomb_is_refused_quickly_and_reported_once_in_bounded_text(rules_dir, caplog):
    """On main this 6-level bomb (about 400 bytes) became a 3.7 MB error reason; 9 levels took gigabytes."""
    book = Rulebook(rules_dir, CATALOG, DETECTORS)
    assert book.status()["ok"], book.status()["errors"]
    good = [rule.name for rule in book.current.rules]
    bomb = rules_dir / "routing.yaml"
    bomb.write_text(alias_bomb(6), encoding="utf-8")
    assert bomb.stat().st_size < 500
    caplog.set_level(logging.INFO, logger="pasarwatch.rules")
    tracemalloc.start()
    try:
        reload = book.reload_if_changed()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert reload is not None and not reload.ok
    assert peak < 20 * 1024 * 1024, f"reading a {bomb.stat().st_size}-byte file took {peak} bytes"
    assert [rule.name for rule in book.current.rules] == good  # the last good set stays in force
    assert any("alias bomb" in e.reason and e.file == str(bomb) for e in reload.errors)
    assert all(len(e.reason) <= MAX_REASON for e in reload.errors)
    assert len(orjson.dumps(book.status())) < 64 * 1024  # what the engine stores in Redis
    logged = [r.getMessage() for r in caplog.records]
    assert logged and all(len(message) < 1000 for message in logged)

    caplog.clear()
    assert book.reload_if_changed() is None  # unchanged: not parsed, logged or counted again
    assert caplog.records == [] and book.failures == 1

    bomb.write_text((ROOT / "rules" / "routing.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    assert book.reload_if_changed().ok and book.status()["ok"]


def test_a_rule_file_above_the_size_cap_is_refused_without_being_parsed(rules_dir):
    padding = "# " + "x" * 1000 + "\n"
    big = rules_dir / "besar.yaml"
    big.write_text(padding * (MAX_CHARS // len(padding) + 1)
                   + "rules:\n  - name: besar\n    when: zscore.fired\n", encoding="utf-8")
    with pytest.raises(RuleSetError) as caught:
        load_rules(rule_files(rules_dir), CATALOG, DETECTORS)
    [error] = caught.value.errors
    assert error.file == str(big) and "larger than 256 KiB" in error.reason


@pytest.mark.parametrize("text", ["rules: &loop\n  - *loop\n", "rules: &loop\n  a: *loop\n"])
def test_an_alias_inside_its_own_anchor_is_refused_at_its_line(text):
    """PyYAML refused these before; this guards the expansion count, which must not loop on them."""
    with pytest.raises(yaml.YAMLError) as caught:
        yaml_lines.load(text)
    assert yaml_lines.error_line(caught.value) == 1


def test_aliases_within_the_bound_still_work():
    document = yaml_lines.load("x: &quiet [malam]\nroute:\n  quiet_time: *quiet\n")
    assert document["route"]["quiet_time"] == ["malam"]


def test_deep_nesting_is_refused_at_its_line_before_the_stack_runs_out():
    with pytest.raises(yaml.YAMLError, match=f"nested more than {yaml_lines.MAX_DEPTH} deep") as caught:
        yaml_lines.load("rules:\n  - " + "[" * 5000 + "]" * 5000 + "\n")
    assert yaml_lines.error_line(caught.value) == 2


@pytest.fixture
def engine_only(tmp_path: Path):
    running = System(tmp_path).start("engine")
    yield running
    running.stop()


def test_the_engine_rejects_an_alias_bomb_once_and_stores_a_bounded_report(engine_only):
    """The whole path: the engine's reload, the status it stores in Redis, and its log."""
    system = engine_only
    status = wait_for(lambda: system.redis.get(keys.RULES_STATUS), 20, "the engine's first rules status")
    assert orjson.loads(status)["ok"]
    (system.rules_dir / "routing.yaml").write_text(alias_bomb(6), encoding="utf-8")

    def rejected() -> dict | None:
        assert system.processes["engine"].poll() is None, system.log("engine")[-2000:]
        current = orjson.loads(system.redis.get(keys.RULES_STATUS))
        return current if current["reload_failures"] else None

    report = wait_for(rejected, 20, "the bomb to be rejected")
    assert system.redis.strlen(keys.RULES_STATUS) < 64 * 1024
    assert any("alias bomb" in e["reason"] for e in report["errors"])
    logged = system.log("engine").count("rule file rejected")
    for _ in range(3):  # three sweeps: each comes after at least one more look at the rule files
        beat = system.redis.get(keys.ENGINE_HEARTBEAT)
        wait_for(lambda: system.redis.get(keys.ENGINE_HEARTBEAT) != beat, 10, "the engine's next sweep")
    assert orjson.loads(system.redis.get(keys.RULES_STATUS))["reload_failures"] == 1
    assert system.log("engine").count("rule file rejected") == logged
    assert len(system.log("engine")) < 64 * 1024
    assert system.processes["engine"].poll() is None


HUGE_SERIES = """
rule_files: ["{rules}/*.yaml"]
tests:
  - name: a billion blank steps
    detectors: none
    series:
      - {{series: bawang-merah/pasar-kosambi, price: "38000 _x999999999"}}
"""


def _half_a_gigabyte() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (512 * 1024 * 1024, 512 * 1024 * 1024))


def test_a_test_series_that_stands_for_a_billion_values_is_refused_at_its_line(tmp_path):
    """Before, the series was built in full: a MemoryError under this child's 512 MB limit."""
    path = tmp_path / "huge.test.yaml"
    path.write_text(HUGE_SERIES.format(rules=ROOT / "rules"), encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "pipeline.rules_cli", "test", str(path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=50, preexec_fn=_half_a_gigabyte)
    assert done.returncode == 1, done.stderr[-2000:]
    assert f"{path}:7:" in done.stderr and "at most 10000 values" in done.stderr


@pytest.mark.parametrize("template, reason", [
    ("{price:>99999999}", "widths and precisions in a format are at most 64"),
    ("{value:.99999999f}", "widths and precisions in a format are at most 64"),
    ("x" * 2001, "a template is at most 2000 characters"),
], ids=["width", "precision", "length"])
def test_a_message_template_that_would_render_megabytes_is_refused_at_its_line(template, reason):
    text = f"rules:\n  - name: x\n    when: zscore.fired\n    message:\n      firing: '{template}'\n"
    with pytest.raises(RuleSetError) as caught:
        parse_rule_text(text, "r.yaml", CATALOG, DETECTORS)
    [error] = caught.value.errors
    assert error.line == 4 and reason in error.reason  # the rule's message:
