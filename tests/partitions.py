"""What tests read of the data kept per partition (base/keys.py ``Partition``), as one system:
counters summed, hashes merged, streams joined, and the partition of a commodity, with the P
that Redis records (the web process fixes it at startup; ``fix`` does so without one)."""
from __future__ import annotations

from typing import Any

import orjson

from base import keys
from base.keys import Partition
from stores import partitioned
from stores.partitions import partition_count


def fix(client: Any, count: int) -> list[Partition]:
    """The partitions of a Redis no web process has written to yet: ``count`` of them."""
    return keys.partitions(partition_count(client, count))


def stored(client: Any) -> list[Partition]:
    return partitioned.stored(client)


def of(client: Any, commodity: str) -> Partition:
    """The partition of the commodity's series."""
    return partitioned.of_series(stored(client), commodity)


def total(client: Any, name: str) -> int:
    """A counter (``processed``, ``accepted``, ``deadlettered``...) over every partition."""
    return partitioned.total(client, name)


def merged(client: Any, name: str) -> dict:
    """A hash (``latest``, ``firing``, ``health``...) of every partition as one."""
    found: dict = {}
    for partition in stored(client):
        found.update(client.hgetall(getattr(partition, name)))
    return found


def counts(client: Any, name: str) -> dict[str, int]:
    """A hash of counters (``errors``) summed over the partitions."""
    summed: dict[str, int] = {}
    for partition in stored(client):
        for field, value in client.hgetall(getattr(partition, name)).items():
            summed[field.decode()] = summed.get(field.decode(), 0) + int(value)
    return summed


def length(client: Any, name: str) -> int:
    """Entries in a stream (``ticks``, ``alerts``...) of every partition."""
    return sum(client.xlen(getattr(partition, name)) for partition in stored(client))


def entries(client: Any, name: str) -> list[tuple[bytes, dict]]:
    """The entries of a stream of every partition, ordered by their ids."""
    found = [entry for partition in stored(client) for entry in client.xrange(getattr(partition, name))]
    return sorted(found, key=lambda entry: tuple(int(part) for part in entry[0].split(b"-")))


def alert_events(client: Any) -> list[dict]:
    """Every alert event in the partitions' alert streams, oldest first."""
    return [orjson.loads(fields[b"a"]) for _, fields in entries(client, "alerts")]


# The worker tests' Redis has two partitions (``fix(client, 2)``), and their alert events go where
# an engine would put cabai-rawit-merah's: the dispatcher must find them in either.
WORKER_PARTITIONS = 2
ALERTS = keys.Partition(keys.partition_of("cabai-rawit-merah", WORKER_PARTITIONS)).alerts
