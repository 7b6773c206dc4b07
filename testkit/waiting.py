"""Bounded waiting on a condition: how tests and benchmarks synchronise with real processes
(never a bare sleep)."""
from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(condition: Callable[[], object], timeout: float = 15.0,
             what: str | Callable[[], str] = "condition") -> object:
    """Poll ``condition`` until it returns something truthy; fail the test after ``timeout``.
    ``what`` may be a function, called only then: a message that shows the state at the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what() if callable(what) else what}")
        time.sleep(0.02)
