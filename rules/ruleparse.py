"""One rule entry of a rule file, with its file's ``defaults``, into a ``Rule`` (or errors).

>>> from base.catalog import load_catalog
>>> from rules.errors import Problems
>>> from base import yaml_lines
>>> doc = yaml_lines.load('''
... name: lonjakan-pasar
... value: crossmarket.score
... levels:
...   - {level: waspada, severity: info, enter: 4, exit: 3}
...   - {level: awas, severity: critical, enter: 8, exit: 6, for: 1}
... for: 2
... ''')
>>> rule = parse_rule(doc, {}, "x.yaml", load_catalog(), {"crossmarket"}, Problems("x.yaml"))
>>> [(r.level, r.enter, r.exit, r.for_ticks) for r in rule.rungs]
[('waspada', 4.0, 3.0, 2), ('awas', 8.0, 6.0, 1)]
"""
from __future__ import annotations

import fnmatch
import math
import re
from typing import Any, TypeGuard

from base.catalog import Catalog
from rules.durations import parse_duration
from rules.errors import Problems
from rules.expressions import Condition, ExpressionError, compile_condition, compile_value
from rules.matchers import BUILTIN_LABELS
from rules.model import SEVERITIES, Routes, Rule, Rung, Scope
from rules.templates import TemplateError, compile_template

EVENT_KINDS = ("tick", "health")
RULE_KEYS = {
    "name", "summary", "description", "kind", "scope", "when", "severity", "for", "keep_firing_for",
    "routes", "value", "levels", "labels", "message", "confirm",
}
INHERITED = {"scope", "severity", "for", "keep_firing_for", "routes", "kind", "labels", "message", "confirm"}
RUNG_KEYS = {"severity", "level", "enter", "exit", "for", "keep_firing_for"}
MESSAGE_KEYS = ("firing", "resolved", "escalated", "deescalated", "repeated", "unmuted", "confirmed")
RULE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
LABEL_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,31}$")


def parse_rule(entry: Any, defaults: Any, filename: str, catalog: Catalog, detectors: set[str],
               problems: Problems) -> Rule | None:
    count = len(problems)
    name = entry.get("name")
    label = f"rule {name!r}" if isinstance(name, str) else "rule"

    def value_of(key: str, default: Any = None) -> tuple[Any, Any]:
        """The value and the node it came from (the rule, or the file's defaults)."""
        if key in entry:
            return entry[key], entry
        if key in INHERITED and key in defaults:
            return defaults[key], defaults
        return default, entry

    def fail(key: str, reason: str, node: Any = None) -> None:
        problems.add(node if node is not None else entry, key, f"{label}: {key}: {reason}")

    if not isinstance(name, str) or not RULE_NAME.match(name):
        fail("name", "required: lowercase letters, digits, '-' or '_' (max 64)")
    for key in sorted(set(entry) - RULE_KEYS, key=str):
        fail(key, "unknown key (known: " + ", ".join(sorted(RULE_KEYS)) + ")")

    kind, node = value_of("kind", "tick")
    if kind not in EVENT_KINDS:
        fail("kind", f"must be one of {', '.join(EVENT_KINDS)}", node)
    when = _condition(entry.get("when"), "when", detectors, fail)
    value = None
    if "value" in entry:
        value = _condition(entry["value"], "value", detectors, fail, numeric=True)
    severity, node = value_of("severity", "warning")
    if severity not in SEVERITIES:
        fail("severity", f"must be one of {', '.join(SEVERITIES)}", node)
    for_value, for_node = value_of("for", 1)
    keep_value, keep_node = value_of("keep_firing_for", 1)
    for_ticks, for_seconds = _ticks_or_duration(for_value, "for", lambda k, r: fail(k, r, for_node))
    keep_ticks, keep_seconds = _ticks_or_duration(keep_value, "keep_firing_for", lambda k, r: fail(k, r, keep_node))
    rungs: tuple[Rung, ...] = ()
    if "levels" in entry:
        if value is None and "value" not in entry:
            fail("levels", "a ladder needs 'value:', the number its levels are compared with")
        if "severity" in entry:
            fail("severity", "a ladder's severities are given per level")
        rungs = _ladder(entry["levels"], (for_ticks, for_seconds, keep_ticks, keep_seconds), fail,
                        lambda node, key, reason: problems.add(node, key, f"{label}: levels: {reason}"))
    elif "value" in entry:
        fail("value", "'value:' is read by 'levels:'; add levels, or write the condition in 'when:'")
    elif "when" not in entry:
        fail("when", "required: a condition such as 'zscore.fired and crossmarket.fired'")
    scope_value, scope_node = value_of("scope")
    scope = _scope(scope_value, catalog, lambda k, r: fail(k, r, scope_node))
    routes_value, routes_node = value_of("routes")
    routes = _routes(routes_value, lambda k, r: fail(k, r, routes_node)) if routes_value is not None else None
    labels = _labels(defaults.get("labels"), defaults, fail) + _labels(entry.get("labels"), entry, fail)
    labels = tuple(dict(labels).items())
    message_value, message_node = value_of("message")
    messages = _messages(message_value, lambda k, r: fail(k, r, message_node))
    confirm, confirm_node = value_of("confirm")
    if confirm is not None and confirm not in SEVERITIES:
        fail("confirm", f"the severity from which a second source or market must confirm: one of "
                        f"{', '.join(SEVERITIES)}", confirm_node)
    summary = entry.get("summary", "")
    if not isinstance(summary, str):
        fail("summary", "must be text")
    if len(problems) > count or ("when" in entry and when is None) or ("value" in entry and value is None):
        return None
    return Rule(
        name=name, file=filename, line=entry.line, when=when, kind=kind, summary=summary,
        severity=rungs[0].severity if rungs else severity, scope=scope, for_ticks=for_ticks,
        for_seconds=for_seconds, keep_ticks=keep_ticks, keep_seconds=keep_seconds, routes=routes,
        value=value, rungs=rungs, labels=labels, messages=messages, confirm=confirm,
    )


