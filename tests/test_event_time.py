"""Staleness is judged per series: one tick with an odd time cannot make every feed look stale."""
from __future__ import annotations

import time

import orjson

from tests.system import wait_for
from tests.test_pipeline import feed


def _sweeps_after(system, moment: float) -> bool:
    beat = system.redis.get("pw:engine:heartbeat")
    return beat is not None and float(beat) > moment


def test_a_tick_without_ts_among_a_replay_moves_only_its_own_series(system):
    sent = feed(system, range(30))  # a month of 2024 prices from five markets, replayed now
    system.wait_processed(sent)
    now_tick = {"commodity": "bawang-merah", "market": "pasar-baru", "province": "32", "price": 38000}
    assert system.post([now_tick]).status_code == 202  # no ts: "now"
    system.wait_processed(sent + 1)
    mark = time.time()
    wait_for(lambda: _sweeps_after(system, mark + 1.0), 15, "two more stale sweeps")
    health = [orjson.loads(v) for v in system.redis.hvals("pw:health")]
    assert [h for h in health if h["state"] == "stale"] == []
    assert not [a for a in system.alerts() if a["rule"] == "data-terhenti"]
