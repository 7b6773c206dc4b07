"""Load and validate rule files (``rules/*.yaml``) into a ``RuleSet``, all or nothing.

Every problem is reported as ``file:line: reason`` and the whole set is rejected, so the
engine keeps the last good set in force (see ``server/engine.py``).

>>> from rules.catalog import load_catalog
>>> text = '''
... rules:
...   - name: lonjakan
...     when: zscore.fired and crossmarket.fired
...     severity: warning
... '''
>>> ruleset = parse_rule_text(text, "inline.yaml", load_catalog(), {"zscore", "crossmarket"})
>>> ruleset.rules[0].name, ruleset.rules[0].for_ticks
('lonjakan', 1)
>>> parse_rule_text("rules:\\n  - name: x\\n    when: nosuch > 1\\n", "bad.yaml", load_catalog(), set())
Traceback (most recent call last):
...
rules.loader.RuleSetError: bad.yaml:3: rule 'x': when: unknown name 'nosuch'; known: age, change, fired_count, price, quarantined, stale
"""
from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rules.catalog import Catalog
from rules.expressions import Condition, ExpressionError, compile_condition

SEVERITIES = ("info", "warning", "critical")
EVENT_KINDS = ("tick", "health")
RULE_KEYS = {
    "name", "summary", "description", "kind", "scope", "when", "severity",
    "for", "keep_firing_for", "routes",
}
FILE_KEYS = {"defaults", "rules"}
INHERITED = {"scope", "severity", "for", "keep_firing_for", "routes", "kind"}
DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
RULE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class RuleError:
    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


class RuleSetError(ValueError):
    def __init__(self, errors: list[RuleError]):
        super().__init__("\n".join(str(error) for error in errors))
        self.errors = errors


@dataclass(frozen=True)
class Scope:
    commodity: tuple[str, ...] = ("*",)
    province: tuple[str, ...] = ("*",)
    market: tuple[str, ...] = ("*",)

    def matches(self, commodity: str, province: str, market: str) -> bool:
        return (
            _glob_any(commodity, self.commodity)
            and _glob_any(province, self.province)
            and _glob_any(market, self.market)
        )


@dataclass(frozen=True)
class Routes:
    telegram: tuple[int, ...] = ()
    topics: bool = True

    def as_json(self) -> dict:
        return {"telegram": list(self.telegram), "topics": self.topics}


@dataclass(frozen=True)
class Rule:
    name: str
    file: str
    line: int
    when: Condition
    kind: str = "tick"  # "tick": evaluated per price tick; "health": per feed-health change
    summary: str = ""
    severity: str = "warning"
    scope: Scope = field(default_factory=Scope)
    for_ticks: int = 1
    for_seconds: float = 0.0
    keep_ticks: int = 1
    keep_seconds: float = 0.0
    routes: Routes = field(default_factory=Routes)


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    files: tuple[str, ...]

    def by_name(self) -> dict[str, Rule]:
        return {rule.name: rule for rule in self.rules}


def rule_files(directory: str | Path) -> list[Path]:
    """The rule files of a directory: every *.yaml / *.yml directly in it (not catalog/)."""
    directory = Path(directory)
    return sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def load_rules(paths: list[Path], catalog: Catalog, detectors: set[str]) -> RuleSet:
    """Load every file; raise RuleSetError listing every problem in every file."""
    rules: list[Rule] = []
    errors: list[RuleError] = []
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            errors.append(RuleError(str(path), 0, f"cannot read: {exc}"))
            continue
        try:
            rules.extend(parse_rule_text(text, str(path), catalog, detectors).rules)
        except RuleSetError as exc:
            errors.extend(exc.errors)
    seen: dict[str, Rule] = {}
    for rule in rules:
        if rule.name in seen:
            first = seen[rule.name]
            errors.append(RuleError(rule.file, rule.line,
                                    f"rule name {rule.name!r} already used at {first.file}:{first.line}"))
        seen[rule.name] = rule
    if errors:
        raise RuleSetError(errors)
    return RuleSet(tuple(rules), tuple(str(p) for p in paths))


