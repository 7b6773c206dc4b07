"""Silences and acknowledgements in Redis: written by the HTTP API (server/silences.py) and the
Telegram bot (/ack), read by the engine and the notification dispatcher. Each writer queues its
commands on its own (sync or asyncio) pipeline and publishes the announcements on ``pw:events``
(the ``events`` list) after it: redis-py allows no PUBLISH in a Redis Cluster pipeline, and a
dashboard that misses one resynchronises from the records anyway.
"""
from __future__ import annotations

from typing import Any

import orjson

from base import keys


def save_silence(pipe: Any, silence: dict, events: list[bytes]) -> None:
    """Queue storing ``silence`` on a (sync or asyncio) pipeline; its announcement goes to ``events``."""
    encoded = orjson.dumps(silence)
    pipe.hset(keys.SILENCES, silence["id"], encoded)
    pipe.zadd(keys.SILENCE_ENDS, {silence["id"]: silence["ends_at"]})
    events.append(orjson.dumps({"type": "silence", "silence": silence}))


EXPIRED_KEPT = 10_000  # expired silences kept for audit at most (the newest)
FORGET_BATCH = 100  # forgotten per change at most: a change costs little, and each forgets more than it adds


async def stale_silences(redis: Any, now: float, retention: float, keep: int = EXPIRED_KEPT) -> list[bytes]:
    """Ids of the expired silences to forget (redis.asyncio): ended more than ``retention``
    seconds before ``now``, or older than the newest ``keep`` expired ones; at most FORGET_BATCH."""
    old = await redis.zrangebyscore(keys.SILENCE_ENDS, "-inf", now - retention, start=0, num=FORGET_BATCH)
    over = await redis.zcount(keys.SILENCE_ENDS, "-inf", now) - keep
    oldest = await redis.zrange(keys.SILENCE_ENDS, 0, min(over, FORGET_BATCH) - 1) if over > 0 else []
    return sorted(set(old) | set(oldest))


def forget_silences(pipe: Any, ids: list[bytes]) -> None:
    """Queue deleting the silences ``ids`` (from ``stale_silences``)."""
    if ids:
        pipe.hdel(keys.SILENCES, *ids)
        pipe.zrem(keys.SILENCE_ENDS, *ids)


def acknowledge(pipe: Any, alert_key: str, by: str, at: float, events: list[bytes], comment: str = "") -> dict:
    """Queue recording an acknowledgement (returned); its announcement goes to ``events``."""
    ack = {"by": by, "at": at, "comment": comment}
    pipe.hset(keys.ACKS, alert_key, orjson.dumps(ack))
    events.append(orjson.dumps({"type": "ack", "key": alert_key, "by": by, "at": at}))
    return ack


async def announce(redis: Any, events: list[bytes]) -> None:
    """Publish the announcements on ``pw:events`` (redis.asyncio; a cluster client routes each)."""
    for event in events:
        await redis.publish(keys.EVENTS, event)


def active_silences(client: Any, now: float) -> list[dict]:
    """Silences not yet over at ``now`` (active or pending), from a sync redis client."""
    ids = client.zrangebyscore(keys.SILENCE_ENDS, f"({now}", "+inf")
    if not ids:
        return []
    return [orjson.loads(raw) for raw in client.hmget(keys.SILENCES, ids) if raw is not None]
