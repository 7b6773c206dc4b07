"""Rule test files (``pasarwatch rules test FILE``), read and checked: the format.

A test file names the rule files under test and lists tests; each test feeds series of prices
(compact notation, ``rules.notation``) through the detector stack and the rule engine, step by
step, and states what must be firing and what events must be raised at given times. The
format is described in docs/rules.md ("Testing rules"); ``pipeline.rule_tests`` runs it.
"""
from __future__ import annotations

import glob
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import yaml

from base import yaml_lines
from base.catalog import Catalog
from rules.durations import parse_duration
from rules.errors import Problems, RuleError, RuleSetError
from rules.expressions import ODDS_FIELDS
from rules.notation import NotationError, expand
from rules.silences import SilenceError, new_silence

FILE_KEYS = {"rule_files", "start", "interval", "tests"}
TEST_KEYS = {"name", "detectors", "series", "health", "silences", "expect"}
SERIES_KEYS = {"series", "province", "price", "scores", "odds", "quarantined", "expected"}
EXPECT_KEYS = {"at", "rule", "firing", "events"}
ITEM_KEYS = {
    "rule", "key", "kind", "commodity", "market", "province", "severity", "level", "state", "transition",
    "previous_severity", "previous_level", "labels", "routed_to", "held", "held_until", "telegram", "topics", "notify",
    "inhibited", "inhibited_by", "silenced", "silenced_by", "awaiting_confirmation", "message", "message_contains",
    "price",
    "fired_price", "peak_price", "value", "fired_value", "peak_value",
}
HEALTH_STATES = ("ok", "stale", "no_data", "error")
DEFAULT_START = "2024-07-01T10:00:00+07:00"  # a Monday, at the hour PIHPS reports


@dataclass
class SeriesInput:
    commodity: str
    market: str
    province: str
    prices: list[float | None]
    scores: dict[str, list[float | None]] = field(default_factory=dict)
    quarantined: list[float | None] = field(default_factory=list)
    expected: list[float | None] = field(default_factory=list)
    odds: dict[str, list[float | None]] = field(default_factory=dict)


@dataclass
class Expectation:
    ts: float
    at: str
    line: int
    rule: str | None
    firing: list[tuple[dict, int]] | None
    events: list[tuple[dict, int]] | None


@dataclass
class TestCase:
    name: str
    line: int
    detectors: str
    series: list[SeriesInput]
    health: list[dict]
    silences: list[dict]
    expect: list[Expectation]


@dataclass
class TestFile:
    path: Path
    rule_files: list[Path]
    start: float
    interval: float
    tests: list[TestCase]


def read_test_file(path: Path, catalog: Catalog) -> TestFile:
    """The test file at ``path``; raises RuleSetError (file:line: reason) on any problem."""
    problems = Problems(str(path))
    try:
        document = yaml_lines.load(yaml_lines.read_text(path))
    except (OSError, UnicodeDecodeError, yaml_lines.FileTooLarge) as exc:
        raise RuleSetError([RuleError(str(path), 0, f"cannot read: {exc}")]) from None
    except yaml.YAMLError as exc:
        raise RuleSetError([RuleError(str(path), yaml_lines.error_line(exc) or 0,
                                      f"not valid YAML: {yaml_lines.error_reason(exc)}")]) from None
    if not isinstance(document, dict):
        raise RuleSetError([RuleError(str(path), 1, "a test file is a mapping with rule_files and tests")])
    for key in sorted(set(document) - FILE_KEYS, key=str):
        problems.add(document, key, f"unknown key {key!r} (known: {', '.join(sorted(FILE_KEYS))})")
    files = _rule_files(document, path, problems)
    start = _start(document.get("start", DEFAULT_START), document, problems)
    interval = parse_duration(document.get("interval", "1d"))
    if not interval:
        problems.add(document, "interval", "interval must be a duration such as 1d or 15m")
        interval = 86400.0
    tests = []
    raw_tests = document.get("tests")
    if not isinstance(raw_tests, list) or not raw_tests:
        problems.add(document, "tests", "tests must be a non-empty list")
        raw_tests = []
    for item in raw_tests:
        if not isinstance(item, dict):
            problems.add(raw_tests, None, "each test is a mapping with name, series and expect")
            continue
        tests.append(_test(item, start, interval, catalog, problems))
    if problems.errors:
        raise RuleSetError(problems.errors)
    return TestFile(path, files, start, interval, tests)


