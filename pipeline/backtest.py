"""``pasarwatch backtest``: the production detectors and rules over recorded data, no Redis.

Three uses, one command:

* ``pasarwatch backtest PATH...`` replays recorded ticks through the engine's detection path
  (pipeline/replay.py: ``DetectorStack`` with its defaults, the rule files of the rules
  directory, one batch per reporting day, the stale sweep after each day) and reports alerts per
  rule and per series, detector firings, quarantines and the forecast error next to the naive
  and seasonal-naive baselines. Inputs: our tick CSV (``date`` or ``ts``, ``commodity``,
  ``market``, ``province``, ``price``; names are turned into ids, province names into codes),
  PIHPS exports in that shape with a ``city`` column, NDJSON ticks, the wide monthly provincial
  table of ``pihps-monthly``, and NAB-style ``timestamp,value`` files (each its own series).
  Commodities are independent (their own panels and alerts), so they run in parallel.
  ``forecast`` gives, per horizon (``h1``, ``h7``, ``h14``, ``h28``: ticks ahead), the MAPE, the
  naive MAPE, ``mase`` against the last price and the coverage of the 80% and 95% intervals,
  and under ``breach`` the calibration of the 14-tick odds of passing the HAP/HET and of a 10%
  rise (Brier score, climatology, reliability table).
* ``--split 2023-01-01`` adds ``forecast_split``: the same figures for targets before the date
  (the period the forecaster was chosen on) and from it on (held out).
* ``--events FILE`` adds the real-event evaluation (detectors/events.py): how early and how
  often the alerts warned of each labelled event (``warned_ahead``: at least 14 days before the
  peak), and false alarms per series-year; with ``--split``, also per period (``periods``).
* ``--nab DIR`` scores the stack on a NAB-layout folder with pipeline/nab.py and prints
  ``{"nab": {profile: score}, "files": N, ...}``; ``--detail`` adds each file, ``--scores-out``
  writes NAB's results layout so NAB's own scorer can check the figure.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from detectors import recorded
from detectors.events import evaluate_events, load_events
from pipeline.nab_run import THRESHOLD, score_file
from pipeline.replay import WIB, Replay, merge_reports, reporting_days
from detectors.stack import DETECTOR_NAMES, DetectorStack
from rules.engine import RuleEngine
from rules.errors import RuleSetError
from pipeline import nab


def add_commands(subparsers) -> None:
    """Add the ``backtest`` subcommand to ``pasarwatch``'s argparse subparsers."""
    parser = subparsers.add_parser(
        "backtest", help="replay recorded prices (or NAB) through the production detectors and rules",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="*", metavar="PATH", help="tick CSV/NDJSON or timestamp,value files")
    parser.add_argument("--nab", metavar="DIR",
                        help="score on a NAB folder (data/, combined_windows.json, profiles.json)")
    parser.add_argument("--subset", choices=("all", "odd", "even"), default="all",
                        help="NAB files by position in sorted order: odd = 1st, 3rd, ... (tuning half)")
    parser.add_argument("--events", metavar="FILE", help="labelled real events (CSV) to score the alerts against")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--detail", action="store_true", help="per-file (NAB) or per-alert detail")
    parser.add_argument("--scores-out", metavar="DIR", help="write per-record NAB scores in NAB's results layout")
    parser.add_argument("--rules", metavar="DIR", action="append",
                        help="rules directory (default: the server's); repeat to add more rule files")
    parser.add_argument("--split", metavar="DATE", type=_date,
                        help="also report forecast figures before and from this date (YYYY-MM-DD)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes")
    parser.set_defaults(run=run)


def run(settings, args: argparse.Namespace) -> int:
    if not args.nab and not args.paths:
        print("backtest: give PATH... or --nab DIR", file=sys.stderr)
        return 2
    if args.nab:
        result = run_nab(Path(args.nab), args.subset, args.detail, args.scores_out, args.jobs)
        _print(result, args.json, _nab_text)
        return 0
    rules_dirs = [Path(d) for d in args.rules] if args.rules else [settings.rules_dir]
    try:
        ruleset, ceilings, catalog = load_production_rules(rules_dirs, settings.catalog_dir)
    except RuleSetError as exc:  # each error is file:line: reason
        print(f"backtest: the rules do not load:\n{exc}", file=sys.stderr)
        return 2
    try:
        ticks = recorded.read_paths([Path(p) for p in args.paths], catalog)
    except (OSError, ValueError) as exc:
        print(f"backtest: {exc}", file=sys.stderr)
        return 2
    result = run_ticks(ticks, ruleset, ceilings, args.jobs, detail=args.detail or bool(args.events),
                       split=args.split)
    if args.events:
        events = load_events(Path(args.events))
        result["events"] = evaluate_events(events, result.pop("alert_events"), ticks, args.detail,
                                           split=args.split)
    _print(result, args.json, _ticks_text)
    return 0


