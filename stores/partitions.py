"""How many partitions the data has: chosen once, by the first process that writes it.

Every web process must route a commodity to the partition every engine reads, so P cannot
change under a running system; it is stored in Redis (``pw:partitions``) the first time and
read from there ever after. A different ``PASARWATCH_PARTITIONS`` later is ignored, with a
warning: moving series between partitions would need their state moved with them.
"""
from __future__ import annotations

import logging
from typing import Any

from base import keys

log = logging.getLogger("pasarwatch.partitions")


def partition_count(client: Any, wanted: int) -> int:
    """P for this data: ``wanted`` if none is stored yet, else the stored one (sync client)."""
    client.set(keys.PARTITION_COUNT, int(wanted), nx=True)
    return _settled(client.get(keys.PARTITION_COUNT), wanted)


async def partition_count_async(client: Any, wanted: int) -> int:
    """``partition_count`` for a redis.asyncio client."""
    await client.set(keys.PARTITION_COUNT, int(wanted), nx=True)
    return _settled(await client.get(keys.PARTITION_COUNT), wanted)


def _settled(stored: bytes | str | None, wanted: int) -> int:
    count = int(stored) if stored else int(wanted)
    if count != wanted:
        log.warning("this data has %d partitions (fixed when it was first written); PASARWATCH_PARTITIONS=%d "
                    "is ignored", count, wanted)
    return count