def parse_rule_text(text: str, filename: str, catalog: Catalog, detectors: set[str]) -> RuleSet:
    try:
        document = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 0
        raise RuleSetError([RuleError(filename, line, f"not valid YAML: {getattr(exc, 'problem', exc)}")]) from None
    if document is None:
        return RuleSet((), (filename,))
    errors: list[RuleError] = []
    if not isinstance(document, _LineDict):
        raise RuleSetError([RuleError(filename, 1, "a rule file is a mapping with 'rules:' (and optional 'defaults:')")])
    for key in sorted(set(document) - FILE_KEYS):
        errors.append(RuleError(filename, document.line_of(key), f"unknown top-level key {key!r}"))
    defaults = document.get("defaults") or _LineDict()
    if not isinstance(defaults, _LineDict):
        errors.append(RuleError(filename, document.line_of("defaults"), "defaults must be a mapping"))
        defaults = _LineDict()
    for key in sorted(set(defaults) - INHERITED):
        errors.append(RuleError(filename, defaults.line_of(key), f"defaults cannot set {key!r}"))
    entries = document.get("rules")
    if entries is None:
        entries = []
    if not isinstance(entries, list):
        errors.append(RuleError(filename, document.line_of("rules"), "rules must be a list"))
        entries = []
    rules = []
    for entry in entries:
        if not isinstance(entry, _LineDict):
            errors.append(RuleError(filename, document.line_of("rules"), "each rule must be a mapping"))
            continue
        merged = _LineDict({k: v for k, v in defaults.items() if k in INHERITED})
        merged.lines = {k: defaults.line_of(k) for k in merged}
        merged.update(entry)
        merged.lines.update(entry.lines)
        merged.line = entry.line
        rule = _build_rule(merged, filename, catalog, detectors, errors)
        if rule is not None:
            rules.append(rule)
    if errors:
        raise RuleSetError(errors)
    return RuleSet(tuple(rules), (filename,))


def _build_rule(entry: "_LineDict", filename: str, catalog: Catalog, detectors: set[str],
                errors: list[RuleError]) -> Rule | None:
    count = len(errors)
    name = entry.get("name")
    label = f"rule {name!r}" if isinstance(name, str) else "rule"

    def fail(key: str, reason: str) -> None:
        errors.append(RuleError(filename, entry.line_of(key), f"{label}: {key}: {reason}"))

    if not isinstance(name, str) or not RULE_NAME.match(name):
        fail("name", "required: lowercase letters, digits, '-' or '_' (max 64)")
    for key in sorted(set(entry) - RULE_KEYS):
        fail(key, "unknown key (known: " + ", ".join(sorted(RULE_KEYS)) + ")")

    kind = entry.get("kind", "tick")
    if kind not in EVENT_KINDS:
        fail("kind", f"must be one of {', '.join(EVENT_KINDS)}")
    condition = None
    when = entry.get("when")
    if not isinstance(when, (str, bool)) or when == "":
        fail("when", "required: a condition such as 'zscore.fired and crossmarket.fired'")
    else:
        try:
            condition = compile_condition(str(when).lower() if isinstance(when, bool) else when, detectors)
        except ExpressionError as exc:
            fail("when", str(exc))
    severity = entry.get("severity", "warning")
    if severity not in SEVERITIES:
        fail("severity", f"must be one of {', '.join(SEVERITIES)}")
    for_ticks, for_seconds = _ticks_or_duration(entry.get("for", 1), "for", fail, minimum_ticks=1)
    keep_ticks, keep_seconds = _ticks_or_duration(entry.get("keep_firing_for", 1), "keep_firing_for", fail,
                                                  minimum_ticks=1)
    scope = _scope(entry.get("scope"), catalog, fail)
    routes = _routes(entry.get("routes"), fail)
    summary = entry.get("summary", "")
    if not isinstance(summary, str):
        fail("summary", "must be text")
    if len(errors) > count or condition is None:
        return None
    return Rule(
        name=name, file=filename, line=entry.line, when=condition, kind=kind, summary=summary,
        severity=severity, scope=scope, for_ticks=for_ticks, for_seconds=for_seconds,
        keep_ticks=keep_ticks, keep_seconds=keep_seconds, routes=routes,
    )


def parse_duration(text: str) -> float | None:
    """'90s', '15m', '2h', '3d', '1w' -> seconds; None if not a duration.

    >>> parse_duration("2d"), parse_duration("1.5h"), parse_duration("soon")
    (172800.0, 5400.0, None)
    """
    match = DURATION.match(text)
    if not match:
        return None
    return float(match.group(1)) * UNIT_SECONDS[match.group(2)]