def _rule_files(document: Any, path: Path, problems: Problems) -> list[Path]:
    raw = document.get("rule_files")
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not raw or not all(isinstance(p, str) for p in raw):
        problems.add(document, "rule_files", "rule_files must list the rule files under test, e.g. ['../*.yaml']")
        return []
    files: list[Path] = []
    for pattern in raw:
        matched = sorted(glob.glob(str(path.parent / pattern)))
        matched = [m for m in matched if Path(m).resolve() != path.resolve()]
        if not matched:
            problems.add(document, "rule_files", f"{pattern!r} matches no file (relative to {path.parent})")
        files.extend(Path(m) for m in matched if Path(m) not in files)
    return files


def _start(value: Any, node: Any, problems: Problems) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.timestamp()
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        problems.add(node, "start", f"start must be a time with its zone, e.g. {DEFAULT_START}")
        return datetime.fromisoformat(DEFAULT_START).timestamp()
    return parsed.timestamp()


def _test(item: Any, start: float, interval: float, catalog: Catalog, problems: Problems) -> TestCase:
    name = str(item.get("name", f"test at line {item.line}"))
    label = f"test {name!r}"

    def fail(node: Any, key: Any, reason: str) -> None:
        problems.add(node, key, f"{label}: {reason}")

    for key in sorted(set(item) - TEST_KEYS, key=str):
        fail(item, key, f"unknown key {key!r} (known: {', '.join(sorted(TEST_KEYS))})")
    detectors = item.get("detectors", "stack")
    if detectors not in ("stack", "none"):
        fail(item, "detectors", "detectors is 'stack' (the production detectors) or 'none' (only given scores)")
    series = [s for s in (_series(entry, catalog, fail) for entry in _list(item, "series", fail)) if s]
    health = []
    for entry in _list(item, "health", fail):
        where = _series_id(entry.get("series"), entry, catalog, fail) if isinstance(entry, dict) else None
        if where is None:
            continue
        state = entry.get("state")
        if state not in HEALTH_STATES:
            fail(entry, "state", f"state must be one of {', '.join(HEALTH_STATES)}")
            continue
        ts = _at(entry.get("at"), start, interval, entry, fail)
        health.append({"commodity": where[0], "market": where[1], "province": where[2], "state": state,
                       "ts": ts, "age": float(entry.get("age", 0) or 0)})
    silences = []
    for index, entry in enumerate(_list(item, "silences", fail)):
        if not isinstance(entry, dict):
            fail(item, "silences", "each silence is a mapping with matchers, starts_at, ends_at")
            continue
        body = {k: v for k, v in entry.items() if k != "id"}
        for key in ("starts_at", "ends_at"):
            if key in body:
                body[key] = _at(body[key], start, interval, entry, fail)
        body.setdefault("author", "test")
        body.setdefault("comment", "test")
        try:
            silences.append(new_silence(body, now=start, silence_id=str(entry.get("id", f"silence-{index + 1}"))))
        except SilenceError as exc:
            fail(entry, None, f"silence: {exc}")
    expect = []
    for entry in _list(item, "expect", fail):
        if not isinstance(entry, dict):
            fail(item, "expect", "each expectation is a mapping with at and firing and/or events")
            continue
        for key in sorted(set(entry) - EXPECT_KEYS, key=str):
            fail(entry, key, f"unknown key {key!r} (known: {', '.join(sorted(EXPECT_KEYS))})")
        if "firing" not in entry and "events" not in entry:
            fail(entry, "at", "say what is expected: firing (alerts firing then) and/or events (raised then)")
        ts = _at(entry.get("at"), start, interval, entry, fail)
        line = cast(yaml_lines.LineDict, entry).line  # a mapping of the document: base/yaml_lines.py made it
        expect.append(Expectation(ts, str(entry.get("at")), line, entry.get("rule"),
                                  _items(entry, "firing", fail), _items(entry, "events", fail)))
    if not expect:
        fail(item, "expect", "a test needs at least one expectation")
    return TestCase(name, item.line, detectors, series, health, silences, expect)


