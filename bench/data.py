"""Real price series for the benchmarks: PIHPS West Java daily prices, as the demo feed sends them.

The full export (2019-2025, 18 markets, chilli and shallots) is read from the shared data
folder when it is there; otherwise the demo slice that ships with the server is used. Both
are brought to the demo feed's form (catalog ids, one batch of rows per reporting day) by the
same code the demo uses, so a benchmark tick is a tick a device would send.
"""
from __future__ import annotations

import csv
import tempfile
from datetime import datetime
from pathlib import Path

from server.demo import DEMO_DIR, load_days
from server.demo_data.make_demo_slice import COLUMNS, SOURCE_FILES, convert

# ../shared next to the repository, as the data sets' README describes.
SHARED_PIHPS = Path(__file__).resolve().parents[2] / "shared" / "data" / "pihps-jabar"

Day = tuple[datetime, list[dict]]


def pihps_source() -> Path | None:
    return SHARED_PIHPS if all((SHARED_PIHPS / name).exists() for name in SOURCE_FILES) else None


def load_pihps_days() -> tuple[list[Day], str]:
    """Reporting days (oldest first) of the full export, or of the demo slice; and which it was."""
    source = pihps_source()
    if source is None:
        return load_days(DEMO_DIR), str(DEMO_DIR)
    rows: list[dict] = []
    for name in SOURCE_FILES:
        with open(source / name, newline="", encoding="utf-8") as handle:
            rows.extend(csv.DictReader(handle))
    with tempfile.TemporaryDirectory(prefix="pasarwatch-bench-data-") as tmp:
        with open(Path(tmp) / "pihps.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=COLUMNS, lineterminator="\n")
            writer.writeheader()
            writer.writerows(convert(rows, "0000-00-00", "9999-99-99"))
        return load_days(Path(tmp)), str(source)


def tick_stream(days: list[Day], count: int, source: str | None = None, copies: int = 1) -> list[dict]:
    """``count`` ticks in reporting order, each with its day's ``ts``.

    ``copies`` > 1 reports each day's prices from that many copies of every market
    (``pasar-agung``, ``pasar-agung.1``, ...): more series at the same rate per series. Past
    the end of the data the history is replayed as further markets, not as later dates: later
    dates would run into the future, which the server refuses. With ``source`` every tick
    carries it and a sequence number, as a device's ticks do.

    >>> day = (datetime(2024, 1, 2), [{"commodity": "c", "market": "m", "province": "32", "price": 1.0}])
    >>> [t["market"] for t in tick_stream([day], 4, copies=2)]
    ['m', 'm.1', 'm.2', 'm.3']
    """
    ticks: list[dict] = []
    loop = 0
    while True:
        for day, rows in days:
            ts = day.timestamp()
            for copy in range(copies):
                n = loop * copies + copy
                suffix = f".{n}" if n else ""
                for row in rows:
                    tick = {**row, "market": row["market"] + suffix, "ts": ts}
                    if source is not None:
                        tick["source"] = source
                        tick["seq"] = len(ticks)
                    ticks.append(tick)
                    if len(ticks) == count:
                        return ticks
        loop += 1


def series_count(ticks: list[dict]) -> int:
    return len({(t["commodity"], t["market"]) for t in ticks})
