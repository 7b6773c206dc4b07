"""Telegram notifications in a Redis of their own (RQ_REDIS_URL) beside the data Redis: while that
Redis is away the engine goes on scoring and its alerts wait, unacknowledged, in their streams;
once it is back they are taken into their groups, each once."""
from __future__ import annotations

import pytest
import redis

from base import keys
from testkit.waiting import wait_for
from tests.redis_server import start_redis
from tests.system import QUICK_ROUTING, System
from tests.test_engines import ENV, PARTITIONS, days
from workers import notifications as store
from workers import subscriptions as subs
from workers.dispatch import GROUP

CHAT = 7002


def waiting_alerts(system: System) -> int:
    """Alert events read from the partitions' streams by the dispatcher but not acknowledged,
    plus those not read yet."""
    total = 0
    for partition in keys.partitions(PARTITIONS):
        if not system.redis.exists(partition.alerts):
            continue
        groups = {g["name"]: g for g in system.redis.xinfo_groups(partition.alerts)}
        group = groups.get(GROUP.encode())
        if group is None:
            total += system.redis.xlen(partition.alerts)
            continue
        unread = system.redis.xrange(partition.alerts, b"(" + group["last-delivered-id"], "+")
        total += group["pending"] + len(unread)
    return total


@pytest.mark.timeout(240)
def test_while_the_notifications_redis_is_away_the_engine_scores_and_its_alerts_wait(tmp_path):
    notify_server = start_redis(tmp_path / "notify")
    system = System(tmp_path / "system", env={**ENV, "RQ_REDIS_URL": notify_server.url})
    (system.rules_dir / "routing.yaml").write_text(QUICK_ROUTING)
    with redis.Redis.from_url(notify_server.url) as notify, notify.pipeline() as pipe:
        subs.subscribe(pipe, CHAT, subs.ALL, subs.ALL)
        pipe.execute()
    try:
        system.start()
        notify_server.stop()
        sent = 0
        for day in days():
            assert system.post(day).status_code == 202
            sent += len(day)
        system.wait_processed(sent, timeout=120)  # scored with the notifications' Redis away
        raised = sum(system.redis.xlen(p.alerts) for p in keys.partitions(PARTITIONS))
        assert raised > 0, "the sample raised no alert"
        assert "notifications' Redis unavailable" in system.log("engine")
        assert waiting_alerts(system) > 0
        # /metrics still answers, without the Telegram histogram it cannot read (zeros would
        # read to Prometheus as a counter reset).
        metrics = system.http.get("/metrics")
        assert metrics.status_code == 200 and "pasarwatch_tick_commit_seconds_count" in metrics.text
        assert "pasarwatch_telegram_send_seconds" not in metrics.text
        # Back on the same port, from its append-only file (the subscription survives).
        notify_server = start_redis(notify_server.data_dir, port=notify_server.port,
                                    password=notify_server.password)
        with redis.Redis.from_url(notify_server.url) as notify:
            wait_for(lambda: waiting_alerts(system) == 0, 60,
                     f"the waiting alerts handed on (engine log: {system.log('engine')[-2000:]})")
            wait_for(lambda: notify.zcard(store.INDEX) > 0, 30, "the groups flushed into notifications")
            assert "notifications' Redis is back" in system.log("engine")
            assert "pasarwatch_telegram_send_seconds_count" in system.http.get("/metrics").text
            taken = [item["id"] for raw in notify.zrange(store.INDEX, 0, -1)
                     for item in store.load_items(notify, raw.decode())]
            assert taken and len(taken) == len(set(taken)), "an alert event was taken twice"
    finally:
        system.stop()
        notify_server.stop()
