"""Compact series notation of rule test files, as in ``promtool test rules``.

Values are separated by spaces; ``a+bxn`` expands to the n+1 values ``a, a+b, ..., a+n*b``
(``a-bxn`` likewise), ``axn`` to n+1 copies of ``a``, ``_`` is a step without a value and
``_xn`` is n such steps.

>>> expand("52000+500x3 _ 60000x2 _x2 1-1x1")
[52000.0, 52500.0, 53000.0, 53500.0, None, 60000.0, 60000.0, 60000.0, None, None, 1.0, 0.0]
>>> expand("52000 oops")
Traceback (most recent call last):
...
rules.notation.NotationError: 'oops' is not a value: use 52000, 52000+500x10, 52000x3, _ or _x3
>>> expand("_x999999999")
Traceback (most recent call last):
...
rules.notation.NotationError: '_x999999999': a series stands for at most 10000 values
"""
from __future__ import annotations

import re

_NUMBER = r"-?\d+(?:\.\d+)?(?:e[+-]?\d+)?"
_TERM = re.compile(rf"^({_NUMBER})(?:([+-])(\d+(?:\.\d+)?(?:e[+-]?\d+)?))?(?:x(\d+))?$", re.IGNORECASE)
_BLANKS = re.compile(r"^_(?:x(\d+))?$")


# Values one series text may stand for: a rule test replays every one of them through the
# detectors, and "_x999999999" would otherwise be a list of a billion before anything runs.
MAX_VALUES = 10_000


class NotationError(ValueError):
    pass


def expand(text: object) -> list[float | None]:
    """The values a series text stands for; a bare number is a series of one."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return [float(text)]
    if not isinstance(text, str):
        raise NotationError(f"{text!r} is not a series: write values such as '52000+500x10 60000x3'")
    values: list[float | None] = []
    for token in text.split():
        blanks = _BLANKS.match(token)
        if blanks:
            values.extend([None] * _count(blanks.group(1), 0 if blanks.group(1) else 1, len(values), token))
            continue
        term = _TERM.match(token)
        if not term:
            raise NotationError(f"{token!r} is not a value: use 52000, 52000+500x10, 52000x3, _ or _x3")
        start, sign, step, count = term.groups()
        first = float(start)
        if count is None:
            if sign is not None:
                raise NotationError(f"{token!r}: a step needs a count, e.g. {start}{sign}{step}x10")
            values.append(first)
            continue
        delta = float(step) * (1 if sign == "+" else -1) if sign else 0.0
        values.extend(first + i * delta for i in range(_count(count, 1, len(values), token)))
    return values


def _count(text: str | None, extra: int, so_far: int, token: str) -> int:
    """``x<n>``'s repetitions (n + extra), refused when the series would pass MAX_VALUES."""
    count = (int(text) if text and len(text) <= 9 else MAX_VALUES + 1 if text else 0) + extra
    if so_far + count > MAX_VALUES:
        raise NotationError(f"{token!r}: a series stands for at most {MAX_VALUES} values")
    return count
