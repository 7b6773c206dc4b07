"""Load and validate rule files (``rules/*.yaml``) into a ``RuleSet``, all or nothing.

Every problem is reported as ``file:line: reason`` and the whole set is rejected, so the
engine keeps the last good set in force (see ``rules/rulebook.py``). A file may hold
``defaults``, ``rules``, ``receivers``, ``time_windows``, ``route`` (one file of the set) and
``inhibit``; the format is described in docs/rules.md.

>>> from base.catalog import load_catalog
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
rules.errors.RuleSetError: bad.yaml:3: rule 'x': when: unknown name 'nosuch'; known: age, change, ..., stale
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import yaml

from base import yaml_lines
from base.catalog import Catalog
from rules.durations import parse_duration
from rules.errors import Problems, RuleError, RuleSetError
from rules.inhibition import InhibitError, InhibitRule, parse_inhibit_rule
from rules.matchers import check_matcher, suggest
from rules.model import SEVERITIES, Names, Routes, Rule, RuleSet, Scope
from rules.routing import ReceiverConfig, Route, Router, parse_receivers, parse_route, parse_windows
from rules.ruleparse import INHERITED, parse_rule
from rules.timewindows import Window
from base.yaml_lines import LineDict, LineList

__all__ = ["RuleError", "RuleSetError", "Rule", "RuleSet", "Routes", "Scope", "SEVERITIES", "load_rules",
           "parse_rule_text", "rule_files", "in_context", "known_values", "parse_duration"]

FILE_KEYS = {"defaults", "rules", "receivers", "time_windows", "route", "inhibit"}


@dataclass
class _File:
    """What one file contributes before the set is assembled."""

    name: str
    rules: list[Rule] = field(default_factory=list)
    receivers: dict[str, ReceiverConfig] = field(default_factory=dict)
    windows: dict[str, Window] = field(default_factory=dict)
    route: tuple[Any, LineDict] | None = None
    inhibit: list[tuple[InhibitRule, Any, int]] = field(default_factory=list)
    # Whether all of the file could be read, and all of its rules: what other files' routes and
    # matchers name (receivers, windows; rules, levels, labels) may be in what is missing.
    read: bool = True
    all_rules: bool = True


def rule_files(directory: str | Path) -> list[Path]:
    """The rule files of a directory: every *.yaml / *.yml directly in it (not catalog/, tests/)."""
    directory = Path(directory)
    return sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def in_context(file: Path, directory: Path) -> list[Path]:
    """The rule files of ``directory`` with ``file`` in place of its namesake: the set a changed
    file would join, so its references to other files' rules, labels and receivers resolve."""
    paths = rule_files(directory) if directory.is_dir() else []
    return [p for p in paths if p.name != file.name] + [file]


def load_rules(paths: list[Path], catalog: Catalog, detectors: set[str]) -> RuleSet:
    """Load every file; raise RuleSetError listing every problem in every file."""
    errors: list[RuleError] = []
    files = []
    for path in paths:
        try:
            text = yaml_lines.read_text(path)
        except (OSError, UnicodeDecodeError, yaml_lines.FileTooLarge) as exc:
            errors.append(RuleError(str(path), 0, f"cannot read: {exc}"))
            files.append(_File(str(path), read=False, all_rules=False))
            continue
        files.append(_parse_file(text, str(path), catalog, detectors, Problems(str(path), errors)))
    ruleset = _assemble(files, catalog, errors)
    if errors:
        raise RuleSetError(errors)
    return RuleSet(ruleset.rules, tuple(str(p) for p in paths), ruleset.router, ruleset.inhibit, ruleset.names)


def parse_rule_text(text: str, filename: str, catalog: Catalog, detectors: set[str]) -> RuleSet:
    """One file on its own (its route may only name its own receivers and windows)."""
    errors: list[RuleError] = []
    parts = _parse_file(text, filename, catalog, detectors, Problems(filename, errors))
    ruleset = _assemble([parts], catalog, errors)
    if errors:
        raise RuleSetError(errors)
    return ruleset


def _parse_file(text: str, filename: str, catalog: Catalog, detectors: set[str], problems: Problems) -> _File:
    parts = _File(filename)
    try:
        document = yaml_lines.load(text)
    except yaml.YAMLError as exc:
        problems.at(yaml_lines.error_line(exc) or 0, f"not valid YAML: {yaml_lines.error_reason(exc)}")
        parts.read = parts.all_rules = False
        return parts
    if document is None:
        return parts
    if not isinstance(document, LineDict):
        problems.at(1, "a rule file is a mapping with 'rules:' (and optional 'defaults:', 'route:' ...)")
        parts.read = parts.all_rules = False
        return parts
    for key in sorted(set(document) - FILE_KEYS, key=str):
        problems.add(document, key, f"unknown top-level key {key!r} (known: {', '.join(sorted(FILE_KEYS))})")
    defaults = document.get("defaults")
    if defaults is None:
        defaults = LineDict()
    elif not isinstance(defaults, LineDict):
        problems.add(document, "defaults", "defaults must be a mapping")
        defaults, parts.all_rules = LineDict(), False
    for key in sorted(set(defaults) - INHERITED, key=str):
        problems.add(defaults, key, f"defaults cannot set {key!r} (they can set: {', '.join(sorted(INHERITED))})")
    entries = document.get("rules") or []
    if not isinstance(entries, list):
        problems.add(document, "rules", "rules must be a list")
        entries, parts.all_rules = [], False
    for index, entry in enumerate(entries):
        if not isinstance(entry, LineDict):
            problems.add(entries, index, "each rule must be a mapping")
            parts.all_rules = False
            continue
        rule = parse_rule(entry, defaults, filename, catalog, detectors, problems)
        if rule is not None:
            parts.rules.append(rule)
        else:
            parts.all_rules = False
    if "receivers" in document:
        parts.receivers = parse_receivers(document["receivers"], problems, document)
    if "time_windows" in document:
        parts.windows = parse_windows(document["time_windows"], problems, document)
    if "route" in document:
        parts.route = (document["route"], document)
    raw = document.get("inhibit", [])
    if not isinstance(raw, list):
        problems.add(document, "inhibit", "inhibit must be a list of {source, target, equal}")
        raw = []
    lines = cast(LineList, raw)  # a list of the document: base/yaml_lines.py made it
    for index, item in enumerate(raw):
        try:
            parts.inhibit.append((parse_inhibit_rule(item), item, lines.line_of(index)))
        except InhibitError as exc:
            problems.at(lines.line_of(index), f"inhibit rule {index + 1}: {exc}")
    return parts


