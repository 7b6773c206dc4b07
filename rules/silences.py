"""Silences: an operator mutes the alerts that match some labels for a while. Pure functions.

A silence is a plain dict, stored as JSON (see ``server/silences.py``)::

    {"id": "...", "matchers": [{"name": "commodity", "op": "=", "value": "cabai-rawit-merah"}],
     "starts_at": 1719800000.0, "ends_at": 1719886400.0, "author": "budi", "comment": "panen raya",
     "created_at": 1719800000.0, "updated_at": 1719800000.0}

It silences an alert event while ``starts_at <= now < ends_at`` and all matchers match the
event's labels (``rules.matchers.alert_labels``). Deleting a silence expires it (``ends_at``
becomes now); expired silences are kept for audit.

>>> s = new_silence({"matchers": ['commodity="cabai-rawit-merah"'], "duration": "2h",
...                  "author": "budi", "comment": "harga panen"}, now=1000.0, silence_id="s1")
>>> alert = {"rule": "kenaikan-tajam", "commodity": "cabai-rawit-merah", "market": "pasar-agung"}
>>> is_silenced(alert, [s], 1000.0)["id"], is_silenced(alert, [s], 1000.0 + 7200), silence_state(s, 9000.0)
('s1', None, 'expired')
"""
from __future__ import annotations

import math
import uuid
from datetime import datetime, timezone
from typing import Any

import orjson

from rules.durations import parse_duration
from rules.matchers import MatcherError, alert_labels, check_matcher, match_all, matcher_from_json, parse_matcher

MAX_TEXT = 1000
MAX_MATCHERS = 32  # each is compiled, and checked against every alert the engine raises
FIELDS = {"matchers", "starts_at", "ends_at", "duration", "author", "comment"}


class SilenceError(ValueError):
    """Problems with a silence, as ``{"field", "reason", "detail"}`` errors."""

    def __init__(self, errors: list[dict]):
        super().__init__("; ".join(f"{e['field']}: {e['detail']}" for e in errors))
        self.errors = errors


def new_silence(body: Any, now: float, silence_id: str | None = None,
                known: dict[str, Any] | None = None) -> dict:
    """A validated silence from a request body; raises SilenceError listing every problem.

    ``known`` maps the labels alerts carry to their values (``Rulebook.labels``); when given,
    a matcher naming another label, or a value no alert has, is refused: it would match nothing.

    >>> new_silence({"matchers": ['komoditas="bawang-merah"'], "duration": "2h", "author": "budi",
    ...              "comment": "x"}, now=0.0, known={"commodity": ["bawang-merah"], "market": None})
    Traceback (most recent call last):
    ...
    rules.silences.SilenceError: matchers: komoditas="bawang-merah": unknown label 'komoditas'; did you mean ...
    """
    errors: list[dict] = []

    def fail(field: str, reason: str, detail: str) -> None:
        errors.append({"field": field, "reason": reason, "detail": detail})

    if not isinstance(body, dict):
        raise SilenceError([{"field": "body", "reason": "bad_type", "detail": "a silence is a JSON object"}])
    for key in sorted(set(body) - FIELDS):
        fail(key, "unknown_field", f"unknown field {key!r} (known: {', '.join(sorted(FIELDS))})")
    matchers = []
    raw = body.get("matchers")
    if not isinstance(raw, list) or not raw:
        fail("matchers", "required", 'at least one matcher, e.g. ["commodity=\\"cabai-rawit-merah\\""]')
    else:
        values = {name: set(v) if v is not None else None for name, v in (known or {}).items()}
        for item in raw[:MAX_MATCHERS]:
            try:
                matchers.append(parse_matcher(item))
            except MatcherError as exc:
                fail("matchers", "bad_matcher", str(exc))
                continue
            problem = check_matcher(matchers[-1], values) if known is not None else None
            if problem:
                fail("matchers", "unknown_value" if matchers[-1].name in values else "unknown_label", problem)
        if len(raw) > MAX_MATCHERS:
            fail("matchers", "too_many", f"at most {MAX_MATCHERS} matchers")
        if matchers and all(m.op in ("=~", "!~", "!=") and _matches_empty(m) for m in matchers):
            fail("matchers", "matches_everything", "these matchers would silence every alert; name a label value")
    starts_at = _time(body.get("starts_at"), now, "starts_at", fail)
    if "ends_at" in body and "duration" in body:
        fail("ends_at", "conflict", "give ends_at or duration, not both")
    ends_at = None
    if "duration" in body:
        seconds = parse_duration(body["duration"])
        if seconds is None or seconds <= 0:
            fail("duration", "bad_duration", f"{body['duration']!r} is not a duration like 2h or 3d")
        elif starts_at is not None:
            ends_at = starts_at + seconds
    elif "ends_at" in body:
        ends_at = _time(body["ends_at"], None, "ends_at", fail)
    else:
        fail("ends_at", "required", "ends_at (epoch seconds or ISO 8601) or duration (e.g. 2h) is required")
    if starts_at is not None and ends_at is not None:
        if ends_at <= starts_at:
            fail("ends_at", "before_start", "ends_at must be after starts_at")
        elif ends_at <= now:
            fail("ends_at", "in_past", "ends_at is in the past: the silence would never be active")
    texts = {}
    for key in ("author", "comment"):
        value = body.get(key)
        if not isinstance(value, str) or not value.strip():
            fail(key, "required", f"{key} is required: who silences, and why")
        elif len(value) > MAX_TEXT:
            fail(key, "too_long", f"{key} is longer than {MAX_TEXT} characters")
        else:
            texts[key] = value.strip()
    if errors:
        raise SilenceError(errors)
    return {
        "id": silence_id or uuid.uuid4().hex[:16],
        "matchers": [m.as_json() for m in matchers],
        "starts_at": starts_at, "ends_at": ends_at,
        "author": texts["author"], "comment": texts["comment"],
        "created_at": now, "updated_at": now,
    }


