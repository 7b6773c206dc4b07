"""Silences and acknowledgements in Redis: written by the HTTP API (server/silences.py) and the
Telegram bot (/ack), read by the engine and the notification dispatcher. Each writer queues its
commands on its own (sync or asyncio) pipeline, so the record and its announcement on
``pw:events`` go out in one transaction.
"""
from __future__ import annotations

from typing import Any

import orjson

from base import keys


def save_silence(pipe: Any, silence: dict) -> None:
    """Queue storing and announcing ``silence`` on a (sync or asyncio) pipeline."""
    encoded = orjson.dumps(silence)
    pipe.hset(keys.SILENCES, silence["id"], encoded)
    pipe.zadd(keys.SILENCE_ENDS, {silence["id"]: silence["ends_at"]})
    pipe.publish(keys.EVENTS, orjson.dumps({"type": "silence", "silence": silence}))


def acknowledge(pipe: Any, alert_key: str, by: str, at: float, comment: str = "") -> dict:
    """Queue recording an acknowledgement and telling every dashboard; returns it."""
    ack = {"by": by, "at": at, "comment": comment}
    pipe.hset(keys.ACKS, alert_key, orjson.dumps(ack))
    pipe.publish(keys.EVENTS, orjson.dumps({"type": "ack", "key": alert_key, "by": by, "at": at}))
    return ack


def active_silences(client: Any, now: float) -> list[dict]:
    """Silences not yet over at ``now`` (active or pending), from a sync redis client."""
    ids = client.zrangebyscore(keys.SILENCE_ENDS, f"({now}", "+inf")
    if not ids:
        return []
    return [orjson.loads(raw) for raw in client.hmget(keys.SILENCES, ids) if raw is not None]
