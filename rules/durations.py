"""Durations in rule files: ``90s``, ``15m``, ``2h``, ``3d``, ``1w``."""
from __future__ import annotations

import math
import re

DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: object) -> float | None:
    """'90s', '15m', '2h', '3d', '1w' -> seconds; None if not a duration.

    >>> parse_duration("2d"), parse_duration("1.5h"), parse_duration("soon"), parse_duration(0)
    (172800.0, 5400.0, None, 0.0)
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        try:
            seconds = float(text)
        except OverflowError:
            return None
        return seconds if 0 <= seconds < math.inf else None
    if not isinstance(text, str):
        return None
    match = DURATION.match(text)
    if not match:
        return None
    seconds = float(match.group(1)) * UNIT_SECONDS[match.group(2)]
    return seconds if seconds < math.inf else None


def format_duration(seconds: float) -> str:
    """The shortest exact form: 86400 -> '1d', 5400 -> '90m'.

    >>> format_duration(86400), format_duration(5400), format_duration(1.5)
    ('1d', '90m', '1.5s')
    """
    for unit in ("w", "d", "h", "m"):
        size = UNIT_SECONDS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
