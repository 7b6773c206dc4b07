"""``python -m bench``: run the benchmarks, print a table, write bench/results/results.json.

Every benchmark starts what it needs on 127.0.0.1 (a real Redis, real server processes, real
WebSocket clients), is bounded in time and count, and stops everything it started.

    python -m bench                       # all benchmarks, full size
    python -m bench --quick               # all, small (under two minutes)
    python -m bench fanout latency        # only these
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
import traceback
from pathlib import Path

# The benchmarks use the test suite's helpers (tests/system.py, testkit/fakebot.py): run from anywhere.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import machine, procs  # noqa: E402

BENCHMARKS = ("detection", "engine_cpu", "ingest", "engines", "imports", "latency", "fanout", "telegram")
RESULTS = Path(__file__).resolve().parent / "results" / "results.json"
COLUMNS = (("metric", 58), ("ours", 11), ("baseline", 11), ("ratio", 7), ("p99", 9), ("unit", 17), ("goal", 15))


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.2f}" if value < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table(results: list[dict]) -> str:
    lines = ["  ".join(name.ljust(width) for name, width in COLUMNS)]
    lines.append("  ".join("-" * width for _, width in COLUMNS))
    for result in results:
        if result.get("skipped"):
            lines.append(f"{result['name']}: {result['skipped']}")
            continue
        for row in result["rows"]:
            cells = [_cell(row.get(name)).ljust(width) if name == "metric" else _cell(row.get(name)).rjust(width)
                     for name, width in COLUMNS]
            lines.append("  ".join(cells).rstrip())
            if row.get("note"):
                lines.append(f"    {row['note']}")
    return "\n".join(lines)


def markdown(results: list[dict]) -> str:
    """The same table in Markdown, for docs/benchmarks.md and the README."""
    names = [name for name, _ in COLUMNS]
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    for result in results:
        if result.get("skipped"):
            lines.append(f"| {result['skipped']} |" + " |" * (len(names) - 1))
            continue
        for row in result["rows"]:
            cells = [_cell(row.get(name)) for name in names]
            if row.get("note"):
                cells[0] += f" ({row['note']})"
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_one(name: str, quick: bool) -> dict:
    module = importlib.import_module(f"bench.{name}")
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    try:
        result = module.run(quick)
    except Exception as exc:  # noqa: BLE001 - one failing benchmark must not hide the others' figures
        traceback.print_exc()
        result = {"name": name, "rows": [], "error": f"{type(exc).__name__}: {exc}"}
    result["seconds"] = round(time.perf_counter() - started, 1)
    # Other work on the machine takes cores from the servers under test: worth knowing.
    result["load_average_1min"] = {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)}
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("benchmarks", nargs="*", choices=[[], *BENCHMARKS], metavar="BENCHMARK",
                        help=f"which to run (default all): {', '.join(BENCHMARKS)}")
    parser.add_argument("--quick", action="store_true", help="small sizes: the whole suite in under two minutes")
    parser.add_argument("--markdown", action="store_true", help="also print the table in Markdown")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON results file (default {RESULTS})")
    args = parser.parse_args(argv)
    chosen = args.benchmarks or list(BENCHMARKS)
    procs.pin_self_to_load_cpus()
    procs.raise_fd_limit()
    described = machine.describe()
    described["niceness"] = procs.raise_priority()
    print(f"machine: {machine.summary(described)}", flush=True)
    results = []
    for name in BENCHMARKS:
        if name in chosen:
            print(f"running {name}{' (quick)' if args.quick else ''} (load average {os.getloadavg()[0]:.2f}) ...",
                  flush=True)
            results.append(run_one(name, args.quick))
    print()
    print(table(results))
    if args.markdown:
        print()
        print(markdown(results))
    failed = [r for r in results if r.get("error")]
    for result in failed:
        print(f"{result['name']} FAILED: {result['error']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "quick": args.quick,
                                    "machine": described, "results": results}, indent=2) + "\n")
    print(f"\nresults written to {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