def _ticks_or_duration(value: Any, key: str, fail, minimum_ticks: int) -> tuple[int, float]:
    """An integer counts ticks (price feeds can be daily); a duration string counts time."""
    if isinstance(value, bool):
        fail(key, "must be a number of ticks or a duration like '2d'")
        return minimum_ticks, 0.0
    if isinstance(value, int):
        if value < minimum_ticks:
            fail(key, f"must be at least {minimum_ticks} tick(s)")
        return max(value, minimum_ticks), 0.0
    if isinstance(value, str):
        seconds = parse_duration(value)
        if seconds is None:
            fail(key, f"{value!r} is not a duration (use e.g. 90s, 15m, 2h, 3d, 1w) or a tick count")
            return minimum_ticks, 0.0
        return minimum_ticks, seconds
    fail(key, "must be a number of ticks or a duration like '2d'")
    return minimum_ticks, 0.0


def _scope(value: Any, catalog: Catalog, fail) -> Scope:
    if value is None:
        return Scope()
    if not isinstance(value, dict):
        fail("scope", "must be a mapping with commodity, province and/or market")
        return Scope()
    unknown = set(value) - {"commodity", "province", "market"}
    if unknown:
        fail("scope", f"unknown key(s) {', '.join(sorted(unknown))}")
    patterns: dict[str, tuple[str, ...]] = {}
    for key in ("commodity", "province", "market"):
        raw = value.get(key, "*")
        items = raw if isinstance(raw, list) else [raw]
        if not items or not all(isinstance(item, (str, int)) for item in items):
            fail("scope", f"{key} must be a glob or a list of globs")
            items = ["*"]
        patterns[key] = tuple(str(item) for item in items)
    for pattern in patterns["commodity"]:
        if not any(fnmatch.fnmatchcase(c, pattern) for c in catalog.commodities):
            fail("scope", f"commodity {pattern!r} matches no commodity in the catalog")
    provinces: list[str] = ["*"]
    if patterns["province"] != ("*",):
        # Codes and names are resolved to codes once, so matching a tick compares codes.
        provinces = []
        for pattern in patterns["province"]:
            codes = [p.code for p in catalog.provinces.values()
                     if fnmatch.fnmatchcase(p.code, pattern) or fnmatch.fnmatchcase(p.name.lower(), pattern.lower())]
            if not codes:
                fail("scope", f"province {pattern!r} matches no province code or name in the catalog")
            provinces.extend(codes)
    return Scope(patterns["commodity"], tuple(dict.fromkeys(provinces)), patterns["market"])


def _routes(value: Any, fail) -> Routes:
    if value is None:
        return Routes()
    if not isinstance(value, dict):
        fail("routes", "must be a mapping with telegram (chat ids) and/or topics (true/false)")
        return Routes()
    unknown = set(value) - {"telegram", "topics"}
    if unknown:
        fail("routes", f"unknown key(s) {', '.join(sorted(unknown))}")
    chats = value.get("telegram") or []
    if not isinstance(chats, list) or not all(isinstance(c, int) and not isinstance(c, bool) for c in chats):
        fail("routes", "telegram must be a list of numeric chat ids")
        chats = []
    topics = value.get("topics", True)
    if not isinstance(topics, bool):
        fail("routes", "topics must be true or false")
        topics = True
    return Routes(tuple(chats), topics)


def _glob_any(value: str, patterns: tuple[str, ...]) -> bool:
    return any(pattern == "*" or fnmatch.fnmatchcase(value, pattern) for pattern in patterns)


class _LineDict(dict):
    """A mapping that remembers the line of each key, for file:line errors."""

    line: int = 0
    lines: dict

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lines = {}

    def line_of(self, key: str) -> int:
        return self.lines.get(key, self.line)


class _LineLoader(yaml.SafeLoader):
    def construct_mapping(self, node, deep=False):
        mapping = _LineDict(super().construct_mapping(node, deep=True))
        mapping.line = node.start_mark.line + 1
        mapping.lines = {key_node.value: key_node.start_mark.line + 1 for key_node, _ in node.value
                         if isinstance(key_node, yaml.ScalarNode)}
        return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _LineLoader.construct_mapping)
