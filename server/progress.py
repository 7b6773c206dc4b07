"""Is the engine keeping up? Waiting ticks and the engine's last sign of progress, for /readyz.

The engine writes ``pw:engine:progress`` (wall time) when it commits ticks and, at most once a
second, when it finds nothing to read. Ticks wait when the consumer group has entries read but
not acknowledged, or entries not yet read; if some wait and the engine has shown no progress for
``stall`` seconds, detection has stopped (a crash loop, a hung process) and the web process
says so instead of pretending to be ready.
"""
from __future__ import annotations

import time

from redis.asyncio import Redis

from base import keys


async def engine_progress(redis: Redis, stall: float, now: float | None = None) -> dict:
    """``{"waiting": bool, "pending": int, "idle_for": float | None, "stalled": bool}``."""
    now = time.time() if now is None else now
    pipe = redis.pipeline(transaction=False)
    pipe.xinfo_groups(keys.TICKS)
    pipe.xinfo_stream(keys.TICKS)
    pipe.get(keys.ENGINE_PROGRESS)
    groups, stream, progress = await pipe.execute(raise_on_error=False)
    pending, delivered = 0, None
    for group in groups if isinstance(groups, list) else []:
        if group["name"] == keys.ENGINE_GROUP.encode():
            pending, delivered = int(group["pending"]), group["last-delivered-id"]
    last = stream.get("last-generated-id") if isinstance(stream, dict) else None
    length = stream.get("length", 0) if isinstance(stream, dict) else 0
    unread = bool(length) and last is not None and _newer(last, delivered)
    waiting = pending > 0 or unread
    idle_for = now - float(progress) if isinstance(progress, bytes) else None
    stalled = waiting and (idle_for is None or idle_for > stall)
    return {"waiting": waiting, "pending": pending, "idle_for": idle_for, "stalled": stalled}


def _newer(last: bytes, delivered: bytes | None) -> bool:
    if delivered is None:
        return True
    return _id(last) > _id(delivered)


def _id(entry_id: bytes) -> tuple[int, int]:
    ms, _, seq = entry_id.decode().partition("-")
    return int(ms), int(seq or 0)
