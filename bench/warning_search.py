"""The spike-warning candidates of docs/detection.md, scored as the backtest scores rules.

One replay of the production stack over the daily West Java panel records every verdict (the
engine's own step, no rules); each candidate rule is then run over the recorded verdicts by the
production ``RuleEngine`` and scored against the labels (detectors/events.py) per period. For
each family the candidate chosen is the one warning the most spike-series at least 14 days
before their peak with at most 0.5 false alarms per series-year on 2019-2022; the 2023-2025
figures are printed beside it, never used to choose. Candidates on ``surge`` are scored only
when the stack runs it (see docs/detection.md); the round-3 families also read signals the
verdict does not carry, replayed offline over the recorded verdicts (bench/warning_signals.py).
A few minutes of CPU.

    python3 -m bench.warning_search [--labels tests/fixtures/price-events.csv] [DATA.csv ...]
"""
from __future__ import annotations

import argparse
import itertools
from datetime import datetime
from pathlib import Path
from typing import cast

from base.catalog import load_catalog
from base.config import PROJECT_ROOT
from bench.warning_signals import augment
from detectors import recorded
from detectors.ceiling import ceilings_of
from detectors.events import evaluate_events, load_events
from detectors.recorded import WIB
from detectors.stack import DETECTOR_NAMES, DetectorStack
from base.contracts import Tick
from pipeline.replay import reporting_days
from pipeline.step import Step
from rules.engine import RuleEngine
from rules.loader import RuleSet, parse_rule_text

SPLIT = datetime(2023, 1, 1, tzinfo=WIB).timestamp()
MAX_FALSE_ALARMS = 0.5
DATA = sorted((PROJECT_ROOT.parent / "shared" / "data" / "pihps-jabar").glob("*.csv"))


def ladder(value: str, enter: float, exit_: float, for_: int, keep: int, gate: str = "not quarantined") -> str:
    return (f"    when: {gate}\n    value: {value}\n    levels:\n"
            f"      - {{level: siaga, severity: warning, enter: {enter}, exit: {exit_}}}\n"
            f"    for: {for_}\n    keep_firing_for: {keep}\n")


def plain(when: str, for_: int, keep: int) -> str:
    return f"    when: >-\n      ({when}) and not quarantined\n    for: {for_}\n    keep_firing_for: {keep}\n"


def round_two() -> dict[str, list[str]]:
    """Issue 18's second round (docs/detection.md, families A-G; H, thresholds per commodity, and
    the leader variants of the detector are not rule grids and are not repeated here)."""
    grid = itertools.product
    surge_odds = "surge.score >= {s} and forecast.p_above_reference >= {p}"
    past_hap = "ceiling.score >= {c} and change >= {d}"
    return {
        "A. surge ladder and HAP odds": [
            ladder("surge.score", e, round(e - d, 2), f, k, f"forecast.p_above_reference >= {p} and not quarantined")
            for e, d, p, f, k in grid((1.1, 1.15, 1.2, 1.25), (0, 0.05), (0.05, 0.1, 0.2, 0.3), (1, 2), (5, 10, 20))],
        "B. surge and above the usual level": [
            plain(f"surge.score >= {s} and change >= {d}", f, k)
            for s, d, f, k in grid((1.1, 1.15, 1.2), (0.1, 0.2, 0.3), (1, 2, 3), (5, 10, 20))],
        "C. surge and near the HAP": [
            plain(f"surge.score >= {s} and ceiling.score >= {c}", f, k)
            for s, c, f, k in grid((1.1, 1.15, 1.2), (0.7, 0.8, 0.9), (1, 2), (5, 10, 20))],
        "D. surge ladder alone": [
            ladder("surge.score", e, e, f, k)
            for e, f, k in grid((1.2, 1.25, 1.3, 1.35, 1.4), (1, 2, 3, 5), (5, 10, 20))],
        "E. surge and HAP odds, or past the HAP well above the usual level": [
            plain(f"({surge_odds.format(s=1.2, p=p)}) or ({past_hap.format(c=c, d=d)})", f, k)
            for p, c, d, f, k in grid((0.05, 0.1), (1.0, 1.2), (0.1, 0.2, 0.3), (1, 2, 3), (5, 10))],
        "F. surge, or a lower surge near the HAP": [
            plain(f"surge.score >= {hi} or (surge.score >= {lo} and ceiling.score >= {c})", f, k)
            for hi, lo, c, f, k in grid((1.2, 1.25, 1.3), (1.1, 1.15), (0.7, 0.8, 0.9), (1, 2), (5, 10))],
        "G. surge, HAP odds and above the usual level": [
            plain(f"{surge_odds.format(s=s, p=p)} and change >= {d}", f, k)
            for s, p, d, f, k in grid((1.1, 1.15, 1.2), (0.05, 0.1), (0, 0.05, 0.1), (1, 2, 3), (5, 10))],
    }


