"""Label matchers, as operators know them from Alertmanager: ``severity="critical"``.

Four operators: ``=`` equal, ``!=`` not equal, ``=~`` regex matches the whole value, ``!~``
regex does not. Quotes around the value are optional. Routing, inhibition and silences all
use these, over the same labels of an alert event (see ``alert_labels``).

>>> m = parse_matcher('commodity=~"cabai-.*"')
>>> m.matches({"commodity": "cabai-rawit-merah"}), m.matches({"commodity": "bawang-merah"})
(True, False)
>>> str(parse_matcher("severity!=info"))
'severity!="info"'
>>> parse_matcher("severity == critical")
Traceback (most recent call last):
...
rules.matchers.MatcherError: 'severity == critical': the value cannot start with '=' (operators are =, !=, =~, !~)
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# Labels every alert event has; rules may add their own with `labels:`.
BUILTIN_LABELS = ("rule", "severity", "level", "kind", "commodity", "market", "province", "state")

_MATCHER = re.compile(r"^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$")
_OPS = ("=", "!=", "=~", "!~")


class MatcherError(ValueError):
    pass


@dataclass(frozen=True)
class Matcher:
    name: str
    op: str
    value: str

    def matches(self, labels: dict[str, Any]) -> bool:
        actual = str(labels.get(self.name) if labels.get(self.name) is not None else "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        found = re.fullmatch(self.value, actual) is not None
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        return f'{self.name}{self.op}"{self.value}"'

    def as_json(self) -> dict:
        return {"name": self.name, "op": self.op, "value": self.value}


def parse_matcher(text: Any) -> Matcher:
    """A matcher from ``name<op>value`` text, or from ``{"name", "value", "op"}``."""
    if isinstance(text, dict):
        return matcher_from_json(text)
    if not isinstance(text, str):
        raise MatcherError(f"{text!r}: a matcher is text such as severity=\"critical\"")
    found = _MATCHER.match(text)
    if not found:
        raise MatcherError(f"{text!r}: expected label<op>value with op one of =, !=, =~, !~")
    name, op, value = found.groups()
    if value.startswith(("=", "~")):
        raise MatcherError(f"{text!r}: the value cannot start with {value[0]!r} (operators are =, !=, =~, !~)")
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    return _checked(name, op, value, text)


def matcher_from_json(item: dict) -> Matcher:
    """``{"name": "severity", "value": "critical", "op": "="}``; Alertmanager's ``isRegex`` /
    ``isEqual`` booleans are accepted in place of ``op``."""
    name, value = item.get("name"), item.get("value")
    if not isinstance(name, str) or not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise MatcherError(f"{item!r}: a matcher needs a label name and a value")
    op = item.get("op")
    if op is None:
        regex, equal = bool(item.get("isRegex", item.get("regex", False))), item.get("isEqual", True)
        op = ("=~" if regex else "=") if equal else ("!~" if regex else "!=")
    if op not in _OPS:
        raise MatcherError(f"{item!r}: op must be one of {', '.join(_OPS)}")
    return _checked(name, op, str(value), str(item))


def _checked(name: str, op: str, value: str, text: str) -> Matcher:
    if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", name):
        raise MatcherError(f"{text!r}: {name!r} is not a label name")
    if op in ("=~", "!~"):
        try:
            re.compile(value)
        except re.error as exc:
            raise MatcherError(f"{text!r}: bad regular expression: {exc}") from None
    return Matcher(name, op, value)


def parse_matchers(items: Any) -> tuple[Matcher, ...]:
    """A list of matchers (all must match); a single string is a list of one."""
    if isinstance(items, (str, dict)):
        items = [items]
    if not isinstance(items, list):
        raise MatcherError("matchers must be a list such as ['severity=\"critical\"', 'province=\"32\"']")
    return tuple(parse_matcher(item) for item in items)


def match_all(matchers: tuple[Matcher, ...], labels: dict[str, Any]) -> bool:
    return all(matcher.matches(labels) for matcher in matchers)


def alert_labels(event: dict) -> dict[str, str]:
    """The labels matchers see: the event's identity fields and its rule's ``labels``."""
    labels = {name: str(event.get(name) if event.get(name) is not None else "") for name in BUILTIN_LABELS}
    for name, value in (event.get("labels") or {}).items():
        labels.setdefault(name, str(value))
    return labels
