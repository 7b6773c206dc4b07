"""Feeding a test system the demo data (server/demo_data), as `pasarwatch up --demo` does."""
from __future__ import annotations

from server.demo import load_days
from tests.system import System

SHALLOT = "bawang-merah"
WEST_JAVA = "32"
# Lebaran 2024 was 10 April; the shallot surge peaks around the 17th (Rp 40.000 to 80.000).
SURGE_DAY = "2024-04-17"
DAYS_PER_REQUEST = 20


def feed_demo(system: System, commodity: str = SHALLOT, until: str = SURGE_DAY) -> int:
    """Posts the demo prices of ``commodity`` up to ``until`` (an ISO date) with their real
    dates, oldest first; returns the number of ticks accepted."""
    ticks = []
    for day, rows in load_days():
        if day.date().isoformat() > until:
            break
        ticks.extend({**row, "ts": day.timestamp()} for row in rows if row["commodity"] == commodity)
    sent = 0
    for start in range(0, len(ticks), DAYS_PER_REQUEST * 18):
        batch = ticks[start:start + DAYS_PER_REQUEST * 18]
        response = system.post(batch)
        assert response.status_code == 202, response.text
        sent += len(batch)
    return sent