def _list(node: Any, key: str, fail) -> list:
    value = node.get(key, [])
    if not isinstance(value, list):
        fail(node, key, f"{key} must be a list")
        return []
    return value


def _series_id(text: Any, node: Any, catalog: Catalog, fail) -> tuple[str, str, str] | None:
    if not isinstance(text, str) or text.count("/") != 1:
        fail(node, "series", "series is commodity/market, e.g. cabai-rawit-merah/pasar-agung")
        return None
    commodity, market = text.split("/")
    if commodity not in catalog.commodities:
        fail(node, "series", f"unknown commodity {commodity!r}")
        return None
    province = node.get("province")
    if province is None:
        province = catalog.markets[market].province if market in catalog.markets else None
    if province is None or str(province) not in catalog.provinces:
        fail(node, "province", f"market {market!r} is not in the catalog: give its province code")
        return None
    return commodity, market, str(province)


def _series(entry: Any, catalog: Catalog, fail) -> SeriesInput | None:
    if not isinstance(entry, dict):
        fail(entry, None, "each series is a mapping with series and price")
        return None
    for key in sorted(set(entry) - SERIES_KEYS, key=str):
        fail(entry, key, f"unknown key {key!r} (known: {', '.join(sorted(SERIES_KEYS))})")
    where = _series_id(entry.get("series"), entry, catalog, fail)
    values = {}
    for key in ("price", "quarantined", "expected"):
        try:
            values[key] = expand(entry[key]) if key in entry else []
        except NotationError as exc:
            fail(entry, key, str(exc))
            values[key] = []
    scores = _named_series(entry, "scores", "scores maps detector names to series, e.g. {crossmarket: '0x10 7x3'}",
                           None, fail)
    odds = _named_series(entry, "odds", "odds maps the forecast's odds to series, e.g. {p_rise_10: '0.2x10 0.8x3'}",
                         ODDS_FIELDS, fail)
    if not values["price"]:
        fail(entry, "price", "price is required: a series such as '52000+500x10'")
    if where is None:
        return None
    return SeriesInput(*where, values["price"], scores, values["quarantined"], values["expected"], odds)


def _named_series(entry: dict, key: str, shape: str, known: Any, fail) -> dict[str, list[float | None]]:
    """``{name: series}`` under ``key`` (``scores``, ``odds``); names outside ``known`` are errors."""
    raw = entry.get(key, {})
    if not isinstance(raw, dict):
        fail(entry, key, shape)
        return {}
    out = {}
    for name, text in raw.items():
        if known is not None and name not in known:
            fail(raw, name, f"unknown {key} {name!r} (known: {', '.join(sorted(known))})")
            continue
        try:
            out[str(name)] = expand(text)
        except NotationError as exc:
            fail(raw, name, str(exc))
    return out


def _at(value: Any, start: float, interval: float, node: Any, fail) -> float:
    """A step number (0 = the first value) or a duration after start."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return start + value * interval
    seconds = parse_duration(value) if isinstance(value, str) else None
    if seconds is None:
        fail(node, "at", f"at must be a step number or a duration after start such as 12d, got {value!r}")
        return start
    return start + seconds


def _items(entry: Any, key: str, fail) -> list[tuple[dict, int]] | None:
    if key not in entry:
        return None
    raw = entry[key]
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        fail(entry, key, f"{key} must be a list of alerts (empty: none)")
        return []
    items = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            fail(raw, index, f"{key}: each alert is a mapping such as {{rule: kenaikan-tajam, market: pasar-agung}}")
            continue
        for name in sorted(set(item) - ITEM_KEYS, key=str):
            fail(item, name, f"{key}: unknown field {name!r} (known: {', '.join(sorted(ITEM_KEYS))})")
        items.append((dict(item), cast(yaml_lines.LineList, raw).line_of(index)))
    return items
