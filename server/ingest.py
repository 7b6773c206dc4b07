"""Append validated ticks to the Redis Stream ``pw:ticks``: the only write path for prices.

One Lua script per batch drops duplicates (same device, ``source`` and ``seq`` seen before) and
XADDs the rest, so the duplicate check and the append are one atomic step and one round trip.
The same step extends the audit chain (server/audit.py): each entry carries a keyed link
``HMAC(key, previous link + "\n" + tick)``. The key never reaches Redis (whoever could read
Redis' command stream could then forge links), so this process computes the links and the
script appends them only if Redis' head is still the link they were computed from; if it is
not, or some ticks turn out to be duplicates, the script writes nothing and this process
computes again. A tick counts as accepted only once the script has returned its stream id
(Redis appends it to the AOF before replying, with ``appendfsync always`` on the embedded
server).
"""
from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.concurrency import run_in_threadpool

from base.catalog import Catalog
from server.access import TokenBucket, count_refusal
from server.audit import Witness
from server.auth import Credential
from base import keys
from stores import partitioned
from server.ticks import MAX_TICK_AGE, validate_ticks

# Per device and source, sets of seen sequence numbers are capped: a device replaying older
# than this many sequence numbers back is treated as new data.
SEQ_MEMORY = 100_000
# Rounds of "the head moved, compute again" before a batch is answered 503: only another
# process appending at the same moment moves it, and it cannot win every round for long.
ATTEMPTS = 8
# Validation costs about 10 µs a tick: a batch larger than this is validated in a worker thread,
# so that the event loop goes on serving everyone else meanwhile (10,000 ticks take 0.1 s).
INLINE_VALIDATION = 500

APPEND_SCRIPT = """
local stream, head_key = KEYS[1], KEYS[2]
local head = redis.call('GET', head_key) or ''
if head ~= ARGV[3] then
  return {'moved', head}
end
local seq_prefix = ARGV[1]
local seq_memory = tonumber(ARGV[2])
local dupes = {'dupes', head}
local batch = {}
local n = 0
for i = 4, #ARGV, 4 do
  n = n + 1
  local who, seq = ARGV[i + 1], ARGV[i + 2]
  if who ~= '' then
    local mark = who .. ' ' .. seq
    if batch[mark] or redis.call('ZSCORE', seq_prefix .. who, seq) then
      dupes[#dupes + 1] = n
    end
    batch[mark] = true
  end
end
if #dupes > 2 then
  return dupes
end
local ids = {'ok'}
local touched = {}
for i = 4, #ARGV, 4 do
  local who = ARGV[i + 1]
  if who ~= '' then
    local key = seq_prefix .. who
    redis.call('ZADD', key, ARGV[i + 2], ARGV[i + 2])
    touched[key] = true
  end
  head = ARGV[i + 3]
  ids[#ids + 1] = redis.call('XADD', stream, '*', 't', ARGV[i], 'h', head)
end
for key, _ in pairs(touched) do
  redis.call('ZREMRANGEBYRANK', key, 0, -seq_memory - 1)
end
redis.call('SET', head_key, head)
redis.call('INCRBY', KEYS[3], n)
return ids
"""


class ChainBusy(RedisError):
    """Other writers kept moving the chain's head: the batch was not appended (503, retry)."""


