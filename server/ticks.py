"""Parse and validate price ticks: plain functions over bytes and dicts, no I/O.

A request body is one tick (a JSON object), a JSON array of ticks, or NDJSON (one object per
line). Each tick is validated on its own so that, in a batch, the good ones can still be
accepted; every problem is reported as ``{"index", "field", "reason", "detail"}`` where
``reason`` is a stable name a device can act on.

>>> from base.catalog import load_catalog
>>> catalog = load_catalog()
>>> items = parse_body(b'{"commodity": "bawang-merah", "market": "pasar-kosambi", '
...                    b'"province": "32", "price": -5}', "application/json")
>>> validate_ticks(items, catalog, now=1_700_000_000.0).errors
[{'index': 0, 'field': 'price', 'reason': 'not_positive', 'detail': 'price must be > 0 (got -5)'}]
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import orjson

from base.catalog import Catalog

# \Z, not $: '$' also matches before a trailing newline, which would let "pasar-x\n" in.
MARKET_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}\Z")
SOURCE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}\Z")
# Epoch values above this are almost certainly milliseconds (year 5138 in seconds).
MAX_EPOCH_SECONDS = 1e11
# The range of time a tick may carry, text or number alike. The detectors place a tick in the
# Hijri calendar (Lebaran seasonality), which hijridate's Umm al-Qura table covers from 1924 to
# 2077 only: outside it the engine cannot process the tick at all. No market price feed is older
# than 2000, and 2070 leaves the detectors' year-either-side lookups inside the table.
TS_MIN = datetime(2000, 1, 1, tzinfo=timezone.utc).timestamp()
TS_MAX = datetime(2070, 1, 1, tzinfo=timezone.utc).timestamp()
TS_RANGE = "2000-01-01T00:00:00Z to 2070-01-01T00:00:00Z"
# Text fields longer than this are refused before anything looks at them: longer than any id or
# name in the catalog (the longest is under 50), so nothing real is lost, and a 200,000-character
# commodity costs a length check, not a fuzzy match, nor a 200 kB error message.
MAX_NAME_CHARS = 64
# RFC 3339 with nanoseconds and an offset is 35 characters.
MAX_TS_CHARS = 64
# Fuzzy "did you mean" hints cost up to a few milliseconds each: a batch gets at most this many
# distinct ones (repeats are remembered), the other unknown names are refused without a hint.
MAX_HINTS = 20
MAX_SEQ = 2**63 - 1
KNOWN_FIELDS = frozenset({"commodity", "market", "province", "price", "ts", "unit", "source", "seq"})


class BodyError(ValueError):
    """The body as a whole cannot be read (not JSON, wrong top-level type)."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail

    def as_error(self) -> dict:
        return {"index": None, "field": "body", "reason": self.reason, "detail": self.detail}


@dataclass
class Validated:
    """Outcome of validating a batch: accepted ticks with their request index, and errors."""

    ticks: list[tuple[int, dict]] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)


def parse_body(body: bytes, content_type: str = "") -> list[Any]:
    """Split a request body into raw tick items (not yet validated).

    A line of NDJSON that is not JSON becomes a ``_BadLine`` item, reported by index, so one
    broken line does not cost the others.
    """
    if not body.strip():
        raise BodyError("empty_body", "the body holds no tick")
    if "ndjson" in content_type or "jsonlines" in content_type or "json-seq" in content_type:
        return _parse_lines(body)
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if b"\n" in body.strip():
            return _parse_lines(body)
        raise BodyError("invalid_json", f"body is not JSON: {exc}") from None
    if isinstance(document, dict):
        return [document]
    if isinstance(document, list):
        return document
    raise BodyError("bad_type", "body must be a tick object, an array of ticks, or NDJSON")


class _BadLine:
    def __init__(self, detail: str):
        self.detail = detail


