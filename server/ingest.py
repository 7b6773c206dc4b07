"""Append validated ticks to the Redis Stream ``pw:ticks``: the only write path for prices.

One Lua script per batch drops duplicates (same ``source`` and ``seq`` seen before) and XADDs
the rest, so the duplicate check and the append are one atomic step and one round trip. The
same step extends the audit chain: each entry carries ``h = sha1(previous h + "\n" + tick)``
(SHA-1 because it is the hash Redis scripts have), so an edited, removed or reordered tick
breaks the chain (see server/audit.py). A tick
counts as accepted only once the script has returned its stream id (Redis appends it to the
AOF before replying, with ``appendfsync always`` on the embedded server).
"""
from __future__ import annotations

import time

import orjson
from redis.asyncio import Redis
from starlette.concurrency import run_in_threadpool

from rules.catalog import Catalog
from server.access import TokenBucket, count_refusal
from server.auth import Credential
from server import keys
from server.ticks import validate_ticks

# Per-source sets of seen sequence numbers are capped: a device replaying older than this many
# sequence numbers back is treated as new data.
SEQ_MEMORY = 100_000
# Validation costs about 10 µs a tick: a batch larger than this is validated in a worker thread,
# so that the event loop goes on serving everyone else meanwhile (10,000 ticks take 0.1 s).
INLINE_VALIDATION = 500

APPEND_SCRIPT = """
local stream = KEYS[1]
local head_key = KEYS[2]
local head = redis.call('GET', head_key) or ''
local seq_prefix = ARGV[1]
local seq_memory = tonumber(ARGV[2])
local ids = {}
local accepted = 0
local touched = {}
local i = 3
while i <= #ARGV do
  local payload, source, seq = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local fresh = 1
  if source ~= '' and seq ~= '' then
    local key = seq_prefix .. source
    fresh = redis.call('ZADD', key, 'NX', seq, seq)
    touched[key] = true
  end
  if fresh == 1 then
    head = redis.sha1hex(head .. '\\n' .. payload)
    accepted = accepted + 1
    ids[#ids + 1] = redis.call('XADD', stream, '*', 't', payload, 'h', head)
  else
    ids[#ids + 1] = ''
  end
  i = i + 3
end
for key, _ in pairs(touched) do
  redis.call('ZREMRANGEBYRANK', key, 0, -seq_memory - 1)
end
redis.call('SET', head_key, head)
redis.call('INCRBY', KEYS[3], accepted)
return ids
"""


class TickAppender:
    """Appends batches of ticks; returns each tick's stream id, or None for a duplicate."""

    def __init__(self, redis: Redis):
        self._script = redis.register_script(APPEND_SCRIPT)

    async def append(self, ticks: list[dict]) -> list[str | None]:
        if not ticks:
            return []
        args: list[bytes | str | int] = [keys.SEQ_PREFIX, SEQ_MEMORY]
        for tick in ticks:
            seq = tick.get("seq")
            args += [orjson.dumps(tick), tick.get("source") or "", "" if seq is None else seq]
        ids = await self._script(keys=[keys.TICKS, keys.AUDIT_HEAD, keys.ACCEPTED], args=args)
        return [(i.decode() if isinstance(i, bytes) else i) or None for i in ids]


class Ingestor:
    """Validate raw tick items and append the good ones: shared by HTTP and /ws/ingest."""

    def __init__(self, redis: Redis, catalog: Catalog, max_batch: int, max_future_skew: float):
        self.redis = redis
        self.appender = TickAppender(redis)
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
        args = (items, self.catalog, time.time(), self.max_future_skew)
        validated = (validate_ticks(*args) if len(items) <= INLINE_VALIDATION
                     else await run_in_threadpool(validate_ticks, *args))
        accepted: list[tuple[int, dict]] = []
        for index, tick in validated.ticks:
            if credential.may_report(tick["market"]):
                accepted.append((index, {**tick, "device": credential.name}))
            else:
                validated.errors.append({"index": index, "field": "market", "reason": "market_not_allowed",
                                         "detail": f"{credential.name} may not report for {tick['market']}"})
        if validated.errors and not accepted and all(
                e["reason"] == "market_not_allowed" for e in validated.errors):
            return 403, {"accepted": 0, "ids": [], "duplicates": [], "errors": validated.errors}
        if validated.errors and all_or_nothing:
            accepted = []
        ids = await self.appender.append([tick for _, tick in accepted])
        body = {
            "accepted": sum(1 for i in ids if i),
            "ids": [i for i in ids if i],
            "duplicates": [index for (index, _), i in zip(accepted, ids) if i is None],
        }
        if validated.errors:
            body["errors"] = validated.errors
            if all_or_nothing:
                body["detail"] = "all_or_nothing: nothing was accepted"
            return 422, body
        return 202, body


def _refusal(reason: str, detail: str) -> dict:
    return {"errors": [{"index": None, "field": "body", "reason": reason, "detail": detail}]}