def _assemble(files: list[_File], catalog: Catalog, errors: list[RuleError]) -> RuleSet:
    rules: list[Rule] = []
    seen: dict[str, Rule] = {}
    receivers: dict[str, ReceiverConfig] = {}
    windows: dict[str, Window] = {}
    for parts in files:
        for rule in parts.rules:
            if rule.name in seen:
                first = seen[rule.name]
                errors.append(RuleError(rule.file, rule.line,
                                        f"rule name {rule.name!r} already used at {first.file}:{first.line}"))
            seen[rule.name] = rule
            rules.append(rule)
        merging: tuple[tuple[str, dict[str, Any], dict[str, Any]], ...] = (
            ("receiver", parts.receivers, receivers), ("time window", parts.windows, windows))
        for kind, own, merged in merging:
            for name in own:
                if name in merged:
                    errors.append(RuleError(parts.name, 0, f"{kind} {name!r} is defined in more than one file"))
            merged.update(own)
    # While part of the set is missing, a name not found may be defined in that part: such names
    # are not reported, only the error that made the part missing (one mistake, one error).
    read = all(parts.read for parts in files)
    all_rules = all(parts.all_rules for parts in files)
    root: Route | None = None
    route_file = None
    known = _known_values(rules, catalog)
    for parts in files:
        if parts.route is None:
            continue
        value, node = parts.route
        problems = Problems(parts.name, errors)
        if route_file is not None:
            problems.add(node, "route", f"the routing tree is already defined in {route_file}; one file holds it")
            continue
        route_file = parts.name
        root = parse_route(value, problems, node, receivers, windows, check_names=read)
        if root is not None and all_rules:
            _check_route_matchers(root, value, problems, known)
    inhibit: list[InhibitRule] = []
    for parts in files:
        for inhibit_rule, item, _line in parts.inhibit:
            inhibit.append(inhibit_rule)
            if not all_rules:
                continue
            for side in ("source", "target"):
                for matcher in getattr(inhibit_rule, side):
                    reason = check_matcher(matcher, known)
                    if reason:
                        errors.append(RuleError(parts.name, item.line_of(side), f"inhibit rule: {side}: {reason}"))
            for name in inhibit_rule.equal:
                if name not in known:
                    errors.append(RuleError(parts.name, item.line_of("equal"),
                                            f"inhibit rule: equal: unknown label {name!r}{suggest(name, known)}"))
    timezones = {p.code: p.timezone for p in catalog.provinces.values()}
    names = Names(
        commodities={c.id: (c.name_id, c.unit) for c in catalog.commodities.values()},
        markets={m.id: m.name for m in catalog.markets.values()},
        provinces={p.code: (p.name, p.timezone, p.tz_abbr) for p in catalog.provinces.values()},
    )
    router = Router(root, receivers, windows, timezones)
    return RuleSet(tuple(rules), tuple(p.name for p in files), router, tuple(inhibit), names)


def _known_values(rules: list[Rule] | tuple[Rule, ...], catalog: Catalog) -> dict[str, set[str] | None]:
    return known_values(rules, set(catalog.commodities), set(catalog.provinces))


def known_values(rules: list[Rule] | tuple[Rule, ...], commodities: set[str],
                 provinces: set[str]) -> dict[str, set[str] | None]:
    """Label name -> the values it can take (None: any value): what matchers are checked against."""
    known: dict[str, set[str] | None] = {
        "rule": {r.name for r in rules},
        "severity": set(SEVERITIES),
        "level": {rung.level for r in rules for rung in r.rungs},
        "kind": {"tick", "health"},
        "state": {"firing", "resolved"},
        "commodity": set(commodities),
        "province": set(provinces),
        "market": None,  # devices may report markets not in the catalog yet
    }
    for rule in rules:
        for name, value in rule.labels:
            values = known.setdefault(name, set())
            if values is not None:
                values.add(value)
    return known


def _check_route_matchers(route: Route, node: Any, problems: Problems, known: dict) -> None:
    for matcher in route.matchers:
        reason = check_matcher(matcher, known)
        if reason:
            problems.add(node, "matchers", f"route {route.path}: {reason}")
    children = node.get("routes", []) if isinstance(node, dict) else []
    for child, child_node in zip(route.routes, [c for c in children if isinstance(c, dict)]):
        _check_route_matchers(child, child_node, problems, known)
