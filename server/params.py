"""Numbers and stream ids sent by clients, read strictly.

``str.isdigit()`` is not enough: it accepts "²" and other Unicode digits that ``int()`` refuses
(a 500) or reads differently, and Redis refuses stream ids beyond 64 bits (also a 500). These
functions say "not valid" instead, so the caller can answer 422.

>>> whole_number("42"), whole_number("²"), whole_number("-1"), whole_number("")
(42, None, None, None)
>>> stream_id("1719800001234-0"), stream_id("1-18446744073709551616"), stream_id("١٢")
('1719800001234-0', None, None)
"""
from __future__ import annotations

MAX_ID_PART = 2**64 - 1  # each half of a Redis stream id is an unsigned 64-bit number
_LARGEST_ID = f"{MAX_ID_PART}-{MAX_ID_PART}"


def whole_number(raw: object) -> int | None:
    """The non-negative integer written in ASCII digits, or None."""
    if not isinstance(raw, str) or not raw.isascii() or not raw.isdigit():
        return None
    return int(raw)


def stream_id(raw: object) -> str | None:
    """``raw`` when it is a stream id that can start an exclusive range ("(id"), else None.

    The largest id is refused too: nothing can come after it, and Redis says so with an error.
    """
    if not isinstance(raw, str):
        return None
    ms, dash, seq = raw.partition("-")
    parts = [whole_number(ms)] + ([whole_number(seq)] if dash else [])
    if any(part is None or part > MAX_ID_PART for part in parts) or raw == _LARGEST_ID:
        return None
    return raw
