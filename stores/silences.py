"""Silences and acknowledgements in Redis: written by the HTTP API (server/silences.py) and the
Telegram bot (/ack), read by the engine and the notification dispatcher. A silence is stored
by one script that also forgets expired ones (``save_forgetting``; ``save_silence`` queues the
same record on a pipeline, without forgetting, for tools and tests that load many); an
acknowledgement is queued on the writer's own pipeline. The announcements go on ``pw:events``
after the write: redis-py allows no PUBLISH in a Redis Cluster pipeline, and a dashboard that
misses one resynchronises from the records anyway.
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
    events.append(announcement(silence))


def announcement(silence: dict) -> bytes:
    """What dashboards are told on ``pw:events`` when a silence is stored."""
    return orjson.dumps({"type": "silence", "silence": silence})


EXPIRED_KEPT = 10_000  # expired silences kept for audit at most (the newest)
# Forgotten per change at most: more than the live silences that can run out between two changes
# (server/silences.py's MAX_LIVE, 1,000), so each change brings the count back within the bound;
# a larger backlog (kept before retention existed) goes this many per change.
FORGET_BATCH = 2_000

# Store one silence and forget, in the same atomic step, the oldest expired ones past the bound:
# read and delete in one script, so two web processes changing silences at once cannot both
# count the same expired ones (each would then forget too few). The expired with the lowest
# ends are the oldest, so the n lowest of the zset are the ones to go, for both rules at once.
# KEYS: SILENCES, SILENCE_ENDS. ARGV: id, silence JSON, ends_at, now, retention, keep, batch.
SAVE_AND_FORGET = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
local now = tonumber(ARGV[4])
local too_old = redis.call('ZCOUNT', KEYS[2], '-inf', now - tonumber(ARGV[5]))
local over = redis.call('ZCOUNT', KEYS[2], '-inf', now) - tonumber(ARGV[6])
local n = math.min(math.max(too_old, over), tonumber(ARGV[7]))
if n <= 0 then return 0 end
local ids = redis.call('ZRANGE', KEYS[2], 0, n - 1)
redis.call('HDEL', KEYS[1], unpack(ids))
redis.call('ZREM', KEYS[2], unpack(ids))
return n
"""


async def save_forgetting(redis: Any, silence: dict, now: float, retention: float,
                          keep: int = EXPIRED_KEPT) -> list[bytes]:
    """Store ``silence`` (redis.asyncio) and forget the expired silences ended more than
    ``retention`` seconds before ``now`` or older than the newest ``keep`` expired ones (at most
    FORGET_BATCH), atomically; returns the announcement to publish."""
    script = redis.register_script(SAVE_AND_FORGET)
    await script(keys=[keys.SILENCES, keys.SILENCE_ENDS],
                 args=[silence["id"], orjson.dumps(silence), silence["ends_at"], now, retention, keep, FORGET_BATCH])
    return [announcement(silence)]


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