# -- ticks ---------------------------------------------------------------------------------------

def load_production_rules(rules_dirs: list[Path], catalog_dir: Path) -> tuple:
    """The rule set, ceilings and catalog the engine would load (server/engine.py).

    Rule conditions may name every detector the stack reports (``DETECTOR_NAMES``).
    """
    from base.catalog import load_catalog
    from rules.loader import load_rules, rule_files
    from detectors.ceiling import ceilings_of

    first = rules_dirs[0]
    catalog = load_catalog(first / "catalog" if (first / "catalog").is_dir() else catalog_dir)
    files = [path for directory in rules_dirs for path in rule_files(directory)]
    ruleset = load_rules(files, catalog, set(DETECTOR_NAMES))
    return ruleset, ceilings_of(catalog), catalog


def replay_group(job: tuple) -> dict:
    """Replay one commodity's ticks; a process-pool task (``(ticks, ruleset, ceilings, detail, split)``)."""
    ticks, ruleset, ceilings, detail, split = job
    replay = Replay(DetectorStack(ceilings=ceilings), RuleEngine(ruleset), split=split)
    for day in reporting_days(ticks):
        replay.batch(day)
    return replay.report(detail=True)


def run_ticks(ticks: list[dict], ruleset, ceilings: dict, jobs: int, detail: bool = False,
              split: float | None = None) -> dict:
    """Replay all ticks, commodity by commodity in parallel, and merge the reports."""
    started = time.perf_counter()
    groups: dict[str, list[dict]] = {}
    for tick in ticks:
        groups.setdefault(tick["commodity"], []).append(tick)
    work = [(group, ruleset, ceilings, detail, split) for _, group in sorted(groups.items())]
    if jobs > 1 and len(work) > 1:
        with ProcessPoolExecutor(min(jobs, len(work))) as pool:
            reports = list(pool.map(replay_group, work))
    else:
        reports = [replay_group(job) for job in work]
    merged = merge_reports(reports)
    seconds = time.perf_counter() - started
    merged["seconds"] = round(seconds, 3)
    merged["us_per_tick"] = round(1e6 * seconds / merged["ticks"], 1) if merged["ticks"] else None
    if not detail:
        merged.pop("alert_events")
    return merged


# -- NAB -----------------------------------------------------------------------------------------

def nab_files(root: Path, subset: str = "all") -> list[str]:
    """Keys (``category/name.csv``) of the data files under ``root/data``, sorted."""
    keys = sorted(str(p.relative_to(root / "data")) for p in (root / "data").rglob("*.csv"))
    if subset == "odd":
        return keys[0::2]
    if subset == "even":
        return keys[1::2]
    return keys


def run_nab(root: Path, subset: str = "all", detail: bool = False, scores_out: str | None = None,
            jobs: int = 1) -> dict:
    """Score the stack on a NAB folder; the dict ``--nab --json`` prints."""
    started = time.perf_counter()
    windows = nab.load_windows(root / "combined_windows.json")
    profiles = nab.load_profiles(root / "profiles.json")
    keys = nab_files(root, subset)
    series = {key: nab.load_series(root / "data" / key) for key in keys}
    work = [(key, *series[key]) for key in sorted(keys, key=lambda k: -len(series[k][0]))]
    if jobs > 1 and len(work) > 1:
        with ProcessPoolExecutor(min(jobs, len(work))) as pool:
            results = list(pool.map(score_file, work))
    else:
        results = [score_file(job) for job in work]
    scores = {key: s for key, s, _ in results}
    busy = sum(seconds for _, _, seconds in results)
    per_file = {key: (series[key][0], scores[key]) for key in keys}
    result: dict = {
        "nab": nab.score_corpus(per_file, {k: windows[k] for k in keys}, profiles, THRESHOLD),
        "files": len(keys),
        "records": sum(len(series[k][0]) for k in keys),
        "threshold": THRESHOLD,
        "subset": subset,
        "us_per_record": round(1e6 * busy / max(1, sum(len(series[k][0]) for k in keys)), 1),
        "seconds": round(time.perf_counter() - started, 3),
    }
    if detail:
        result["per_file"] = {}
        for key in keys:
            stamps = series[key][0]
            detections = [s >= THRESHOLD for s in scores[key]]
            entry = {}
            for name, profile in profiles.items():
                fs = nab.score_file(stamps, detections, windows[key], profile)
                null, perfect = nab.null_and_perfect(stamps, windows[key], profile)
                entry[name] = round(fs.raw, 4)
                if name == "standard":
                    entry.update(windows=len(windows[key]), hit=fs.windows_hit,
                                 missed=fs.windows_missed, false_positives=fs.fp,
                                 null=round(null, 4), perfect=perfect)
            result["per_file"][key] = entry
    if scores_out:
        for key in keys:
            stamps, values = series[key]
            nab.write_results(scores_out, key, stamps, values, scores[key], windows[key])
    return result


