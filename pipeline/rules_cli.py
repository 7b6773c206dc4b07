"""``pasarwatch rules check|test|backtest``: the rule tools of the command line.

``server/cli.py`` calls ``add_commands(rules_subparsers)`` on its ``rules`` group. Each
command's function takes ``(settings, args)`` and returns the exit code: 0 ok, 1 when a rule
file or a test has a problem (printed as ``file:line: reason``), 2 for bad arguments.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from base.catalog import CatalogError, load_catalog
from rules.errors import RuleSetError
from rules.loader import in_context, load_rules, rule_files


def add_commands(rules_subparsers) -> None:
    check = rules_subparsers.add_parser("check", help="validate rule files; errors as file:line: reason")
    check.add_argument("path", nargs="?", help="a rule file or directory (default the rules directory)")
    check.set_defaults(run=check_command)
    test = rules_subparsers.add_parser(
        "test", help="run rule test files (inputs, expected alerts, routes and messages)")
    test.add_argument("files", nargs="*", metavar="FILE",
                      help="test files or directories of *.test.yaml (default the rules directory's tests/)")
    test.set_defaults(run=test_command)
    backtest = rules_subparsers.add_parser(
        "backtest", help="how many alerts a rule file would have raised on recorded prices")
    backtest.add_argument("file", metavar="FILE", help="the changed rule file (or a directory of rule files)")
    backtest.add_argument("--data", required=True, action="append", metavar="PATH",
                          help="recorded ticks: CSV/NDJSON files or directories (repeatable)")
    backtest.add_argument("--since", help="count alerts from this date on (YYYY-MM-DD); earlier data only warms up")
    backtest.add_argument("--until", help="count alerts up to this date (YYYY-MM-DD)")
    backtest.add_argument("--json", action="store_true", help="print one JSON object")
    backtest.set_defaults(run=backtest_command)


def detector_names() -> set[str]:
    from detectors.stack import DETECTOR_NAMES

    return set(DETECTOR_NAMES)


def ceilings_of(catalog) -> dict:
    from detectors.ceiling import ceilings_of

    return ceilings_of(catalog)


def check_command(settings, args: argparse.Namespace) -> int:
    """A directory is checked as the engine loads it; a file as part of the directory it is in
    (its matchers name labels and rules of the other files), with that directory's catalog."""
    target = Path(args.path) if args.path else settings.rules_dir
    directory = target if target.is_dir() else target.parent
    catalog_dir = directory / "catalog" if (directory / "catalog").is_dir() else settings.catalog_dir
    try:
        paths = rule_files(target) if target.is_dir() else in_context(target, directory)
        catalog = load_catalog(catalog_dir)
    except CatalogError as exc:
        print(exc, file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"{target}:0: cannot read: {exc}", file=sys.stderr)
        return 1
    try:
        ruleset = load_rules(paths, catalog, detector_names())
    except RuleSetError as exc:
        for error in exc.errors:
            print(error, file=sys.stderr)
        return 1
    if target.is_dir():
        for path in paths:
            print(f"{path}: ok")
    else:
        others = ", ".join(p.name for p in paths if p != target) or "none"
        print(f"{target}: ok (checked with the other rule files of {directory}: {others})")
    print(f"{len(ruleset.rules)} rules in {len(paths)} files")
    return 0


def test_command(settings, args: argparse.Namespace) -> int:
    from pipeline.rule_tests import format_result, run_test_file

    files = find_test_files([Path(f) for f in args.files] or [settings.rules_dir / "tests"])
    if not files:
        print("rules test: no test files (*.test.yaml) found", file=sys.stderr)
        return 2
    catalog = load_catalog(settings.catalog_dir)
    names, ceilings = detector_names(), ceilings_of(catalog)
    ok = True
    for path in files:
        outcome = run_test_file(path, catalog, names, ceilings)
        print(format_result(outcome), file=sys.stdout if outcome.ok else sys.stderr)
        ok = ok and outcome.ok
    return 0 if ok else 1


def find_test_files(paths: list[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.iterdir() if p.name.endswith((".test.yaml", ".test.yml"))))
        else:
            found.append(path)
    return found


def backtest_command(settings, args: argparse.Namespace) -> int:
    from pipeline.rule_backtest import compare, format_comparison, rule_sets

    catalog = load_catalog(settings.catalog_dir)
    try:
        current, candidate = rule_sets(Path(args.file), settings.rules_dir, catalog, detector_names())
    except RuleSetError as exc:
        for error in exc.errors:
            print(error, file=sys.stderr)
        return 1
    try:
        report = compare([Path(p) for p in args.data], current, candidate, catalog, ceilings_of(catalog),
                         args.since, args.until)
    except (OSError, ValueError) as exc:
        print(f"rules backtest: {exc}", file=sys.stderr)
        return 2
    if args.json:
        import json

        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        print(format_comparison(report))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m pipeline.rules_cli check|test|backtest ...``: the same commands without the server CLI."""
    from base.config import Settings

    parser = argparse.ArgumentParser(prog="pasarwatch rules", description=__doc__)
    add_commands(parser.add_subparsers(dest="rules_command", required=True))
    args = parser.parse_args(argv)
    return args.run(Settings.from_env(), args)


if __name__ == "__main__":
    sys.exit(main())
