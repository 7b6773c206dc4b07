"""``pasarwatch demo``: replay real PIHPS prices over HTTP, as a field device would.

The data (``server/demo_data/``) are daily prices of 18 West Java markets. Each reporting day is
posted as one batch, ``PASARWATCH_DEMO_SPEED`` days per second. The feed resumes after the
newest price the server already holds (so a second run continues instead of repeating), loops
over the data with dates moved on by its length, and stops before reaching the future.
"""
from __future__ import annotations

import csv
import json
import logging
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

log = logging.getLogger("pasarwatch.demo")

DEMO_DIR = Path(__file__).resolve().parent / "demo_data"
WIB = timezone(timedelta(hours=7))
REPORT_HOUR = 10  # PIHPS collects prices in the morning


def load_days(directory: Path = DEMO_DIR) -> list[tuple[datetime, list[dict]]]:
    """Rows grouped by reporting day, oldest first; each row a tick without ts."""
    days: dict[str, list[dict]] = {}
    for path in sorted(directory.glob("*.csv")):
        with path.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                if not row.get("price"):
                    continue
                days.setdefault(row["date"], []).append({
                    "commodity": row["commodity"], "market": row["market"],
                    "province": row["province"], "price": float(row["price"]),
                })
    return [(datetime.fromisoformat(day).replace(hour=REPORT_HOUR, tzinfo=WIB), rows)
            for day, rows in sorted(days.items())]


def timeline(days: list[tuple[datetime, list[dict]]], after: float) -> Iterator[tuple[float, list[dict]]]:
    """(ts, rows) for every day later than ``after``, looping with dates moved on."""
    if not days:
        return
    span = days[-1][0] - days[0][0] + timedelta(days=1)
    loop = 0
    while True:
        shift = span * loop
        for day, rows in days:
            ts = (day + shift).timestamp()
            if ts > after:
                yield ts, rows
        loop += 1


def _request(url: str, body: bytes | None = None, token: str | None = None) -> dict:
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=body, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def newest_ts(base_url: str) -> float:
    series = _request(f"{base_url}/api/v1/series")["series"]
    return max((s["ts"] for s in series), default=0.0)


def run_demo(base_url: str, days_per_second: float, token: str, max_days: int | None = None) -> int:
    days = load_days()
    sent_days = 0
    seq = int(time.time() * 1000)  # unique per run; the server drops a repeated (source, seq)
    for ts, rows in timeline(days, newest_ts(base_url)):
        if ts > time.time() or (max_days is not None and sent_days >= max_days):
            break
        ticks = []
        for row in rows:
            seq += 1
            ticks.append({**row, "ts": ts, "source": "demo-feed", "seq": seq})
        while True:
            try:
                _request(f"{base_url}/api/v1/ticks", json.dumps(ticks).encode(), token)
                break
            except urllib.error.HTTPError as exc:
                if exc.code != 503:
                    log.error("server refused a demo batch: %s %s", exc.code, exc.read()[:300])
                    break
                time.sleep(1)  # store unavailable: the same batch is retried
            except urllib.error.URLError:
                time.sleep(1)
        sent_days += 1
        if sent_days % 20 == 0:
            log.info("demo feed at %s", datetime.fromtimestamp(ts, WIB).date())
        time.sleep(1.0 / days_per_second)  # pacing the feed, as a device reports over time
    log.info("demo feed sent %d days", sent_days)
    return 0
