"""Which engine owns which partition: leases in Redis that the owner renews.

A partition's lease (``pw:{pN}:lease``) holds its owner's id and expires unless renewed, so a
partition whose engine died is free again within ``PASARWATCH_ENGINE_LEASE`` seconds. Every
engine also stamps itself in ``pw:engines`` on each renewal; from the live ones it works out
its fair share (P divided among them, the first P mod N engines in id order taking one more),
takes free partitions up to that share and hands back what it holds beyond it, so an engine
that joins gets work and one that leaves gives its work back at once instead of letting it
expire.

Owning is not trusted on its own: every commit of a partition's engine watches the lease key
(``Lease.fence``) and fails if the lease moved, so an engine that stalled past its lease (a
long pause, a lost network) cannot write over the new owner's work.
"""
from __future__ import annotations

import logging
import os
import socket
import uuid
from typing import Any

from base import keys
from base.redis_url import is_cluster

log = logging.getLogger("pasarwatch.leases")

# Renew the lease only if we still hold it (one key: one slot on a cluster).
RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
# Take a free lease, or one this process already holds (after it reconnected under the same id).
ACQUIRE = """
local owner = redis.call('GET', KEYS[1])
if owner == false or owner == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class LeaseLost(Exception):
    """The partition's lease is no longer this engine's: its work there stops."""


def engine_id() -> str:
    """A name unique to this process, readable in /readyz and /metrics."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def fair_share(me: str, live: list[str], partitions: int) -> int:
    """How many partitions ``me`` should own among ``live`` engines.

    >>> [fair_share(e, ["a", "b", "c"], 8) for e in ("a", "b", "c")]
    [3, 3, 2]
    >>> fair_share("a", ["a"], 8), fair_share("z", ["a", "b"], 1)
    (8, 0)
    """
    engines = sorted(set(live) | {me})
    base, extra = divmod(partitions, len(engines))
    return base + (1 if engines.index(me) < extra else 0)


class Leases:
    """One engine process's leases (sync redis client)."""

    def __init__(self, client: Any, me: str, partitions: list[keys.Partition], lease_seconds: float):
        self.redis = client
        self.me = me
        self.partitions = partitions
        self.lease_ms = int(lease_seconds * 1000)
        self.lease_seconds = lease_seconds
        self.owned: dict[int, keys.Partition] = {}
        self._renew = client.register_script(RENEW)
        self._release = client.register_script(RELEASE)
        self._acquire = client.register_script(ACQUIRE)

    def live_engines(self, now: float) -> list[str]:
        return [member.decode() for member in
                self.redis.zrangebyscore(keys.ENGINES, now - self.lease_seconds, "+inf")]

    def balance(self, now: float) -> tuple[list[keys.Partition], list[keys.Partition]]:
        """Renew what is held, take or hand back partitions toward the fair share.

        Returns ``(gained, lost)``: partitions this engine must start (from their checkpoint)
        and ones it must drop (its lease expired or was taken, or it handed them back)."""
        lost = self.renew(now)
        self.redis.zremrangebyscore(keys.ENGINES, "-inf", now - 10 * self.lease_seconds)  # long gone
        share = fair_share(self.me, self.live_engines(now), len(self.partitions))
        gained: list[keys.Partition] = []
        for partition in self.partitions:
            if len(self.owned) >= share:
                break
            if partition.number not in self.owned and \
                    self._acquire(keys=[partition.lease], args=[self.me, self.lease_ms]):
                self.owned[partition.number] = partition
                gained.append(partition)
        handed = []
        while len(self.owned) > share:  # batches commit as they go: nothing is in flight to finish
            partition = self.owned[max(self.owned)]
            self.release(partition)
            handed.append(partition)
            log.info("handed partition %d back (fair share %d)", partition.number, share)
        return gained, lost + handed

    def renew(self, now: float) -> list[keys.Partition]:
        """Renew every lease held (and this engine's stamp); returns the ones that were lost."""
        self.redis.zadd(keys.ENGINES, {self.me: now})
        held = list(self.owned.values())
        if is_cluster(self.redis):
            # A cluster pipeline does not load a script a node lacks (a restarted node has none):
            # one call per lease, each loading its script where needed.
            renewed = [self._renew(keys=[p.lease], args=[self.me, self.lease_ms]) for p in held]
        else:
            pipe = self.redis.pipeline(transaction=False)
            for partition in held:
                self._renew(keys=[partition.lease], args=[self.me, self.lease_ms], client=pipe)
            renewed = pipe.execute()
        lost = [partition for partition, kept in zip(held, renewed) if not kept]
        for partition in lost:
            log.warning("lost the lease of partition %d", partition.number)
            del self.owned[partition.number]
        return lost

    def release(self, partition: keys.Partition) -> None:
        """Give a partition back (after its last commit), so another engine may take it now."""
        self.owned.pop(partition.number, None)
        self._release(keys=[partition.lease], args=[self.me])

    def leave(self) -> None:
        for partition in list(self.owned.values()):
            self.release(partition)
        self.redis.zrem(keys.ENGINES, self.me)

    def fence(self, pipe: Any, partition: keys.Partition) -> None:
        """Start a transaction on ``pipe`` that fails unless this engine still holds the lease:
        WATCH the lease, check it, MULTI. ``execute`` then raises WatchError if it moved."""
        pipe.watch(partition.lease)
        owner = pipe.get(partition.lease)
        if owner is None or owner.decode() != self.me:
            pipe.reset()
            raise LeaseLost(f"partition {partition.number} is owned by {owner!r}")
        pipe.multi()