class TickAppender:
    """Appends batches of ticks; returns each tick's stream id, or None for a duplicate.

    Batches of one process are appended one at a time (a lock), so they never race each other
    for the head; several web processes still may, and the script's check settles it.
    """

    def __init__(self, redis: Redis, witness: Witness, partitions: list[keys.Partition]):
        # redis-py types replies for either decode_responses setting; this client's are bytes.
        self.redis: Any = redis
        self.witness = witness
        self.partitions = partitions
        self._script = redis.register_script(APPEND_SCRIPT)
        self._locks = {p.number: asyncio.Lock() for p in partitions}
        self._heads: dict[int, str | None] = {p.number: witness.pins[p.number][1] if p.number in witness.pins
                                              else None for p in partitions}

    async def append(self, ticks: list[dict]) -> list[str | None]:
        """Each tick appended to its commodity's partition, in order within a partition; the
        partitions of one batch are appended side by side, each in one script call. A batch
        refused with an error (503) may have reached some partitions: ``seq`` numbers make
        its retry safe, as after any lost reply."""
        if not ticks:
            return []
        payloads = [orjson.dumps(tick) for tick in ticks]
        # Duplicates are counted per device: no device can fill another's sequence numbers.
        marks = [("", "") if tick.get("seq") is None else (f"{tick.get('device', '')}/{tick['source']}", tick["seq"])
                 for tick in ticks]
        groups: dict[keys.Partition, list[int]] = {}
        for index, tick in enumerate(ticks):
            groups.setdefault(partitioned.of_series(self.partitions, tick["commodity"]), []).append(index)
        results = await asyncio.gather(*(self._append_locked(partition, [payloads[i] for i in indexes],
                                                             [marks[i] for i in indexes])
                                         for partition, indexes in groups.items()))
        ids: list[str | None] = [None] * len(ticks)
        for indexes, appended in zip(groups.values(), results):
            for index, entry in zip(indexes, appended):
                ids[index] = entry
        return ids

    async def _append_locked(self, partition: keys.Partition, payloads: list[bytes],
                             marks: list[tuple[str, int | str]]) -> list[str | None]:
        async with self._locks[partition.number]:
            return await self._append(partition, payloads, marks)

    async def _append(self, partition: keys.Partition, payloads: list[bytes],
                      marks: list[tuple[str, int | str]]) -> list[str | None]:
        ids: list[str | None] = [None] * len(payloads)
        todo = list(range(len(payloads)))
        number = partition.number
        head = self._heads[number]
        if head is None:
            head = (await self.redis.get(partition.audit_head) or b"").decode()
        for _ in range(ATTEMPTS):
            if not todo:
                return ids
            links = self.witness.links(head, [payloads[i] for i in todo])
            args: list[bytes | str | int] = [partition.seq_prefix, SEQ_MEMORY, head]
            for i, link in zip(todo, links):
                args += [payloads[i], marks[i][0], marks[i][1], link]
            reply = await self._script(keys=[partition.ticks, partition.audit_head, partition.accepted], args=args)
            status = reply[0]
            if status == b"ok":
                appended = [entry.decode() for entry in reply[1:]]
            elif status == b"dupes":
                duplicate = {int(n) - 1 for n in reply[2:]}
                todo = [i for n, i in enumerate(todo) if n not in duplicate]
                continue
            elif reply[1].decode() == links[-1]:
                # The head is this batch's own last link: Redis applied it, and the reply was lost
                # (the client resent the script after a broken connection).
                appended = await self._own_entries(partition, links)
            else:
                head = reply[1].decode()
                await self._moved(partition, head)
                continue
            for i, entry in zip(todo, appended):
                ids[i] = entry
            self._heads[number] = links[-1]
            self.witness.settle(number, appended[-1], links[-1])
            return ids
        self._heads[number] = head
        raise ChainBusy("the audit chain's head kept moving; retry")

    async def _own_entries(self, partition: keys.Partition, links: list[str]) -> list[str]:
        newest = await self.redis.xrevrange(partition.ticks, count=len(links))
        return [entry.decode() for entry, _ in reversed(newest)]

    async def _moved(self, partition: keys.Partition, head: str) -> None:
        pinned = self.witness.pins.get(partition.number)
        if pinned is not None:
            entry = await self.redis.xrange(partition.ticks, pinned[0], pinned[0])
            anchor = await self.redis.get(partition.audit_anchor)
            self.witness.moved(partition.number, head, entry[0][1].get(b"h") if entry else None, anchor)
        self._heads[partition.number] = head


