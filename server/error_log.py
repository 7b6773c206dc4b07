"""The failures an engine contained, counted per cause and logged once per distinct cause."""
from __future__ import annotations

import logging

from base import keys
from base.failures import describe_error

log = logging.getLogger("pasarwatch.engine")


class ErrorLog:
    """Failures the engine contained: counted per cause (written with the next commit) and
    logged once per distinct cause, so a detector that fails on every tick cannot flood the log."""

    MAX_CAUSES = 1_000

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._logged: set[tuple[str, str]] = set()

    def contained(self, cause: str, error: str, where: str) -> None:
        if self._first(cause, error):
            log.error("%s failed on %s and was skipped for it: %s (logged once per cause; counted in %s)",
                      cause, where, error, keys.ERRORS.name)

    def note(self, cause: str, exc: BaseException) -> None:
        """A failure of a whole batch: logged with its traceback, once per cause."""
        error = describe_error(exc)
        if self._first(f"engine:{cause}", error):
            log.exception("a batch failed (%s); processing its ticks one by one", error)

    def _first(self, cause: str, error: str) -> bool:
        """Count ``cause``; True the first time this (cause, error) is seen: log it then."""
        self._counts[cause] = self._counts.get(cause, 0) + 1
        if (cause, error) in self._logged or len(self._logged) >= self.MAX_CAUSES:
            return False
        self._logged.add((cause, error))
        return True

    def take_counts(self) -> dict[str, int]:
        counts, self._counts = self._counts, {}
        return counts
