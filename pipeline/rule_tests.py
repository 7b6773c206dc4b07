"""Run rule test files: inputs through the production detectors and the rule engine, step by
step, and compare what fires, how it is routed and what it says with the expectations.

Each step's ticks are one batch (``DetectorStack.process_batch``, ``RuleEngine.on_batch``) as
in the engine; after them the stale-feed sweep runs at the step's time, then the test's
explicit health inputs of that time. Silences are in force from their ``starts_at``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, cast

from base.contracts import AlertEvent, Tick, Verdict

from detectors.stack import DetectorStack, StackConfig
from pipeline.step import Step
from base.catalog import Catalog
from rules.engine import RuleEngine
from rules.errors import RuleSetError
from rules.loader import load_rules
from rules.matchers import alert_labels
from rules.testspec import Expectation, SeriesInput, TestCase, TestFile, read_test_file

SHOWN = ("rule", "market", "severity", "level", "transition", "routed_to", "message")


@dataclass
class TestResult:
    name: str
    line: int
    failures: list[str] = field(default_factory=list)


@dataclass
class FileResult:
    path: Path
    errors: list[str] = field(default_factory=list)  # the file or its rules could not be loaded
    results: list[TestResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and all(not r.failures for r in self.results)


def run_test_file(path: Path, catalog: Catalog, detectors: set[str], ceilings: dict | None = None) -> FileResult:
    """Read, load the rules of, and run every test of one test file."""
    try:
        spec = read_test_file(path, catalog)
        ruleset = load_rules(spec.rule_files, catalog, detectors)
    except RuleSetError as exc:
        return FileResult(path, [str(error) for error in exc.errors])
    outcome = FileResult(path)
    for case in spec.tests:
        outcome.results.append(run_case(spec, case, RuleEngine(ruleset), ceilings or {}))
    return outcome


def run_case(spec: TestFile, case: TestCase, engine: RuleEngine, ceilings: dict) -> TestResult:
    result = TestResult(case.name, case.line)
    step = Step(DetectorStack(ceilings=ceilings) if case.detectors == "stack" else None, engine)
    thresholds = _thresholds(StackConfig())
    steps = max((len(s.prices) for s in case.series), default=0)
    times = {spec.start + i * spec.interval: i for i in range(steps)}
    moments = sorted(set(times) | {h["ts"] for h in case.health} | {e.ts for e in case.expect})
    for now in moments:
        engine.set_silences(case.silences)
        raised: list[AlertEvent] = []  # the step's alert events and the health rules'
        if now in times:
            ticks, overrides = _ticks(case.series, times[now], now)
            given = {id(tick): override for tick, override in zip(ticks, overrides)}

            def adjust(judged: list[Tick], verdicts: list[Verdict]) -> None:
                for tick, verdict in zip(judged, verdicts):
                    _override(verdict, given[id(tick)], thresholds)

            raised.extend(step.ticks(ticks, adjust=adjust).alerts)
            if step.stack is not None:
                raised.extend(step.sweep(now).alerts)
        for health in (h for h in case.health if h["ts"] == now):
            series = (health["commodity"], health["market"])
            raised.extend(engine.on_health({"type": "health", **health, "price": step.last_price.get(series)}))
        for expectation in (e for e in case.expect if e.ts == now):
            # Compared field by field as plain data, as the test file writes them.
            result.failures.extend(_check(spec, expectation, engine.firing(), cast(list[dict], raised)))
    return result


def _ticks(series: list[SeriesInput], step: int, now: float) -> tuple[list[Tick], list[dict]]:
    ticks: list[Tick] = []
    overrides: list[dict] = []
    for s in series:
        price = s.prices[step] if step < len(s.prices) else None
        if price is None:
            continue
        ticks.append({"commodity": s.commodity, "market": s.market, "province": s.province, "price": price,
                      "ts": now, "unit": "kg", "source": "test", "seq": step})
        overrides.append({
            "scores": {name: values[step] for name, values in s.scores.items()
                       if step < len(values) and values[step] is not None},
            "odds": {name: values[step] for name, values in s.odds.items()
                     if step < len(values) and values[step] is not None},
            "quarantined": _at(s.quarantined, step),
            "expected": _at(s.expected, step),
        })
    return ticks, overrides


def _at(values: list[float | None], step: int) -> float | None:
    return values[step] if step < len(values) else None


def _override(verdict: Verdict, override: dict, thresholds: dict[str, float]) -> None:
    """Given scores replace the detectors' (firing at the stack's thresholds)."""
    fired = set(verdict["fired"])
    for name, score in override["scores"].items():
        verdict["scores"][name] = score
        fired.discard(name)
        if score >= thresholds.get(name, math.inf):
            fired.add(name)
            verdict["reasons"].setdefault(name, f"{name} score {score:g} (given by the test)")
    verdict["fired"] = sorted(fired)
    if override["odds"]:
        verdict["odds"] = {**(verdict.get("odds") or {}), **override["odds"]}
    if override["quarantined"] is not None:
        verdict["quarantined"] = bool(override["quarantined"])
    if override["expected"] is not None:
        verdict["expected"] = {"level": override["expected"], "lo": None, "hi": None}


def _thresholds(config: StackConfig) -> dict[str, float]:
    return {"zscore": config.zscore_threshold, "iqr": config.iqr_threshold, "forecast": config.forecast_threshold,
            "crossmarket": config.cross_threshold, "ceiling": 1.0}


# --- comparing ----------------------------------------------------------------------------------

def _check(spec: TestFile, expectation: Expectation, firing: list[dict], raised: list[dict]) -> list[str]:
    failures = []
    for what, expected, actual in (("firing", expectation.firing, firing), ("events", expectation.events, raised)):
        if expected is None:
            continue
        if expectation.rule:
            actual = [a for a in actual if a["rule"] == expectation.rule]
        left = list(actual)
        problems = []
        for item, line in expected:
            found = next((a for a in left if not _differences(item, a)), None)
            if found is not None:
                left.remove(found)
                continue
            near = min(left, key=lambda a: len(_differences(item, a)), default=None)
            detail = f"; closest: {_show(near)} differs in {'; '.join(_differences(item, near))}" if near else ""
            problems.append(f"{spec.path}:{line}: at {expectation.at}: expected {what} {_plain(item)} "
                            f"not found{detail}")
        for extra in left:
            singular = what[:-1] if what == "events" else what
            problems.append(f"{spec.path}:{expectation.line}: at {expectation.at}: unexpected {singular} "
                            f"{_show(extra)}")
        failures.extend(problems)
    return failures


def _differences(expected: dict, actual: dict) -> list[str]:
    found = []
    receivers = actual.get("routes", {}).get("receivers", [])
    got: Any  # what the alert has of each key: labels, names, text, a flag or a price
    for key, want in expected.items():
        if key == "labels":
            labels = alert_labels(actual)
            got = {k: labels.get(k) for k in want}
            same = all(str(want[k]) == str(labels.get(k)) for k in want)
        elif key == "routed_to":
            got = sorted(r["name"] for r in receivers if r["deliver_at"] is None)
            same = got == sorted(want or [])
        elif key == "held":
            got = sorted(r["name"] for r in receivers if r["deliver_at"] is not None)
            same = got == sorted(want or [])
        elif key == "held_until":
            held = [r["deliver_at"] for r in receivers if r["deliver_at"] is not None]
            got = datetime.fromtimestamp(min(held), timezone.utc).isoformat() if held else None
            same = bool(held) and _same_time(min(held), want)
        elif key in ("telegram", "topics"):
            got = actual.get("routes", {}).get(key)
            same = (sorted(got or []) == sorted(want or [])) if key == "telegram" else got == want
        elif key == "inhibited":
            got = bool(actual.get("inhibited_by"))
            same = got == bool(want)
        elif key == "silenced":
            got = actual.get("silenced_by") is not None
            same = got == bool(want)
        elif key == "inhibited_by":
            got = actual.get("inhibited_by") or []
            same = sorted(got) == sorted(want or [])
        elif key == "message_contains":
            got = actual.get("message", "")
            same = all(part in got for part in ([want] if isinstance(want, str) else want))
        elif isinstance(want, (int, float)) and not isinstance(want, bool) and key not in ("notify",):
            got = actual.get(key)
            same = isinstance(got, (int, float)) and math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-6)
        else:
            got = actual.get(key)
            same = got == want or (want is not None and got is not None and str(got) == str(want))
        if not same:
            found.append(f"{key}: want {want!r}, got {got!r}")
    return found


def _same_time(ts: float, text: object) -> bool:
    try:
        wanted = datetime.fromisoformat(str(text))
    except ValueError:
        return False
    return wanted.tzinfo is not None and abs(wanted.timestamp() - ts) < 1e-6


def _show(event: dict | None) -> str:
    if event is None:
        return "none"
    routed = [r["name"] for r in event.get("routes", {}).get("receivers", []) if r["deliver_at"] is None]
    shown = {**{k: event.get(k) for k in SHOWN if k != "routed_to"}, "routed_to": routed}
    return "{" + ", ".join(f"{k}: {shown[k]!r}" for k in SHOWN) + "}"


def _plain(item: dict) -> str:
    return "{" + ", ".join(f"{k}: {v!r}" for k, v in item.items()) + "}"


def format_result(outcome: FileResult) -> str:
    """What ``pasarwatch rules test`` prints for one file."""
    lines = list(outcome.errors)
    for result in outcome.results:
        status = "ok" if not result.failures else "FAILED"
        lines.append(f"{outcome.path}:{result.line}: {result.name}: {status}")
        lines.extend(f"  {failure}" for failure in result.failures)
    if not outcome.errors:
        failed = sum(1 for r in outcome.results if r.failures)
        lines.append(f"{outcome.path}: {len(outcome.results) - failed} passed, {failed} failed")
    return "\n".join(lines)
