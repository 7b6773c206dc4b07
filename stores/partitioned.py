"""Reading what the engines keep per partition (base/keys.py ``Partition``) as one system.

Each partition has its own latest prices, firing alerts, health, sources and counters. A reader
that shows them all merges the partitions' hashes (a series, an alert key or a source lives in
one partition: its commodity's) and sums their counters, one pipelined round trip for all P.
A reader is given the partitions by its process (the web process computes P once at startup,
stores/partitions.py); one that was not reads P from Redis (``stored``): nothing is stored
before the first write, and then there is no partitioned data to read either.
"""
from __future__ import annotations

from typing import Any

from base import keys
from base.keys import Partition


def stored(client: Any) -> list[Partition]:
    """The partitions of the data as Redis records them (sync client); [] before any write."""
    return _partitions(client.get(keys.PARTITION_COUNT))


async def stored_async(redis: Any) -> list[Partition]:
    """``stored`` for a redis.asyncio client."""
    return _partitions(await redis.get(keys.PARTITION_COUNT))


def _partitions(raw: bytes | str | None) -> list[Partition]:
    return keys.partitions(int(raw)) if raw else []


def of_series(partitions: list[Partition], commodity: str) -> Partition:
    """The partition holding the commodity's series (its ticks, state, history)."""
    return partitions[keys.partition_of(commodity, len(partitions))]


def total(client: Any, name: str) -> int:
    """A counter summed over the stored partitions (sync client: tools, tests, benchmarks)."""
    pipe = client.pipeline(transaction=False)  # not MGET: on a cluster the partitions' keys are in other slots
    for partition in stored(client):
        pipe.get(getattr(partition, name))
    return sum(number(raw) for raw in pipe.execute())


async def merged_hash(redis: Any, partitions: list[Partition], name: str) -> dict:
    """The hash ``name`` (an attribute of Partition: ``latest``, ``firing``...) of every
    partition as one dict; its fields do not repeat across partitions."""
    merged: dict = {}
    for rows in await hashes(redis, partitions, name):
        merged.update(rows)
    return merged


async def hashes(redis: Any, partitions: list[Partition], name: str) -> list[dict]:
    """The hash ``name`` of each partition, in partition order (an unreadable one as empty)."""
    return [rows if isinstance(rows, dict) else {} for rows in await _each(redis, partitions, "hgetall", name)]


async def hash_values(redis: Any, partitions: list[Partition], name: str) -> list:
    return list((await merged_hash(redis, partitions, name)).values())


async def counter_sum(redis: Any, partitions: list[Partition], name: str) -> int:
    """A counter (``processed``, ``accepted``...) summed over the partitions."""
    return sum(number(raw) for raw in await _each(redis, partitions, "get", name))


async def has_field(redis: Any, partitions: list[Partition], name: str, field: str) -> bool:
    """Is ``field`` in the hash ``name`` of any partition (an alert key in ``firing``)."""
    return any(found is True or found == 1 for found in await _each(redis, partitions, "hexists", name, field))


async def _each(redis: Any, partitions: list[Partition], command: str, name: str, *args: Any) -> list:
    if not partitions:
        return []
    pipe = redis.pipeline(transaction=False)
    for partition in partitions:
        getattr(pipe, command)(getattr(partition, name), *args)
    return list(await pipe.execute(raise_on_error=False))


def number(raw: object) -> int:
    """A counter's value; a missing or unreadable one reads as zero."""
    try:
        return int(raw) if isinstance(raw, (bytes, str, int)) else 0
    except ValueError:
        return 0
