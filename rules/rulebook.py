"""The rule set in force, reloaded when the files change, and the last good set kept otherwise.

A reload validates every file together; only a wholly valid set replaces the current one.
``status()`` is what ``GET /api/v1/rules`` shows: the files and rules in force, and the errors
(file, line, reason) of the last failed reload.

A bad set is parsed, logged and reported once: the next reload happens only when a file is
added, removed, or changes its modification time or size. The report is bounded (at most
``MAX_ERRORS`` errors of at most ``rules.errors.MAX_REASON`` characters), and nothing a file
holds stops the caller: an unexpected failure of the loader counts as a rejected set too.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from base.catalog import Catalog
from rules.loader import RuleError, RuleSetError, known_values, load_rules, rule_files
from rules.model import Rule, RuleSet
from rules.routing import describe

log = logging.getLogger("pasarwatch.rules")

MAX_ERRORS = 50


@dataclass
class Reload:
    ok: bool
    errors: list[RuleError] = field(default_factory=list)


class Rulebook:
    def __init__(self, directory: str | Path, catalog: Catalog, detectors: set[str]):
        self.directory = Path(directory)
        self.catalog = catalog
        self.detectors = detectors
        self.current = RuleSet((), ())
        self.loaded_at: float | None = None
        self.errors: list[RuleError] = []
        self.failed_at: float | None = None
        self.failures = 0
        self._signature: tuple = ()
        self.reload_if_changed()

    def signature(self) -> tuple:
        try:
            paths = rule_files(self.directory)
        except OSError:
            return ()
        entries = []
        for path in paths:
            try:
                stat = path.stat()
            except OSError:
                continue
            entries.append((path.name, stat.st_mtime_ns, stat.st_size))
        return tuple(entries)

    def reload_if_changed(self) -> Reload | None:
        """Reload when a file was added, removed or changed; None when nothing changed."""
        signature = self.signature()
        if signature == self._signature:
            return None
        self._signature = signature
        try:
            ruleset = load_rules(rule_files(self.directory), self.catalog, self.detectors)
        except RuleSetError as exc:
            return self._rejected(exc.errors)
        except OSError as exc:
            return self._rejected([RuleError(str(self.directory), 0, f"cannot list rule files: {exc}")])
        except Exception as exc:  # noqa: BLE001 - a loader bug must not stop the engine
            log.exception("loading the rules failed unexpectedly")
            return self._rejected([RuleError(str(self.directory), 0, f"the rules could not be loaded: {exc!r}")])
        self.current, self.loaded_at, self.errors = ruleset, time.time(), []
        log.info("rules loaded: %d rules from %d files", len(ruleset.rules), len(ruleset.files))
        return Reload(True)

    def labels(self) -> dict[str, list[str] | None]:
        """The labels alerts of the rules in force carry, each with its values (None: any);
        the HTTP API checks silences against them."""
        names = self.current.names
        known = known_values(self.current.rules, set(names.commodities), set(names.provinces))
        return {name: sorted(values) if values is not None else None for name, values in sorted(known.items())}

    def _rejected(self, errors: list[RuleError]) -> Reload:
        total = len(errors)
        errors = list(errors[:MAX_ERRORS])
        if total > MAX_ERRORS:
            errors.append(RuleError(str(self.directory), 0, f"... and {total - MAX_ERRORS} more errors"))
        self.errors, self.failed_at = errors, time.time()
        self.failures += 1
        for error in errors:
            log.error("rule file rejected, last good rules stay in force: %s", error)
        return Reload(False, errors)

    def status(self) -> dict:
        return {
            "ok": not self.errors,
            "loaded_at": self.loaded_at,
            "files": list(self.current.files),
            "rules": [rule_summary(r) for r in self.current.rules],
            "routing": describe(self.current.router.root) if self.current.router.root else [],
            "receivers": sorted(self.current.router.receivers),
            "labels": self.labels(),
            "inhibit": [{"name": i.name, "source": [str(m) for m in i.source],
                         "target": [str(m) for m in i.target], "equal": list(i.equal)}
                        for i in self.current.inhibit],
            "errors": [{"file": e.file, "line": e.line, "reason": e.reason} for e in self.errors],
            "failed_at": self.failed_at,
            "reload_failures": self.failures,
        }


def rule_summary(rule: Rule) -> dict:
    """A rule as ``GET /api/v1/rules`` shows it."""
    return {
        "name": rule.name, "file": rule.file, "line": rule.line, "kind": rule.kind,
        "severity": rule.severity, "summary": rule.summary,
        "when": rule.when.source if rule.when is not None else None,
        "value": rule.value.source if rule.value is not None else None,
        "levels": [{"level": r.level, "severity": r.severity, "enter": r.enter, "exit": r.exit}
                   for r in rule.rungs if r.enter is not None],
        "labels": dict(rule.labels),
    }