# -- output --------------------------------------------------------------------------------------

def _print(result: dict, as_json: bool, text) -> None:
    if as_json:
        json.dump(result, sys.stdout, sort_keys=False)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(text(result))


def _nab_text(result: dict) -> str:
    lines = [f"NAB, {result['files']} files ({result['subset']}), {result['records']} records, "
             f"threshold {result['threshold']}, {result['us_per_record']} us/record"]
    for profile, score in result["nab"].items():
        lines.append(f"  {profile:20s} {score:6.2f}")
    for key, entry in result.get("per_file", {}).items():
        lines.append(f"  {key:60s} raw {entry['standard']:6.2f}  hit {entry['hit']}/{entry['windows']}"
                     f"  fp {entry['false_positives']}")
    return "\n".join(lines) + "\n"


def _ticks_text(result: dict) -> str:
    lines = [f"{result['ticks']} ticks, {result['series']} series, {result['days']} batches, "
             f"{result['quarantined']} quarantined, {result['us_per_tick']} us/tick",
             f"alerts: {result['alerts']['total']}"]
    for rule, count in result["alerts"]["per_rule"].items():
        lines.append(f"  {rule:24s} {count}")
    lines.append("detectors fired: " + ", ".join(f"{k} {v}" for k, v in result["detectors_fired"].items()))
    lines.extend(_forecast_text(result["forecast"], ""))
    split = result.get("forecast_split")
    if split:
        when = datetime.fromtimestamp(split["split"], WIB).date().isoformat()
        lines.extend(_forecast_text(split["before"], f"before {when}: "))
        lines.extend(_forecast_text(split["after"], f"from {when}: "))
    events = result.get("events")
    if events:
        lines.append(json.dumps(events["summary"]))
        lines.extend(_events_text("", events))
        periods = events.get("periods")
        if periods:
            day = datetime.fromtimestamp(periods["split"], WIB).date().isoformat()
            lines.extend(_events_text(f"before {day}: ", periods["before"]))
            lines.extend(_events_text(f"from {day}: ", periods["after"]))
    return "\n".join(lines) + "\n"


def _events_text(label: str, events: dict) -> list[str]:
    """Per rule: spikes warned at least 14 days before the peak, false alarms per series-year."""
    lines = []
    for rule, figures in events["per_rule"].items():
        spikes = figures["by_kind"].get("spike")
        if spikes:
            lines.append(f"  {label}{rule:24s} spikes warned 14 d ahead {spikes['warned_ahead']}, warned "
                         f"{spikes['warned']}, median lead {spikes['median_lead_days']} d, false alarms "
                         f"{figures['false_alarms_per_series_year']} per series-year")
    return lines


def _forecast_text(forecast: dict, label: str) -> list[str]:
    lines = []
    for name, summary in forecast.items():
        if name == "breach" or not summary["ticks"]:
            continue
        line = (f"{label}forecast {name} ({summary['point']}): MAPE {summary['mape']:.2%}, naive "
                f"{summary['naive_mape']:.2%}, MASE {summary['mase']:.3f} over {summary['ticks']} ticks")
        if summary["interval_ticks"]:
            line += f"; coverage 80% {summary['coverage80']:.1%}, 95% {summary['coverage95']:.1%}"
        lines.append(line)
        if summary["seasonal_ticks"]:
            lines.append(f"  with a year of history: MAPE {summary['mape_seasonal_ticks']:.2%}, seasonal naive "
                         f"{summary['seasonal_naive_mape']:.2%} over {summary['seasonal_ticks']} ticks")
    for event, figures in forecast.get("breach", {}).items():
        if isinstance(figures, dict) and figures["n"]:
            lines.append(f"{label}odds {event} at {forecast['breach']['horizon']} ticks: Brier {figures['brier']:.4f}, "
                         f"climatology {figures['brier_climatology']:.4f}, base rate {figures['base_rate']:.1%} "
                         f"over {figures['n']} forecasts")
    return lines


def _date(text: str) -> float:
    """A ``YYYY-MM-DD`` date as the timestamp of its start in Indonesian western time (WIB)."""
    try:
        day = datetime.strptime(text, "%Y-%m-%d")
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None
    return day.replace(tzinfo=WIB).timestamp()


def main(argv: list[str] | None = None) -> int:
    from base.config import Settings

    parser = argparse.ArgumentParser(prog="pasarwatch")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["backtest", *(sys.argv[1:] if argv is None else argv)])
    return args.run(Settings.from_env(), args)


if __name__ == "__main__":
    sys.exit(main())
