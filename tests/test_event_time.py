"""Staleness is judged per series: one tick with an odd time cannot make every feed look stale."""
from __future__ import annotations

import time

import orjson

from base import keys
from tests.system import wait_for
from tests import partitions
from tests.test_pipeline import feed


def _sweeps_after(system, moment: float) -> bool:
    beat = system.redis.get(keys.ENGINE_HEARTBEAT)
    return beat is not None and float(beat) > moment


def test_a_tick_without_ts_among_a_replay_moves_only_its_own_series(system):
    sent = feed(system, range(30))  # a month of 2024 prices from five markets, replayed now
    system.wait_processed(sent)
    now_tick = {"commodity": "bawang-merah", "market": "pasar-baru", "province": "32", "price": 38000}
    assert system.post([now_tick]).status_code == 202  # no ts: "now"
    system.wait_processed(sent + 1)
    mark = time.time()
    wait_for(lambda: _sweeps_after(system, mark + 1.0), 15, "two more stale sweeps")
    health = [orjson.loads(v) for v in partitions.merged(system.redis, "health").values()]
    assert [h for h in health if h["state"] == "stale"] == []
    assert not [a for a in system.alerts() if a["rule"] == "data-terhenti"]


def test_a_late_tick_is_history_not_news(system):
    from tests.test_pipeline import DAY, MARKETS, START, day_ticks

    sent = feed(system, range(15))
    system.wait_processed(sent)
    market = MARKETS[0]
    late = {**day_ticks(3)[0], "price": 450_000.0, "ts": START + 3 * DAY + 3600}  # ten times the price
    answer = system.post([day_ticks(15)[1], late])
    assert answer.status_code == 202 and answer.json()["late"] == [1]  # the 202 says which were late
    sent += 1
    system.wait_processed(sent + 1)
    [latest] = system.http.get("/api/v1/series", params={"commodity": "cabai-rawit-merah",
                                                          "market": market}).json()["series"]
    assert latest["ts"] == START + 14 * DAY  # the newest price did not move backwards
    points = system.http.get(f"/api/v1/series/cabai-rawit-merah/{market}/history").json()["points"]
    [stored] = [p for p in points if p["price"] == 450_000.0]
    assert stored["verdict"]["late"] is True and stored["verdict"]["fired"] == []
    assert [a for a in system.alerts() if a["market"] == market] == []  # never an alert as if news
    # and the detectors did not learn it: the next day's ordinary price is judged ordinary
    sent += 1 + feed(system, range(16, 17))
    system.wait_processed(sent)
    points = system.http.get(f"/api/v1/series/cabai-rawit-merah/{market}/history").json()["points"]
    assert points[-1]["ts"] == START + 16 * DAY and points[-1]["verdict"]["fired"] == []