def _parse_lines(body: bytes) -> list[Any]:
    items: list[Any] = []
    for line in body.splitlines():
        if not line.strip():
            continue
        try:
            items.append(orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            items.append(_BadLine(f"line is not JSON: {exc}"))
    return items


# A tick older than this (seconds; PASARWATCH_MAX_TICK_AGE_DAYS) is refused as too_old: late
# data is welcome as history (server/engine.py), but not before the oldest time the system keeps.
MAX_TICK_AGE = 3650 * 86400.0


def validate_ticks(
    items: list[Any], catalog: Catalog, now: float, max_future_skew: float = 300.0,
    max_age: float = MAX_TICK_AGE,
) -> Validated:
    """Validate every raw item; good ones become normalised ticks (see docs/architecture.md)."""
    result = Validated()
    hints = Hints(catalog)
    for index, item in enumerate(items):
        tick, errors = validate_tick(item, index, catalog, now, max_future_skew, hints)
        if errors or tick is None:  # validate_tick returns a tick or its errors
            result.errors.extend(errors)
        elif tick["ts"] < now - max_age:
            result.errors.append(too_old(index, tick["ts"], max_age))
        else:
            result.ticks.append((index, tick))
    return result


class Hints:
    """"Did you mean" hints for one batch: each distinct text is matched once, and at most
    ``limit`` texts are matched at all, so a batch of 10,000 unknown names costs ``limit``
    fuzzy matches, not 10,000."""

    def __init__(self, catalog: Catalog, limit: int = MAX_HINTS):
        self.catalog = catalog
        self.limit = limit
        self.memo: dict[tuple[str, str], list[str]] = {}

    def commodity(self, text: str) -> str:
        return self._hint("commodity", text, self.catalog.suggest_commodity)

    def province(self, text: str) -> str:
        return self._hint("province", text, self.catalog.suggest_province)

    def _hint(self, kind: str, text: str, suggest) -> str:
        key = (kind, text)
        if key not in self.memo:
            if len(self.memo) >= self.limit:
                return ""
            self.memo[key] = suggest(text)
        found = self.memo[key]
        return f"; did you mean {', '.join(found)}?" if found else ""


def too_old(index: int, ts: float, max_age: float) -> dict:
    day = datetime.fromtimestamp(ts, timezone.utc).date().isoformat()
    return {"index": index, "field": "ts", "reason": "too_old",
            "detail": f"ts {day} is more than {max_age / 86400:.0f} days old: older than the history this "
                      f"system keeps (PASARWATCH_MAX_TICK_AGE_DAYS)"}


def validate_tick(
    item: Any, index: int, catalog: Catalog, now: float, max_future_skew: float = 300.0,
    hints: Hints | None = None,
) -> tuple[dict | None, list[dict]]:
    errors: list[dict] = []
    hints = hints or Hints(catalog)

    def fail(field_name: str, reason: str, detail: str) -> None:
        errors.append({"index": index, "field": field_name, "reason": reason, "detail": detail})

    if isinstance(item, _BadLine):
        fail("body", "invalid_json", item.detail)
        return None, errors
    if not isinstance(item, dict):
        fail("tick", "bad_type", f"a tick must be a JSON object (got {type(item).__name__})")
        return None, errors

    unknown = sorted(set(item) - KNOWN_FIELDS)
    if unknown:
        # Names cut short and few: the detail stays small however many and long they are.
        named = ", ".join(name[:MAX_NAME_CHARS] for name in unknown[:5])
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        fail(unknown[0][:MAX_NAME_CHARS], "unknown_field", f"unknown field(s): {named}{more}")

    commodity_id = item.get("commodity")
    commodity = None
    if commodity_id is None:
        fail("commodity", "required", "commodity is required")
    elif not isinstance(commodity_id, str):
        fail("commodity", "bad_type", "commodity must be a string id from the catalog")
    elif len(commodity_id) > MAX_NAME_CHARS:
        fail("commodity", "too_long", _too_long("commodity", commodity_id))
    else:
        commodity = catalog.commodities.get(commodity_id)
        if commodity is None:
            fail("commodity", "unknown_commodity",
                 f"unknown commodity {commodity_id!r}{hints.commodity(commodity_id)}")

    province = item.get("province")
    if province is None:
        fail("province", "required", "province is required (BPS code, e.g. \"32\")")
    elif not isinstance(province, str):
        fail("province", "bad_type", "province must be a string code from the catalog")
    elif len(province) > MAX_NAME_CHARS:
        fail("province", "too_long", _too_long("province", province))
    elif province not in catalog.provinces:
        fail("province", "unknown_province", f"unknown province {province!r}{hints.province(province)}")

    market = item.get("market")
    if market is None:
        fail("market", "required", "market is required")
    elif not isinstance(market, str) or not MARKET_ID.match(market):
        fail("market", "bad_market", "market must be an id of lowercase letters, digits, '.', '_' or '-' (max 64)")
    elif market in catalog.markets and isinstance(province, str) and province in catalog.provinces:
        if catalog.markets[market].province != province:
            fail("province", "province_mismatch",
                 f"market {market!r} is in province {catalog.markets[market].province}, not {province}")

    price = _check_price(item.get("price", _MISSING), fail)
    ts = _check_ts(item.get("ts"), now, max_future_skew, fail)

    unit = item.get("unit")
    if unit is not None:
        if not isinstance(unit, str):
            fail("unit", "bad_type", "unit must be a string")
        elif len(unit) > MAX_NAME_CHARS:
            fail("unit", "too_long", _too_long("unit", unit))
        elif commodity is not None and unit != commodity.unit:
            fail("unit", "unit_mismatch", f"{commodity.id} is priced per {commodity.unit}, not per {unit}")

    source = item.get("source")
    if source is not None and (not isinstance(source, str) or not SOURCE_ID.match(source)):
        fail("source", "bad_source", "source must be a short id of letters, digits and ._:@-")

    seq = item.get("seq")
    if seq is not None:
        if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= MAX_SEQ:
            # Bounded so the tick can be stored: orjson encodes 64-bit integers, no larger.
            fail("seq", "bad_seq", f"seq must be an integer from 0 to {MAX_SEQ}")
        elif source is None:
            fail("seq", "seq_without_source", "seq is counted per source: give source too")

    if errors:
        return None, errors
    assert commodity is not None and price is not None
    return {
        "commodity": commodity.id,
        "market": market,
        "province": province,
        "price": price,
        "ts": ts if ts is not None else now,
        "unit": commodity.unit,
        "source": source,
        "seq": seq,
        "received": now,
    }, errors


_MISSING = object()


def _check_price(price: Any, fail) -> float | None:
    if price is _MISSING or price is None:
        fail("price", "required", "price is required (IDR per unit)")
    elif isinstance(price, bool) or not isinstance(price, (int, float)):
        fail("price", "not_a_number", f"price must be a JSON number (got {type(price).__name__})")
    elif isinstance(price, float) and not math.isfinite(price):
        fail("price", "not_finite", "price must be finite")
    elif price <= 0:
        fail("price", "not_positive", f"price must be > 0 (got {_short(price)})")
    elif price >= 1e12:
        # Compared before any float(): a Python int of any size compares exactly, converting
        # one beyond float's range would raise OverflowError.
        fail("price", "too_large", "price above Rp 1 trillion per unit")
    else:
        return float(price)
    return None


def _too_long(name: str, text: str) -> str:
    return f"{name} is {len(text)} characters, at most {MAX_NAME_CHARS}"


def _short(value: Any) -> str:
    """A number for an error detail: a 5000-digit integer must not become a 5000-digit message."""
    text = str(value) if not isinstance(value, int) or value.bit_length() < 200 else "a huge number"
    return text[:40]


def _check_ts(ts: Any, now: float, max_future_skew: float, fail) -> float | None:
    if ts is None:
        return None
    if isinstance(ts, bool):
        fail("ts", "bad_timestamp", "ts must be RFC 3339 text or epoch seconds")
        return None
    if isinstance(ts, (int, float)):
        if isinstance(ts, float) and not math.isfinite(ts):
            fail("ts", "bad_timestamp", "ts must be finite epoch seconds")
            return None
        if ts > MAX_EPOCH_SECONDS:  # before float(ts): a huge int would overflow it
            fail("ts", "bad_timestamp", "ts looks like milliseconds; send epoch seconds")
            return None
        value = float(ts)
    elif isinstance(ts, str):
        if len(ts) > MAX_TS_CHARS:
            fail("ts", "bad_timestamp", f"ts is {len(ts)} characters; RFC 3339 needs at most 35")
            return None
        try:
            parsed = datetime.fromisoformat(ts.replace("z", "Z"))
        except ValueError:
            fail("ts", "bad_timestamp", f"ts {ts!r} is not RFC 3339 (e.g. 2024-04-01T08:00:00+07:00)")
            return None
        if parsed.tzinfo is None:
            fail("ts", "bad_timestamp", "ts needs a UTC offset (RFC 3339), e.g. +07:00 or Z")
            return None
        value = parsed.timestamp()
    else:
        fail("ts", "bad_timestamp", "ts must be RFC 3339 text or epoch seconds")
        return None
    if not TS_MIN <= value < TS_MAX:
        fail("ts", "bad_timestamp", f"ts must lie from {TS_RANGE} "
                                    f"(epoch seconds {TS_MIN:.0f} to {TS_MAX:.0f})")
        return None
    if value > now + max_future_skew:
        fail("ts", "future_timestamp", f"ts is {value - now:.0f}s in the future (limit {max_future_skew:.0f}s)")
        return None
    return value
