"""Telegram throughput: notifications delivered per second to a local fake Bot API, many chats.

Telegram lets a bot send about 30 messages a second overall. The benchmark subscribes many
chats to a commodity, appends alerts to ``pw:alerts`` as the engine does, lets the dispatcher
queue the notifications and real notification workers (``python -m workers.run``, RQ) deliver
them through python-telegram-bot to the fake Bot API of the tests. The figures are the
delivery rate (it should reach the limit) and the most messages the fake server saw in any
one-second window (it must never exceed it).

When the notification path is not there (no workers/dispatch.py, workers/telegram.py or
testkit/fakebot.py) the benchmark says so and is skipped.
"""
from __future__ import annotations

import sys
import time
from importlib.util import find_spec

import orjson
import redis

from bench import procs
from base.config import PROJECT_ROOT
from testkit.waiting import wait_for

CHATS_QUICK = 120
CHATS_FULL = 600
WORKERS = 4
ALERTS_PER_RUN = 2
LIMIT = 30


def available() -> bool:
    return all(find_spec(name) is not None for name in ("workers.dispatch", "workers.telegram", "testkit.fakebot"))


def max_in_window(times: list[float], window: float = 1.0) -> int:
    """The most events in any half-open window of ``window`` seconds.

    >>> max_in_window([0.0, 0.5, 0.99, 1.0, 1.2, 3.0])  # 0.5, 0.99, 1.0 and 1.2
    4
    """
    times = sorted(times)
    best, low = 0, 0
    for high, at in enumerate(times):
        while at - times[low] >= window:
            low += 1
        best = max(best, high - low + 1)
    return best


def _alert(n: int) -> dict:
    now = time.time()
    return {"type": "alert", "id": f"{int(now * 1000)}-{n}", "key": f"harga-menyimpang/cabai-rawit-merah/pasar-{n}",
            "rule": "harga-menyimpang", "state": "firing", "severity": "warning",
            "commodity": "cabai-rawit-merah", "market": "pasar-agung", "province": "32", "price": 387500.0,
            "ts": now, "started_at": now, "resolved_at": None,
            "expected": {"level": 60000.0, "lo": 52000.0, "hi": 68000.0}, "detectors": ["crossmarket", "zscore"],
            "reasons": {"zscore": "z=93.3: +546% vs last Rp 60.000"}, "summary": "Harga menyimpang",
            "routes": {"telegram": [], "topics": True}}


def _measure(chats: int) -> dict:
    from base.catalog import load_catalog
    from testkit.fakebot import FakeTelegram
    from workers import subscriptions
    from base import keys
    from stores import partitioned
    from stores.partitions import partition_count
    from workers.dispatch import dispatch_alerts
    from workers.settings import NotifySettings

    with procs.stack("telegram") as system, FakeTelegram() as fake:
        env = {"REDIS_URL": system.redis_url, "TELEGRAM_BOT_TOKEN": "123:BENCH", "TELEGRAM_BASE_URL": fake.base_url,
               "PASARWATCH_RULES_DIR": str(system.rules_dir), "PASARWATCH_LOG_LEVEL": "WARNING",
               "PYTHONPATH": str(PROJECT_ROOT)}
        store = redis.Redis.from_url(system.redis_url)
        with store.pipeline() as pipe:
            for chat in range(chats):
                subscriptions.subscribe(pipe, 100_000 + chat, "cabai-rawit-merah")
            pipe.execute()
        partitions = keys.partitions(partition_count(store, 1))
        for n in range(ALERTS_PER_RUN):
            event = _alert(n)
            store.xadd(partitioned.of_series(partitions, event["commodity"]).alerts, {"a": orjson.dumps(event)},
                       id=event["id"])
        queued = dispatch_alerts(store, load_catalog(system.rules_dir / "catalog"), NotifySettings.from_env(env))
        for i in range(WORKERS):
            system.start_command(f"worker-{i}", [sys.executable, "-m", "workers.run", "--name", f"bench-{i}"], env)
        expected = chats  # the alerts of one chat within the group window make one digest

        def delivered() -> bool:
            for name in list(system.servers):
                system.servers[name].check_alive()
            return len(fake.messages()) >= expected

        wait_for(delivered, 60 + 3 * expected / LIMIT, f"{expected} Telegram messages")
        sends = [call.at for call in fake.calls("sendMessage", "ok")]
        refused = len(fake.calls("sendMessage")) - len(sends)
        store.close()
    span = max(sends) - min(sends)
    return {"chats": chats, "alerts": ALERTS_PER_RUN, "queued_pairs": queued, "messages": len(sends),
            "refused_by_fake": refused, "per_second": round((len(sends) - 1) / span, 1) if span > 0 else None,
            "max_in_any_second": max_in_window(sends)}


def run(quick: bool) -> dict:
    if not available():
        print("telegram: not available")
        return {"name": "telegram", "rows": [], "skipped": "telegram: not available (no workers/dispatch.py, "
                "workers/telegram.py or testkit/fakebot.py)"}
    figures = _measure(CHATS_QUICK if quick else CHATS_FULL)
    return {"name": "telegram", "details": figures, "rows": [
        {"metric": f"telegram: notifications delivered ({figures['chats']} chats)", "ours": figures["per_second"],
         "unit": "msg/s", "goal": f"reach {LIMIT}/s",
         "note": f"{figures['messages']} messages through {WORKERS} RQ workers; fake Bot API refused "
                 f"{figures['refused_by_fake']}"},
        {"metric": "telegram: most messages in any one second", "ours": figures["max_in_any_second"],
         "unit": "msg", "goal": f"<= {LIMIT}"},
    ]}
