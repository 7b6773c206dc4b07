"""From the alert stream to RQ jobs: who hears of each alert, gathered per chat into digests.

The engine appends alert events to the stream ``pw:alerts`` and calls ``dispatch_alerts``
after each batch commit. It reads the stream through its own consumer group ``notify``, so a
restart resumes where it stopped, and for every (alert, chat) pair it does, in one Redis
transaction with the XACK of the entry:

- set the pair's marker (``pw:notif:seen:{pair}``); a pair already marked is skipped, so an
  alert re-dispatched after a crash is never queued twice;
- add the alert to the chat's open digest if one is still gathering (``pw:notif:open:{chat}``),
  or open a new notification and schedule its RQ job (id ``notif-{pair}``, derived from the
  alert's key, state and id and the chat) for the end of the group window.

The transaction WATCHes the markers, the open digests and their records, so it either
happens whole or is retried; a worker sealing a digest (``workers.delivery``) makes a
concurrent append retry into a new digest.

``recover_stalled`` is the safety net for crashed workers: a pending notification whose
deadline passed while no worker holds its lease gets a fresh job.
"""
from __future__ import annotations

import hashlib
import logging
import math
import time
from datetime import datetime, timezone
from typing import Any

import orjson
import redis
from redis.exceptions import ResponseError, WatchError
from rq import Queue, Retry
from rq.job import Job

from workers import notifications as store
from workers.settings import NotifySettings, get_settings
from workers.subscriptions import topics_for

log = logging.getLogger("pasarwatch.notify")

ALERTS = "pw:alerts"
GROUP = "notify"
CONSUMER = "dispatcher"
QUEUE = "notifications"
JOB_FUNC = "workers.delivery.deliver"
JOB_TIMEOUT = 300
RESULT_TTL = 86400
READ_COUNT = 200
SWEEP_KEY = "pw:notif:sweep"

# A notification is stalled when its deadline passed, it is still pending, no worker holds its
# lease and its latest job is not waiting in the queue (a backlog is not a crash: another job
# would only queue behind it). Claiming pushes the deadline on, so one sweep claims it once.
CLAIM_STALLED = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) > tonumber(ARGV[2]) then return 0 end
if redis.call('HGET', KEYS[3], 'state') ~= 'pending' then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local job = redis.call('HGET', KEYS[3], 'job')
if job and redis.call('HGET', ARGV[4] .. job, 'status') == 'queued' then return 0 end
return redis.call('HINCRBY', KEYS[3], 'recoveries', 1)
"""


def dispatch_alerts(redis: redis.Redis, catalog: Any, settings: NotifySettings | None = None) -> int:
    """Queue notifications for new alert events; returns how many (alert, chat) pairs were queued."""
    settings = settings or get_settings()
    queue = Queue(QUEUE, connection=redis)
    queued = 0
    # "0" first: entries read before a crash but never acknowledged; then new ones.
    for start in ("0", ">"):
        while True:
            entries = _read(redis, start)
            if not entries:
                break
            nothing_to_do = []
            for entry_id, fields in entries:
                alert = _read_alert(entry_id, fields)
                if alert is None or _tells_nobody(alert):
                    nothing_to_do.append(entry_id)
                else:
                    alert.setdefault("id", entry_id.decode())
                    _hold_for_later(queue, alert)
                    queued += stage_alert(redis, queue, catalog, alert, settings, entry_id)
            if nothing_to_do:  # unreadable, muted, inhibited or unrouted: one XACK for all of them
                redis.xack(ALERTS, GROUP, *nothing_to_do)
    maybe_recover(redis, settings)
    return queued


def _read(client: redis.Redis, start: str) -> list:
    # The engine calls in a loop: create the group only when Redis says it is missing.
    try:
        reply = client.xreadgroup(GROUP, CONSUMER, {ALERTS: start}, count=READ_COUNT)
    except ResponseError as exc:
        if "NOGROUP" not in str(exc):
            raise
        ensure_group(client)
        reply = client.xreadgroup(GROUP, CONSUMER, {ALERTS: start}, count=READ_COUNT)
    return reply[0][1] if reply else []


def ensure_group(client: redis.Redis) -> None:
    try:
        client.xgroup_create(ALERTS, GROUP, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def recipients(client: redis.Redis, alert: dict, catalog: Any) -> list[int]:
    """Chats that hear of ``alert``: its rule's fixed chats, and subscribers unless routed off."""
    routes = alert.get("routes") or {}
    chats = {int(chat) for chat in routes.get("telegram") or []}
    if routes.get("topics", True):
        commodity = str(alert.get("commodity") or "")
        province = str(alert.get("province") or "")
        market = catalog.markets.get(alert.get("market")) if catalog is not None else None
        if not province and market is not None:
            province = market.province
        chats.update(int(member) for member in client.sunion(topics_for(commodity, province)))
    return sorted(chats)


