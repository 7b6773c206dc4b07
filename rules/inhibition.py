"""Inhibition, as in Alertmanager: a firing source alert mutes target alerts that share labels.

``source`` and ``target`` are matchers; ``equal`` lists labels whose values must be the same on
both (a label missing on both counts as equal). An alert never inhibits itself, and two alerts
that each match both sides of a rule do not mute each other (so ``severity=~".*"`` on both
sides cannot silence everything).

>>> rule = parse_inhibit_rule({"source": ['severity="critical"'], "target": ['severity="warning"'],
...                            "equal": ["commodity", "market"]})
>>> crisis = {"key": "a/cabai/pasar-agung", "rule": "a", "severity": "critical", "commodity": "cabai", "market": "pasar-agung"}
>>> warning = {"key": "b/cabai/pasar-agung", "rule": "b", "severity": "warning", "commodity": "cabai", "market": "pasar-agung"}
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


def inhibitors(event: dict, firing: list[dict], rules: tuple[InhibitRule, ...]) -> list[str]:
    """Keys of the firing alerts that mute ``event`` (empty: not inhibited)."""
    if not rules:
        return []
    labels = alert_labels(event)
    found = []
    for other in firing:
        if other.get("key") == event.get("key"):
            continue
        other_labels = alert_labels(other)
        if any(rule.mutes(labels, other_labels) for rule in rules):
            found.append(other["key"])
    return sorted(found)
