"""Containment of detector failures: one detector that raises on one tick loses its say on
that tick only, and the failure is named in the verdict (``errors``) for the engine to count.

>>> errors = {}
>>> guarded(errors, "ipa", lambda x: 1 / x, 0) is None, errors
(True, {'ipa': 'ZeroDivisionError: division by zero'})
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from base.failures import describe_error

def guarded(errors: dict[str, str], name: str, step: Callable[..., Any], *args: Any) -> Any:
    """``step(*args)``, or None with the failure noted under ``name`` in ``errors``."""
    try:
        return step(*args)
    except Exception as exc:  # noqa: BLE001 - contained by design, reported in the verdict
        errors.setdefault(name, describe_error(exc))
        return None