def enqueue_delivery(queue: Queue, nid: str, settings: NotifySettings, at: float | None = None,
                     attempt: str = "", pipeline: Any = None) -> Job:
    """Queue (or schedule for ``at``) the job delivering notification ``nid``."""
    options: dict[str, Any] = {
        "job_id": store.job_id(nid, attempt), "job_timeout": JOB_TIMEOUT,
        "result_ttl": RESULT_TTL, "failure_ttl": store.RETENTION,
        "description": f"Telegram notification {nid}", "pipeline": pipeline,
    }
    if settings.retry_intervals:
        options["retry"] = Retry(max=len(settings.retry_intervals), interval=list(settings.retry_intervals))
    if at is None or at <= time.time():
        job = queue.enqueue(JOB_FUNC, nid, **options)
    else:
        # RQ keeps whole seconds and would round down: round up, never run before `at`.
        job = queue.enqueue_at(datetime.fromtimestamp(math.ceil(at), tz=timezone.utc), JOB_FUNC, nid, **options)
    (pipeline if pipeline is not None else queue.connection).hset(store.record_key(nid), "job", job.id)
    return job


_last_sweep_try = 0.0


def maybe_recover(client: redis.Redis, settings: NotifySettings) -> int:
    """``recover_stalled`` at most once per sweep interval across all processes."""
    global _last_sweep_try
    # Checked locally first: the engine calls dispatch_alerts after every batch.
    if time.monotonic() - _last_sweep_try < settings.sweep_interval:
        return 0
    _last_sweep_try = time.monotonic()
    if not client.set(SWEEP_KEY, 1, nx=True, px=max(1, int(settings.sweep_interval * 1000))):
        return 0
    return recover_stalled(client, settings)


def recover_stalled(client: redis.Redis, settings: NotifySettings, now: float | None = None) -> int:
    """Give a fresh job to each pending notification past its deadline with no live lease."""
    now = time.time() if now is None else now
    claim = client.register_script(CLAIM_STALLED)
    queue = Queue(QUEUE, connection=client)
    recovered = 0
    for raw in client.zrangebyscore(store.DUE, "-inf", now, start=0, num=100):
        nid = raw.decode()
        count = claim(keys=[store.DUE, store.lease_key(nid), store.record_key(nid)],
                      args=[nid, now, now + settings.lease + store.SCHEDULER_SLACK,
                            Job.redis_job_namespace_prefix])
        if count:
            log.warning("notification %s stalled (its worker died?): queued again", nid)
            enqueue_delivery(queue, nid, settings, attempt=f"x{count}")
            recovered += 1
    return recovered


# --- one stream entry ---------------------------------------------------------------------------

def _read_alert(entry_id: bytes, fields: dict | None) -> dict | None:
    """The alert event of a stream entry, or None (logged) when it cannot be read."""
    try:
        alert = orjson.loads(fields[b"a"])
        if not isinstance(alert, dict):
            raise ValueError("not an object")
    except (TypeError, KeyError, ValueError) as exc:  # trimmed from the stream, or malformed
        log.error("alert %s cannot be read (%s): skipped", entry_id.decode(), exc)
        return None
    return alert