PAST_HAP = "ceiling.score >= 1.0 and change >= 0.2"
E_CORE = f"(surge.score >= 1.2 and forecast.p_above_reference >= 0.05) or ({PAST_HAP})"


def round_three() -> dict[str, list[str]]:
    """Issue 18's third round: E (the rule shipped in round 2) or a second way in that reads a
    signal of bench/warning_signals.py (replayed offline over the recorded verdicts)."""
    grid = itertools.product
    return {
        "I. E, or the surge rising over the last k reports": [
            plain(f"{E_CORE} or (surge.score >= {s} and trend{k}.score >= {d} and forecast.p_above_reference >= {p})",
                  1, keep)
            for s, k, d, p, keep in grid((1.05, 1.1, 1.15), (3, 5, 10), (0.05, 0.1, 0.15), (0, 0.05), (5, 10))],
        "J. E, or a lower surge in the weeks before Lebaran or Christmas": [
            plain(f"{E_CORE} or (season{w}.score >= 1 and surge.score >= {s} and forecast.p_above_reference >= {p})",
                  1, keep)
            for w, s, p, keep in grid((30, 45, 60), (1.05, 1.1, 1.15), (0, 0.05, 0.1), (5, 10))],
        "K. E, or well above the Lebaran-aligned level a year earlier": [
            plain(f"{E_CORE} or (year.score >= {y} and surge.score >= {s} and forecast.p_above_reference >= {p})",
                  1, keep)
            for y, s, p, keep in grid((1.2, 1.3, 1.5, 1.75), (1.0, 1.05, 1.1, 1.15), (0, 0.05), (5, 10))],
        "L. E, or Badan Pangan's sustained deviation (3-month average) with surge": [
            plain(f"{E_CORE} or ({held}.score >= {n} and surge.score >= {s})", 1, keep)
            for held, n, s, keep in grid(("held75", "held125"), (5, 10, 15), (1.05, 1.1, 1.15), (5, 10))],
        "M. E, or the 3-month-average surge with surge": [
            plain(f"{E_CORE} or (avg3m.score >= {a} and surge.score >= {s} and forecast.p_above_reference >= {p})",
                  1, keep)
            for a, s, p, keep in grid((1.15, 1.2, 1.3, 1.4), (1.05, 1.1, 1.15), (0, 0.05), (5, 10))],
        "N. E with its surge arm asking the surge to be rising": [
            plain(f"(surge.score >= {s} and trend{k}.score >= {d} and forecast.p_above_reference >= 0.05)"
                  f" or ({PAST_HAP})", 1, keep)
            for s, k, d, keep in grid((1.1, 1.15, 1.2), (3, 5, 10), (0, 0.05, 0.1), (5, 10))],
        "O. E, or a fast rise from any level": [
            plain(f"{E_CORE} or (trend{k}.score >= {d} and forecast.p_above_reference >= {p})", 1, keep)
            for k, d, p, keep in grid((5, 10), (0.2, 0.25, 0.3, 0.4), (0.1, 0.2, 0.3), (5, 10))],
        "P. E with its surge arm asking for a price above the level a year earlier": [
            plain(f"(surge.score >= 1.2 and forecast.p_above_reference >= 0.05"
                  f" and (year.score >= {y} or year.score == 0)) or ({PAST_HAP})", 1, keep)
            for y, keep in grid((0.8, 0.9, 1.0, 1.1, 1.2), (5, 10))],
    }