def _condition(source: Any, key: str, detectors: set[str], fail, numeric: bool = False) -> Condition | None:
    if source is None:
        return None
    if isinstance(source, bool) and not numeric:
        source = str(source).lower()
    if isinstance(source, (int, float)) and numeric and not isinstance(source, bool):
        source = str(source)
    if not isinstance(source, str) or not source.strip():
        fail(key, "must be an expression such as " + ("'crossmarket.score'" if numeric else "'zscore.fired'"))
        return None
    try:
        return (compile_value if numeric else compile_condition)(source, detectors)
    except ExpressionError as exc:
        fail(key, str(exc))
        return None


def _ladder(value: Any, timing: tuple, fail, report) -> tuple[Rung, ...]:
    if not isinstance(value, list) or not value:
        fail("levels", "a list of {severity, level, enter, exit}, lowest first")
        return ()
    rungs: list[Rung] = []
    for index, item in enumerate(value):
        where = f"level {index + 1}"
        if not isinstance(item, dict):
            report(value, index, f"{where}: a mapping with severity, enter and exit")
            continue

        def bad(reason: str, key: str | None = None, item: Any = item, where: str = where) -> None:
            report(item, key, f"{where}: {reason}")

        for key in sorted(set(item) - RUNG_KEYS, key=str):
            bad(f"unknown key {key!r} (known: {', '.join(sorted(RUNG_KEYS))})", key)
        severity = item.get("severity")
        if severity not in SEVERITIES:
            bad(f"severity must be one of {', '.join(SEVERITIES)}", "severity")
            continue
        level = item.get("level", severity)
        if not isinstance(level, str) or not RULE_NAME.match(level):
            bad("level must be a short name such as siaga", "level")
            continue
        enter, exit_ = item.get("enter"), item.get("exit", item.get("enter"))
        if not _number(enter) or not _number(exit_):
            bad("enter (and exit) must be numbers", "enter")
            continue
        if exit_ > enter:
            bad(f"exit {exit_} is above enter {enter}: it must be at or below it (hysteresis)", "exit")
        for_ticks, for_seconds = _ticks_or_duration(item.get("for", None), "for", lambda k, r: bad(r, k), timing[:2])
        keep_ticks, keep_seconds = _ticks_or_duration(item.get("keep_firing_for", None), "keep_firing_for",
                                                      lambda k, r: bad(r, k), timing[2:])
        rung = Rung(severity, level, float(enter), float(exit_), for_ticks, for_seconds, keep_ticks, keep_seconds)
        if rungs:
            below = rungs[-1]
            # A ladder's rungs all have enter and exit (made just above from numbers).
            if float(enter) <= (below.enter or 0.0) or float(exit_) < (below.exit or 0.0):
                bad("levels go from lowest to highest: enter and exit must rise", "enter")
            if SEVERITIES.index(rung.severity) < SEVERITIES.index(below.severity):
                bad("a higher level cannot have a lower severity", "severity")
            if rung.level in {r.level for r in rungs}:
                bad(f"level name {rung.level!r} is used twice", "level")
        rungs.append(rung)
    return tuple(rungs)