def expire(silence: dict, now: float, by: str | None = None) -> dict:
    """The silence ended now (kept for audit); a silence already over is returned as it was."""
    if silence_state(silence, now) == "expired":
        return silence
    ended = {**silence, "ends_at": max(now, silence["starts_at"]), "updated_at": now}
    if silence["starts_at"] > now:
        ended["ends_at"] = ended["starts_at"] = now
    if by:
        ended["expired_by"] = by
    return ended


def silence_state(silence: dict, now: float) -> str:
    if now < silence["starts_at"]:
        return "pending"
    return "active" if now < silence["ends_at"] else "expired"


def is_silenced(alert_event: dict, silences: list[dict], now: float) -> dict | None:
    """The first active silence whose matchers all match the event, or None."""
    labels = alert_labels(alert_event)
    for silence in silences:
        if silence_state(silence, now) != "active":
            continue
        matchers = _matchers_of(silence)
        if matchers and match_all(matchers, labels):
            return silence
    return None


_PARSED: dict[bytes, tuple] = {}  # matchers as JSON -> parsed: the engine re-reads silences per batch


def _matchers_of(silence: dict) -> tuple:
    try:
        key = orjson.dumps(silence.get("matchers"))
    except TypeError:
        return ()
    matchers = _PARSED.get(key)
    if matchers is None:
        try:
            matchers = tuple(matcher_from_json(m) for m in silence.get("matchers") or ())
        except (MatcherError, TypeError, AttributeError):
            matchers = ()  # written by hand and broken: it silences nothing rather than everything
        if len(_PARSED) >= 4096:
            _PARSED.clear()
        _PARSED[key] = matchers
    return matchers


def _matches_empty(matcher) -> bool:
    return matcher.matches({})


def _time(value: Any, default: float | None, field: str, fail) -> float | None:
    if value is None:
        if default is None:
            fail(field, "required", f"{field} is required")
        return default
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            parsed = None
        if parsed is not None:
            if parsed.tzinfo is None:
                fail(field, "no_timezone", f"{value!r} has no time zone (add +07:00 for WIB, or Z)")
                return None
            return parsed.astimezone(timezone.utc).timestamp()
    fail(field, "bad_time", f"{field} must be epoch seconds or ISO 8601 with a zone, got {value!r}")
    return None
