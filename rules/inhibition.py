"""Inhibition, as in Alertmanager: a firing source alert mutes target alerts that share labels.

``source`` and ``target`` are matchers; ``equal`` lists labels whose values must be the same on
both (a label missing on both counts as equal). An alert never inhibits itself, and two alerts
that each match both sides of a rule do not mute each other (so ``severity=~".*"`` on both
sides cannot silence everything).

>>> rule = parse_inhibit_rule({"source": ['severity="critical"'], "target": ['severity="warning"'],
...                            "equal": ["commodity", "market"]})
>>> crisis = {"key": "a/cabai/pasar-agung", "rule": "a", "severity": "critical",
...           "commodity": "cabai", "market": "pasar-agung"}
>>> warning = {"key": "b/cabai/pasar-agung", "rule": "b", "severity": "warning",
...            "commodity": "cabai", "market": "pasar-agung"}
>>> inhibitors(warning, [crisis, warning], (rule,)), inhibitors(crisis, [crisis, warning], (rule,))
(['a/cabai/pasar-agung'], [])
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rules.matchers import Matcher, MatcherError, alert_labels, match_all, parse_matchers

INHIBIT_KEYS = {"name", "source", "target", "equal"}


class InhibitError(ValueError):
    pass


@dataclass(frozen=True)
class InhibitRule:
    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...] = ()
    name: str = ""

    def mutes(self, target: dict[str, str], source: dict[str, str]) -> bool:
        if not (match_all(self.target, target) and match_all(self.source, source)):
            return False
        if match_all(self.source, target) and match_all(self.target, source):
            return False  # both alerts are both kinds: neither outranks the other
        return all(target.get(name, "") == source.get(name, "") for name in self.equal)


def parse_inhibit_rule(item: Any) -> InhibitRule:
    if not isinstance(item, dict):
        raise InhibitError("an inhibit rule is a mapping with source, target and equal")
    unknown = set(item) - INHIBIT_KEYS
    if unknown:
        raise InhibitError(f"unknown key(s) {', '.join(sorted(map(str, unknown)))} "
                           f"(known: {', '.join(sorted(INHIBIT_KEYS))})")
    sides = {}
    for side in ("source", "target"):
        if side not in item:
            raise InhibitError(f"{side} is required: matchers such as severity=\"critical\"")
        try:
            sides[side] = parse_matchers(item[side])
        except MatcherError as exc:
            raise InhibitError(f"{side}: {exc}") from None
        if not sides[side]:
            raise InhibitError(f"{side} needs at least one matcher")
    equal = item.get("equal", [])
    if not isinstance(equal, list) or not all(isinstance(name, str) for name in equal):
        raise InhibitError("equal must be a list of label names, e.g. [commodity, market]")
    name = item.get("name", "")
    return InhibitRule(sides["source"], sides["target"], tuple(equal), str(name))


class FiringIndex:
    """The firing alerts each inhibit rule could use as sources, by the values of its ``equal``
    labels: the alerts that may mute one event are found by one lookup per rule, not by scanning
    every firing alert for every event (with hundreds of series firing, that scan was a fifth of
    the engine's time). Built once per batch, over the alerts firing then."""

    def __init__(self, firing: list[dict], rules: tuple[InhibitRule, ...]):
        self.rules = rules
        self._firing = firing
        self._sources: list[dict[tuple[str, ...], list[tuple[str, dict[str, str]]]]] | None = None

    def _build(self) -> list[dict[tuple[str, ...], list[tuple[str, dict[str, str]]]]]:
        # On first use: a batch that raises nothing never pays for the index.
        labelled = [(other.get("key", ""), alert_labels(other)) for other in self._firing]
        sources = []
        for rule in self.rules:
            by_equal: dict[tuple[str, ...], list[tuple[str, dict[str, str]]]] = {}
            for key, labels in labelled:
                if match_all(rule.source, labels):
                    by_equal.setdefault(_equal_values(rule, labels), []).append((key, labels))
            sources.append(by_equal)
        return sources

    def inhibitors(self, event: dict) -> list[str]:
        """Keys of the firing alerts that mute ``event`` (empty: not inhibited)."""
        if not self.rules:
            return []
        if self._sources is None:
            self._sources = self._build()
        labels = alert_labels(event)
        found = set()
        for rule, by_equal in zip(self.rules, self._sources):
            if not match_all(rule.target, labels):
                continue
            for key, other_labels in by_equal.get(_equal_values(rule, labels), ()):
                if key != event.get("key") and rule.mutes(labels, other_labels):
                    found.add(key)
        return sorted(found)


def _equal_values(rule: InhibitRule, labels: dict[str, str]) -> tuple[str, ...]:
    return tuple(labels.get(name, "") for name in rule.equal)


def inhibitors(event: dict, firing: list[dict], rules: tuple[InhibitRule, ...]) -> list[str]:
    """Keys of the firing alerts that mute ``event`` (empty: not inhibited)."""
    return FiringIndex(firing, rules).inhibitors(event)
