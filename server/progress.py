"""Are the engines keeping up? Per partition: its owner, its waiting ticks and the owner's last
sign of progress, for /readyz and /metrics.

The engine that holds a partition's lease (``lease``, its id) writes the partition's
``progress`` (wall time) when it commits ticks and, at most once a second, when it finds
nothing to read. Ticks wait when the partition's consumer group ``engine`` has entries read but
not acknowledged (pending), or entries not yet read (unread; together the partition's lag). If
some wait and the partition has no owner, or its owner has shown no progress for ``stall``
seconds, detection has stopped there (a crash loop, a hung process, no engine left) and the web
process says so instead of pretending to be ready.
"""
from __future__ import annotations

import time
from typing import Any

from redis.asyncio import Redis

from base import keys
from base.keys import Partition

# Redis before 7.0 does not report a group's lag: the unread entries are then counted in Redis
# (nothing but the number crosses the network), up to this many.
UNREAD_COUNTED = 10_000
COUNT_AFTER = "return #redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', ARGV[2])"


async def partitions_progress(redis: Redis, partitions: list[Partition], stall: float,
                              now: float | None = None) -> list[dict]:
    """Per partition ``{"partition", "owner", "pending", "unread", "lag", "waiting", "idle_for",
    "stalled"}``: ``owner`` the engine holding its lease (None: none), ``lag`` = pending + unread."""
    now = time.time() if now is None else now
    pipe = redis.pipeline(transaction=False)
    for partition in partitions:
        pipe.xinfo_groups(partition.ticks)
        pipe.xinfo_stream(partition.ticks)
        pipe.get(partition.progress)
        pipe.get(partition.lease)
    replies = await pipe.execute(raise_on_error=False) if partitions else []
    found = []
    for number, partition in enumerate(partitions):
        groups, stream, progress, lease = replies[4 * number: 4 * number + 4]
        found.append(await _one(redis, partition, groups, stream, progress, lease, stall, now))
    return found


async def _one(redis: Redis, partition: Partition, groups: Any, stream: Any, progress: Any, lease: Any,
               stall: float, now: float) -> dict:
    pending, delivered, lag = 0, None, None
    for group in groups if isinstance(groups, list) else []:
        if group["name"] == keys.ENGINE_GROUP.encode():
            pending, delivered, lag = int(group["pending"]), group["last-delivered-id"], group.get("lag")
    last = stream.get("last-generated-id") if isinstance(stream, dict) else None
    length = stream.get("length", 0) if isinstance(stream, dict) else 0
    if not length or last is None or not _newer(last, delivered):
        unread = 0
    elif isinstance(lag, int):
        unread = lag
    elif delivered is None:  # no group yet: the engine has read nothing
        unread = int(length)
    else:
        unread = int(await redis.register_script(COUNT_AFTER)(keys=[partition.ticks],
                                                                args=[delivered, UNREAD_COUNTED]))
    waiting = pending > 0 or unread > 0
    owner = lease.decode(errors="replace") if isinstance(lease, bytes) else None
    idle_for = now - float(progress) if isinstance(progress, bytes) else None
    stalled = waiting and (owner is None or idle_for is None or idle_for > stall)
    return {"partition": partition.number, "owner": owner, "pending": pending, "unread": unread,
            "lag": pending + unread, "waiting": waiting, "idle_for": idle_for, "stalled": stalled}


def summary(progress: list[dict]) -> dict:
    """All partitions as the one engine /readyz described before partitions: ``{"waiting",
    "pending", "idle_for" (the longest of the waiting partitions'), "stalled"}``."""
    waiting = [p for p in progress if p["waiting"]]
    idle = [p["idle_for"] for p in waiting if p["idle_for"] is not None]
    return {"waiting": bool(waiting), "pending": sum(p["pending"] for p in progress),
            "idle_for": max(idle) if idle else None, "stalled": any(p["stalled"] for p in progress)}


def _newer(last: bytes, delivered: bytes | None) -> bool:
    if delivered is None:
        return True
    return _id(last) > _id(delivered)


def _id(entry_id: bytes) -> tuple[int, int]:
    ms, _, seq = entry_id.decode().partition("-")
    return int(ms), int(seq or 0)