def _tells_nobody(alert: dict) -> bool:
    """True for an alert event routed to no chat, no subscribers and no held receiver."""
    routes = alert.get("routes")
    if not isinstance(routes, dict):
        return False
    return not routes.get("telegram") and routes.get("topics") is False and not routes.get("receivers")


def stage_alert(client: redis.Redis, queue: Queue, catalog: Any, alert: dict, settings: NotifySettings,
                entry_id: bytes | None = None) -> int:
    """Queue the alert for its recipients now (and ack its stream entry in the same step)."""
    chats = recipients(client, alert, catalog)
    blob = orjson.dumps(alert)
    pairs = [(chat, store.pair_id(alert, chat)) for chat in chats]
    with client.pipeline() as pipe:
        while True:
            try:
                queued = _stage(pipe, queue, blob, pairs, settings) if pairs else 0
                if not pairs:
                    pipe.multi()
                if entry_id is not None:
                    pipe.xack(ALERTS, GROUP, entry_id)
                pipe.execute()
                return queued
            except WatchError:
                continue


def _hold_for_later(queue: Queue, alert: dict) -> None:
    """Receivers held by a route's quiet hours get the alert when their window opens.

    One scheduled job per (alert, receiver), with an id derived from both, so a re-dispatch
    after a crash schedules nothing twice; the pair markers keep a chat from hearing it twice.
    """
    now = time.time()
    for receiver in (alert.get("routes") or {}).get("receivers") or []:
        deliver_at = receiver.get("deliver_at")
        if not deliver_at or deliver_at <= now:
            continue
        held = {**alert, "routes": {"telegram": receiver.get("telegram") or [],
                                     "topics": bool(receiver.get("topics"))}}
        digest = hashlib.sha1(f"{alert['id']}|{receiver.get('name')}|{receiver.get('route')}".encode()).hexdigest()
        queue.enqueue_at(datetime.fromtimestamp(math.ceil(deliver_at), tz=timezone.utc), release_held,
                         orjson.dumps(held), job_id=f"held-{digest[:24]}", result_ttl=RESULT_TTL,
                         description=f"held notification of {alert.get('key')} for {receiver.get('name')}")


def release_held(blob: bytes) -> int:
    """RQ job: a held alert's quiet hours are over; queue it for that receiver's chats now."""
    from rq import get_current_job

    from rules.catalog import load_catalog

    settings = get_settings()
    client = get_current_job().connection
    return stage_alert(client, Queue(QUEUE, connection=client), load_catalog(settings.catalog_dir),
                       orjson.loads(blob), settings)


def _stage(pipe: Any, queue: Queue, blob: bytes, pairs: list[tuple[int, str]],
           settings: NotifySettings) -> int:
    markers = [store.seen_key(pair) for _, pair in pairs]
    opens = [store.open_key(chat) for chat, _ in pairs]
    pipe.watch(*markers, *opens)
    seen = pipe.mget(markers)
    open_ids = [value.decode() if value else None for value in pipe.mget(opens)]
    live = sorted({nid for nid in open_ids if nid})
    if live:
        pipe.watch(*(store.record_key(nid) for nid in live))
    sealed = {nid: pipe.hget(store.record_key(nid), "sealed") for nid in live}
    now = time.time()
    pipe.multi()
    queued = 0
    for (chat, pair), was_seen, open_id in zip(pairs, seen, open_ids):
        if was_seen:
            continue
        if open_id and sealed.get(open_id) == b"0":
            store.queue_append(pipe, open_id, blob)
            pipe.set(store.seen_key(pair), open_id, ex=store.RETENTION)
        else:
            store.queue_create(pipe, pair, chat, blob, now, settings.group_window, settings.lease)
            pipe.set(store.seen_key(pair), pair, ex=store.RETENTION)
            enqueue_delivery(queue, pair, settings, at=now + settings.group_window, pipeline=pipe)
        queued += 1
    return queued