def _number(value: Any) -> TypeGuard[float]:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _ticks_or_duration(value: Any, key: str, fail, default: tuple[int, float] = (1, 0.0)) -> tuple[int, float]:
    """An integer counts ticks (price feeds can be daily); a duration string counts time."""
    if value is None:
        return default
    if isinstance(value, bool):
        fail(key, "must be a number of ticks or a duration like '2d'")
        return 1, 0.0
    if isinstance(value, int):
        if value < 1:
            fail(key, "must be at least 1 tick(s)")
        return max(value, 1), 0.0
    if isinstance(value, str):
        seconds = parse_duration(value)
        if seconds is None:
            fail(key, f"{value!r} is not a duration (use e.g. 90s, 15m, 2h, 3d, 1w) or a tick count")
            return 1, 0.0
        return 1, seconds
    fail(key, "must be a number of ticks or a duration like '2d'")
    return 1, 0.0


def _scope(value: Any, catalog: Catalog, fail) -> Scope:
    if value is None:
        return Scope()
    if not isinstance(value, dict):
        fail("scope", "must be a mapping with commodity, province and/or market")
        return Scope()
    unknown = set(value) - {"commodity", "province", "market"}
    if unknown:
        fail("scope", f"unknown key(s) {', '.join(sorted(map(str, unknown)))}")
    patterns: dict[str, tuple[str, ...]] = {}
    for key in ("commodity", "province", "market"):
        raw = value.get(key, "*")
        items = raw if isinstance(raw, list) else [raw]
        if not items or not all(isinstance(item, (str, int)) and not isinstance(item, bool) for item in items):
            fail("scope", f"{key} must be a glob or a list of globs")
            items = ["*"]
        patterns[key] = tuple(str(item) for item in items)
    for pattern in patterns["commodity"]:
        if not any(fnmatch.fnmatchcase(c, pattern.lstrip("!")) for c in catalog.commodities):
            fail("scope", f"commodity {pattern!r} matches no commodity in the catalog")
    provinces: list[str] = ["*"]
    if patterns["province"] != ("*",):
        # Codes and names are resolved to codes once, so matching a tick compares codes.
        provinces = []
        for pattern in patterns["province"]:
            negate, glob = pattern.startswith("!"), pattern.lstrip("!")
            codes = [p.code for p in catalog.provinces.values()
                     if fnmatch.fnmatchcase(p.code, glob) or fnmatch.fnmatchcase(p.name.lower(), glob.lower())]
            if not codes:
                fail("scope", f"province {pattern!r} matches no province code or name in the catalog")
            provinces.extend("!" + code if negate else code for code in codes)
    return Scope(patterns["commodity"], tuple(dict.fromkeys(provinces)), patterns["market"])


def _routes(value: Any, fail) -> Routes:
    if not isinstance(value, dict):
        fail("routes", "must be a mapping with telegram (chat ids) and/or topics (true/false)")
        return Routes()
    unknown = set(value) - {"telegram", "topics"}
    if unknown:
        fail("routes", f"unknown key(s) {', '.join(sorted(map(str, unknown)))}")
    chats = value.get("telegram") or []
    if not isinstance(chats, list) or not all(isinstance(c, int) and not isinstance(c, bool) for c in chats):
        fail("routes", "telegram must be a list of numeric chat ids")
        chats = []
    topics = value.get("topics", True)
    if not isinstance(topics, bool):
        fail("routes", "topics must be true or false")
        topics = True
    return Routes(tuple(chats), topics)


def _labels(value: Any, node: Any, fail) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, dict):
        fail("labels", "must be a mapping of label: value", node)
        return ()
    labels = []
    for name, text in value.items():
        if not isinstance(name, str) or not LABEL_NAME.match(name):
            fail("labels", f"{name!r} is not a label name (lowercase letters, digits, _)", node)
        elif name in BUILTIN_LABELS:
            fail("labels", f"{name!r} is set by the engine; choose another name", node)
        elif not isinstance(text, (str, int, float)) or isinstance(text, bool):
            fail("labels", f"label {name!r} needs a text value", node)
        else:
            labels.append((name, str(text)))
    return tuple(labels)


def _messages(value: Any, fail) -> tuple:
    if value is None:
        return ()
    if isinstance(value, str):
        value = {"firing": value}
    if not isinstance(value, dict):
        fail("message", f"text, or a mapping with {', '.join(MESSAGE_KEYS)}")
        return ()
    templates = []
    for key, text in value.items():
        if key not in MESSAGE_KEYS:
            fail("message", f"unknown key {key!r} (known: {', '.join(MESSAGE_KEYS)})")
            continue
        try:
            templates.append((key, compile_template(text)))
        except TemplateError as exc:
            fail("message", f"{key}: {exc}")
    return tuple(templates)
