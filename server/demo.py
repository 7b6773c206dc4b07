"""``pasarwatch demo``: replay real PIHPS prices over HTTP, as a field device would.

The data (``server/demo_data/``) are daily prices of 18 West Java markets, 2023-09-01 to
2024-06-28. Each reporting day is posted as one batch with its real date,
``PASARWATCH_DEMO_SPEED`` days per second, once: the feed resumes after the newest price the
server already holds and stops after the last day of the data. Nothing is shifted or looped,
so the page shows the period as it happened.

``pasarwatch up --demo`` records the replay's state in ``pw:demo:status`` (JSON: ``state``
running, finished or failed, ``from`` and ``to`` the replayed period, ``updated_at``) and
announces each change on ``pw:events`` as ``{"type": "demo", ...}``; ``GET /api/v1/demo``
returns it (``{"state": "off"}`` when no demo runs).
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
from collections.abc import Iterator

from starlette.routing import Route

from base import keys

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
    """(ts, rows) for every day later than ``after``, at its real date, oldest first, once."""
    for day, rows in days:
        ts = day.timestamp()
        if ts > after:
            yield ts, rows


def period(days: list[tuple[datetime, list[dict]]]) -> tuple[str, str]:
    """The first and last reporting day of the data, as ISO dates."""
    return days[0][0].date().isoformat(), days[-1][0].date().isoformat()


# -- the replay's state, for the page ---------------------------------------------------------------

def publish_status(client, state: str, days: list[tuple[datetime, list[dict]]], **extra) -> dict:
    """Store the replay's state in ``pw:demo:status`` and announce it on ``pw:events``."""
    first, last = period(days)
    status = {"state": state, "from": first, "to": last, "updated_at": time.time(), **extra}
    client.set(keys.DEMO_STATUS, json.dumps(status))
    client.publish(keys.EVENTS, json.dumps({"type": "demo", **status}))
    return status


async def status_endpoint(request):
    """GET /api/v1/demo: the replay's state, or ``{"state": "off"}`` when no demo runs."""
    from server.responses import ORJSONResponse

    raw = await request.app.state.redis.get(keys.DEMO_STATUS)
    return ORJSONResponse(json.loads(raw) if raw else {"state": "off"})


routes = [Route("/api/v1/demo", status_endpoint)]


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
    first, last = period(days)
    log.info("demo feed: replaying %s to %s at their real dates", first, last)
    for ts, rows in timeline(days, newest_ts(base_url)):
        if max_days is not None and sent_days >= max_days:
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
    log.info("demo feed sent %d days; the replay of %s to %s has ended", sent_days, first, last)
    return 0