def candidates() -> dict[str, list[str]]:
    """Family -> rule bodies (the YAML under ``- name:``)."""
    grid = itertools.product
    families = {
        "ALPS ladder": [ladder("alps.score", e, round(0.75 * e, 2), f, k)
                        for e, f, k in grid((0.5, 0.75, 1), (1, 3), (10, 30))],
        "price / HAP ladder": [ladder("ceiling.score", e, x, f, k)
                               for e, x, f, k in grid((0.95, 1.0, 1.05, 1.1), (0.85, 0.9), (1, 2, 3), (5, 10, 20))],
        "odds of a 10% rise": [ladder("forecast.p_rise_10", t, t, 1, 10) for t in (0.65, 0.7, 0.75, 0.8, 0.85)],
        "odds of passing the HAP": [ladder("forecast.p_above_reference", t, t, 1, 10)
                                    for t in (0.3, 0.35, 0.4, 0.45, 0.5, 0.6)],
    }
    if "surge" in DETECTOR_NAMES:
        families["surge ladder"] = [ladder("surge.score", e, round(e - d, 2), f, k)
                                    for e, d, f, k in grid((1.15, 1.2, 1.25, 1.3), (0.05, 0.1), (1, 2, 3), (5, 10))]
        families["surge and HAP odds"] = [
            ladder("surge.score", e, e, 1, k, f"forecast.p_above_reference >= {t} and not quarantined")
            for e, t, k in grid((1.1, 1.15, 1.2), (0.1, 0.2, 0.3), (5, 10))]
        families.update(round_two())
        families.update(round_three())
    return families


def record(paths: list[Path]) -> tuple[list[dict], list[list[tuple[dict, dict]]]]:
    """The ticks, and each reporting day's (tick, verdict) pairs, commodity by commodity."""
    catalog = load_catalog()
    ticks = recorded.read_paths(paths, catalog)
    days = []
    for commodity in sorted({t["commodity"] for t in ticks}):
        step = Step(DetectorStack(ceilings=ceilings_of(catalog)), RuleEngine(RuleSet((), ())))
        for day in reporting_days(t for t in ticks if t["commodity"] == commodity):
            verdicts = cast(list[dict], step.ticks(cast(list[Tick], day)).verdicts)
            days.append(list(zip(day, verdicts)))
            step.sweep(max(t["ts"] for t in day))
    return ticks, days


def score(bodies: list[str], ticks: list[dict], days: list, events: list[dict],
          names: frozenset[str] = DETECTOR_NAMES) -> list[dict]:
    """Per body: its periods' figures (``evaluate_events(...)["periods"]``); ``names``: what a
    body may read (the stack's detectors, and the offline signals where ``days`` carry them)."""
    text = "rules:\n" + "".join(f"  - name: r{i}\n{body}" for i, body in enumerate(bodies))
    engine = RuleEngine(parse_rule_text(text, "candidates.yaml", load_catalog(), set(names)))
    alerts = [event for day in days for event in engine.on_batch([t for t, _ in day], [v for _, v in day])]
    periods = evaluate_events(events, cast(list[dict], alerts), ticks, split=SPLIT)["periods"]
    return [{period: _figures(periods[period]["per_rule"].get(f"r{i}")) for period in ("before", "after")}
            for i in range(len(bodies))]


def _figures(rule: dict | None) -> tuple[float, float]:
    """(share of spike-series warned 14 days ahead, false alarms per series-year)."""
    if rule is None:
        return 0.0, 0.0
    spikes = rule["by_kind"].get("spike") or {}
    return spikes.get("warned_ahead_share") or 0.0, rule["false_alarms_per_series_year"] or 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m bench.warning_search", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", nargs="*", type=Path, default=DATA)
    parser.add_argument("--labels", type=Path, default=PROJECT_ROOT / "tests" / "fixtures" / "price-events.csv")
    args = parser.parse_args(argv)
    ticks, days = record(args.data)
    days, signals = augment(days)
    events = load_events(args.labels)
    for family, bodies in candidates().items():
        results = score(bodies, ticks, days, events, DETECTOR_NAMES | signals)
        allowed = [i for i, r in enumerate(results) if r["before"][1] <= MAX_FALSE_ALARMS]
        if not allowed:
            print(f"{family}: no candidate within {MAX_FALSE_ALARMS} false alarms per series-year on 2019-2022")
            continue
        best = max(allowed, key=lambda i: (results[i]["before"][0], -results[i]["before"][1]))
        (ahead, fa), (held, held_fa) = results[best]["before"], results[best]["after"]
        print(f"{family}: 2019-2022 {ahead:.1%} warned 14 d ahead, {fa:.2f} false alarms/series-year; "
              f"2023-2025 {held:.1%}, {held_fa:.2f}\n" + "\n".join("    " + line for line in bodies[best].splitlines()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
