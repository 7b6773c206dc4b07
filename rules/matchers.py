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

Regular expressions run on RE2, whose time is linear in the label's length whatever the pattern
(Python's ``re`` backtracks: ``(.*){30}Z`` takes 4 s on an 8-character value, and over 20 s on 10).
Patterns RE2 cannot run in linear time (backreferences, lookaround) are refused when read:

>>> parse_matcher(r'market=~"(a)\\1"')
Traceback (most recent call last):
...
rules.matchers.MatcherError: 'market=~"(a)\\\\1"': bad regular expression: invalid escape sequence: ...
"""
from __future__ import annotations

from dataclasses import dataclass, field
from difflib import get_close_matches
from functools import lru_cache
from typing import Any

import re2

# Labels every alert event has; rules may add their own with `labels:`.
BUILTIN_LABELS = ("rule", "severity", "level", "kind", "commodity", "market", "province", "state")

# RE2 here too: with Python's re, ``(.*?)\s*$`` is quadratic on a value holding a long run of spaces.
_MATCHER = re2.compile(r"^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$")
_OPS = ("=", "!=", "=~", "!~")
# Longer patterns are no use for label values (ids, codes, rule names) and cost memory per
# silence in the engine; RE2 bounds the compiled program itself too (max_mem).
MAX_PATTERN = 512
MAX_TEXT = MAX_PATTERN + 100  # a whole matcher: name, operator, quotes and the value
_RE2 = re2.Options()
_RE2.log_errors = False  # a refused pattern is reported to the operator, not to stderr


class MatcherError(ValueError):
    pass


@dataclass(frozen=True)
class Matcher:
    name: str
    op: str
    value: str
    # The value compiled by RE2 for =~ and !~ (see ``compile_pattern``); built once, when read.
    pattern: Any = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.op in ("=~", "!~") and self.pattern is None:
            object.__setattr__(self, "pattern", compile_pattern(self.value))

    def matches(self, labels: dict[str, Any]) -> bool:
        actual = str(labels.get(self.name) if labels.get(self.name) is not None else "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        found = _fullmatch(self.pattern, actual) if len(actual) <= _MEMO_LENGTH else _run(self.pattern, actual)
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
        raise MatcherError(f"{_short(repr(text))}: a matcher is text such as severity=\"critical\"")
    if len(text) > MAX_TEXT:
        raise MatcherError(f"{_short(text)!r}: a matcher is at most {MAX_TEXT} characters")
    found = _MATCHER.match(text)
    if not found:
        raise MatcherError(f"{_short(text)!r}: expected label<op>value with op one of =, !=, =~, !~")
    name, op, value = found.groups()
    if value.startswith(("=", "~")):
        raise MatcherError(f"{_short(text)!r}: the value cannot start with {value[0]!r} (operators are =, !=, =~, !~)")
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    return _checked(name, op, value, text)


def matcher_from_json(item: dict) -> Matcher:
    """``{"name": "severity", "value": "critical", "op": "="}``; Alertmanager's ``isRegex`` /
    ``isEqual`` booleans are accepted in place of ``op``."""
    name, value = item.get("name"), item.get("value")
    if not isinstance(name, str) or not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise MatcherError(f"{_short(repr(item))}: a matcher needs a label name and a value")
    op = item.get("op")
    if op is None:
        regex, equal = bool(item.get("isRegex", item.get("regex", False))), item.get("isEqual", True)
        op = ("=~" if regex else "=") if equal else ("!~" if regex else "!=")
    if op not in _OPS:
        raise MatcherError(f"{_short(repr(item))}: op must be one of {', '.join(_OPS)}")
    return _checked(name, op, str(value), str(item))


@lru_cache(maxsize=1024)
def compile_pattern(value: str) -> Any:
    """``value`` compiled by RE2; raises MatcherError when it is too long or RE2 refuses it.

    Cached: the engine rebuilds each silence's matchers from JSON for every event it checks."""
    if len(value) > MAX_PATTERN:
        raise MatcherError(f"a regular expression is at most {MAX_PATTERN} characters, this one has {len(value)}")
    try:
        return re2.compile(value, _RE2)
    except re2.error as exc:
        reason = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise MatcherError(f"bad regular expression: {reason} "
                           "(backreferences and lookaround are not supported)") from None


# Label values repeat (a few thousand markets, a few dozen commodities) and each call into the
# RE2 wrapper costs about 15 us: remembered answers make a silence check a dictionary lookup.
_MEMO_LENGTH = 256


def _run(pattern: Any, actual: str) -> bool:
    return pattern.fullmatch(actual) is not None


_fullmatch = lru_cache(maxsize=16384)(_run)


def _checked(name: str, op: str, value: str, text: str) -> Matcher:
    if not (name.isascii() and name.isidentifier()):  # [a-zA-Z_][a-zA-Z0-9_]*
        raise MatcherError(f"{_short(text)!r}: {_short(repr(name))} is not a label name")
    try:
        return Matcher(name, op, value)
    except MatcherError as exc:
        raise MatcherError(f"{_short(text)!r}: {exc}") from None


def _short(text: str, limit: int = 80) -> str:
    """Matcher text as quoted in errors: a 100,000-character pattern is not echoed back."""
    return text if len(text) <= limit else f"{text[:limit]}..."


def parse_matchers(items: Any) -> tuple[Matcher, ...]:
    """A list of matchers (all must match); a single string is a list of one."""
    if isinstance(items, (str, dict)):
        items = [items]
    if not isinstance(items, list):
        raise MatcherError("matchers must be a list such as ['severity=\"critical\"', 'province=\"32\"']")
    return tuple(parse_matcher(item) for item in items)


def match_all(matchers: tuple[Matcher, ...], labels: dict[str, Any]) -> bool:
    return all(matcher.matches(labels) for matcher in matchers)


def check_matcher(matcher: Matcher, known: dict[str, Any]) -> str | None:
    """Why a matcher can never be what the operator meant, or None when it is fine.

    ``known`` maps each label alerts can carry to the values it can take (None: any value).

    >>> known = {"commodity": {"bawang-merah", "cabai-rawit-merah"}, "market": None}
    >>> print(check_matcher(parse_matcher('komoditas="bawang-merah"'), known))
    komoditas="bawang-merah": unknown label 'komoditas'; did you mean 'commodity'? (labels: commodity, market)
    >>> print(check_matcher(parse_matcher('commodity="bawang-merahh"'), known))
    commodity="bawang-merahh": no alert has commodity 'bawang-merahh'; did you mean 'bawang-merah'?
    """
    if matcher.name not in known:
        return f"{_short(str(matcher))}: unknown label {_short(matcher.name)!r}{suggest(matcher.name, known)}"
    values = known[matcher.name]
    if values is not None and matcher.op in ("=", "!=") and matcher.value not in values:
        hint = get_close_matches(matcher.value, sorted(values), n=1)
        more = f"; did you mean {hint[0]!r}?" if hint else ""
        return f"{_short(str(matcher))}: no alert has {matcher.name} {_short(matcher.value)!r}{more}"
    return None


def suggest(name: str, known: Any) -> str:
    """``; did you mean 'x'?`` when a known name is close, then the known names."""
    hint = get_close_matches(name, sorted(known), n=1)
    close = f"; did you mean {hint[0]!r}?" if hint else ""
    return f"{close} (labels: {', '.join(sorted(known))})"


def alert_labels(event: dict) -> dict[str, str]:
    """The labels matchers see: the event's identity fields and its rule's ``labels``."""
    labels = {name: str(event.get(name) if event.get(name) is not None else "") for name in BUILTIN_LABELS}
    for name, value in (event.get("labels") or {}).items():
        labels.setdefault(name, str(value))
    return labels
