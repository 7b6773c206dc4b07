"""How a contained failure is named: in a verdict, a log line, a counter and a dead letter.

>>> describe_error(ZeroDivisionError("division by zero"))
'ZeroDivisionError: division by zero'
"""
from __future__ import annotations

MAX_DETAIL = 200


def describe_error(exc: BaseException) -> str:
    """One line naming an exception: its type and the start of its message."""
    lines = str(exc).splitlines()
    text = lines[0][:MAX_DETAIL] if lines else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