class Ingestor:
    """Validate raw tick items and append the good ones: shared by HTTP and /ws/ingest."""

    def __init__(self, redis: Redis, catalog: Catalog, max_batch: int, max_future_skew: float, witness: Witness,
                 partitions: list[keys.Partition], allowed_lateness: float = 0.0, max_tick_age: float = MAX_TICK_AGE):
        self.redis = redis
        self.max_tick_age = max_tick_age
        self.allowed_lateness = allowed_lateness
        self.partitions = partitions
        self.appender = TickAppender(redis, witness, partitions)
        self.catalog = catalog
        self.max_batch = max_batch
        self.max_future_skew = max_future_skew

    async def admit(self, items: list, credential: Credential, bucket: TokenBucket) -> tuple[int, dict, float] | None:
        """``(status, body, retry_after)`` when the batch is refused before validation, else None.

        Size first: a batch larger than the burst must hear "too large" (413), not "retry later"
        (429), since retrying can never help it. Both transports (HTTP, /ws/ingest) ask here.
        """
        if len(items) > self.max_batch:
            return 413, _refusal("batch_too_large", f"at most {self.max_batch} ticks per request"), 0.0
        wait = bucket.take(len(items))
        if not wait:
            return None
        await count_refusal(self.redis, "rate_limited")
        return 429, _refusal("rate_limited", f"{credential.name} is over its rate; retry in {wait:.1f}s"), wait

    async def ingest(self, items: list, credential: Credential, all_or_nothing: bool = False) -> tuple[int, dict]:
        """Returns (HTTP status, body): 202 when all were accepted, 422 when any was refused,
        403 when every tick was for a market the credential may not report for. The caller has
        admitted the batch first (``admit``)."""
        args = (items, self.catalog, time.time(), self.max_future_skew, self.max_tick_age)
        validated = (validate_ticks(*args) if len(items) <= INLINE_VALIDATION
                     else await run_in_threadpool(validate_ticks, *args))
        accepted: list[tuple[int, dict]] = []
        for index, tick in validated.ticks:
            if not credential.may_report(tick["market"]):
                validated.errors.append({"index": index, "field": "market", "reason": "market_not_allowed",
                                         "detail": f"{credential.name} may not report for {tick['market']}"})
            elif tick["source"] is not None and not credential.may_use_source(tick["source"]):
                validated.errors.append({"index": index, "field": "source", "reason": "source_not_allowed",
                                         "detail": f"{credential.name} may not name the source {tick['source']}"})
            else:
                accepted.append((index, {**tick, "device": credential.name}))
        if validated.errors and not accepted and all(
                e["reason"] == "market_not_allowed" for e in validated.errors):
            return 403, {"accepted": 0, "ids": [], "duplicates": [], "errors": validated.errors}
        if validated.errors and all_or_nothing:
            accepted = []
        late = await self._late(accepted)
        ids = await self.appender.append([tick for _, tick in accepted])
        body = {
            "accepted": sum(1 for i in ids if i),
            "ids": [i for i in ids if i],
            "duplicates": [index for (index, _), i in zip(accepted, ids) if i is None],
            "late": [index for (index, _), i in zip(accepted, ids) if i and index in late],
        }
        if validated.errors:
            body["errors"] = validated.errors
            if all_or_nothing:
                body["detail"] = "all_or_nothing: nothing was accepted"
            return 422, body
        return 202, body


    async def _late(self, accepted: list[tuple[int, dict]]) -> set[int]:
        """Indexes of ticks older than their series' newest time the engine has committed
        (its partition's ``latest:ts``) by more than the allowed lateness: history, which the
        engine stores but does not score (its verdict says ``late`` too, and is the last word:
        ticks still in flight are not known here)."""
        if not accepted:
            return set()
        by_partition: dict[keys.Partition, set[str]] = {}
        for _, tick in accepted:
            by_partition.setdefault(partitioned.of_series(self.partitions, tick["commodity"]), set()).add(
                keys.series_key(tick["commodity"], tick["market"]))
        newest: dict[str, bytes | str | None] = {}
        for partition, wanted in by_partition.items():
            series = sorted(wanted)
            newest.update(zip(series, await self.redis.hmget(partition.latest_ts, series)))
        return {index for index, tick in accepted
                if (ts := newest[keys.series_key(tick["commodity"], tick["market"])]) is not None
                and tick["ts"] < float(ts) - self.allowed_lateness}


def _refusal(reason: str, detail: str) -> dict:
    return {"errors": [{"index": None, "field": "body", "reason": reason, "detail": detail}]}
