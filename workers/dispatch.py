"""From the alert stream to RQ jobs: alerts gathered into their receivers' groups, and groups
flushed into notifications when Alertmanager's timers say so (``workers.groups``).

The engines append alert events to their partitions' streams ``alerts`` (``pw:{pN}:alerts``)
in the data Redis and call ``dispatch_alerts`` after each batch (at least once a second). It
reads every partition's stream through its own consumer group ``notify`` there (one
XREADGROUP for all of them), so a restart resumes where it stopped; an event's ``id`` is
unique across partitions. Each event goes into the group of each receiver its routes name
(``routes.receivers``: group key, ``group_wait``, ``group_interval``, ``repeat_interval`` from
``rules/routing.yaml``) in the notifications' Redis (RQ_REDIS_URL, by default the data Redis),
in one transaction with a marker; the entries are acknowledged in the data Redis after that,
so an event re-read after a crash in between finds its marker and is never taken twice. The
two may be different servers (a Redis Cluster holds the data, and RQ cannot run on one), so
no transaction spans both. Then every group that is due is flushed: one notification per
chat, whose RQ job (id ``notif-{id}``) delivers it at once. A receiver held by quiet hours
gets the event when its window opens (a scheduled job, ``release_held``). An event that tells
nobody (silenced, inhibited, awaiting confirmation) takes its alert out of the groups that hold
it, unannounced.

``recover_stalled`` is the safety net for crashed workers: a pending notification whose
deadline passed while no worker holds its lease gets a fresh job; the worker's sweep also
flushes due groups while the engine is down.
"""
from __future__ import annotations

import functools
import hashlib
import logging
import time
from typing import Any

import orjson
import redis
from redis.exceptions import ResponseError
from rq import Queue
from rq.job import Job

from base import keys
from base.keys import Partition
from base.redis_url import data_client, is_cluster, separate_servers
from stores import partitioned
from workers import groups
from workers import notifications as store
from workers.groups import Target, recipients
from workers.jobs import QUEUE, RESULT_TTL, at_datetime, enqueue_delivery
from workers.settings import NotifySettings, get_settings

__all__ = ["GROUP", "CONSUMER", "QUEUE", "dispatch_alerts", "enqueue_delivery", "recipients",
           "recover_stalled", "maybe_recover", "release_held"]

log = logging.getLogger("pasarwatch.notify")

GROUP = "notify"
CONSUMER = "dispatcher"
READ_COUNT = 200
SWEEP_KEY = keys.NOTIF_SWEEP

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


def dispatch_alerts(data: Any, catalog: Any, settings: NotifySettings | None = None,
                    now: float | None = None, partitions: list[Partition] | None = None,
                    notify: redis.Redis | None = None) -> int:
    """Take new alert events of every partition into their groups and flush the groups that are
    due; returns how many (alert, chat) pairs the new events reach now. ``data``: the Redis (or
    cluster client) of the alert streams; ``notify``: the notifications' Redis, where RQ runs
    (default: ``data``). ``partitions``: all of them (read from Redis if not given)."""
    settings = settings or get_settings()
    notify = data if notify is None else notify
    partitions = partitioned.stored(data) if partitions is None else partitions
    queue = Queue(QUEUE, connection=notify)
    staged = 0
    # "0" first: entries read before a crash but never acknowledged; then new ones.
    for start in ("0", ">"):
        while True:
            streams = _read(data, partitions, start)
            if not streams:
                break
            for stream, entries in streams:
                staged += _take(notify, catalog, settings, queue, entries, now)
                # Only once every entry is taken: one re-read after a crash finds its marker.
                data.xack(stream, GROUP, *(entry_id for entry_id, _ in entries))
    # Silences are the data's (the API writes them there): a flush reads them from ``data``.
    groups.flush_due(notify, catalog, settings, now, silences=data)
    maybe_recover(notify, settings, data)
    return staged


def _take(notify: redis.Redis, catalog: Any, settings: NotifySettings, queue: Queue, entries: list,
          now: float | None) -> int:
    """The entries read from one partition's alert stream into their groups in ``notify``."""
    staged = 0
    for entry_id, fields in entries:
        alert = _read_alert(entry_id, fields)
        if alert is None:
            continue
        alert.setdefault("id", entry_id.decode())
        if not _tells_nobody(alert):
            _hold_for_later(queue, alert)
            staged += stage_alert(notify, catalog, alert, settings, now=now)
        elif groups.holds(notify, str(alert.get("key"))):
            groups.stage(notify, alert, [], groups.marker_of(alert), _now(now), mute=True)
    return staged


def _now(now: float | None) -> float:
    return time.time() if now is None else now


def _read(client: redis.Redis, partitions: list[Partition], start: str) -> list:
    """``[(stream, entries)]`` of the partitions with entries to read: one XREADGROUP for all, or,
    on a Redis Cluster (which refuses a command across slots), one per partition."""
    if is_cluster(client):
        return [found for partition in partitions for found in _read_streams(client, [partition], start)]
    return _read_streams(client, partitions, start)


def _read_streams(client: redis.Redis, partitions: list[Partition], start: str) -> list:
    if not partitions:
        return []
    wanted: dict[Any, Any] = {partition.alerts: start for partition in partitions}
    # The engine calls in a loop: create the groups only when Redis says one is missing.
    reply: Any  # redis-py types replies for either decode_responses; this client's are bytes
    try:
        reply = client.xreadgroup(GROUP, CONSUMER, wanted, count=READ_COUNT)
    except ResponseError as exc:
        if "NOGROUP" not in str(exc):
            raise
        ensure_groups(client, partitions)
        reply = client.xreadgroup(GROUP, CONSUMER, wanted, count=READ_COUNT)
    return [(stream, entries) for stream, entries in reply or [] if entries]


def ensure_groups(client: redis.Redis, partitions: list[Partition]) -> None:
    for partition in partitions:
        try:
            client.xgroup_create(partition.alerts, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise


_last_sweep_try = 0.0


def maybe_recover(client: redis.Redis, settings: NotifySettings, data: Any = None) -> int:
    """``recover_stalled`` and ``flush_groups`` at most once per sweep interval across all
    processes; returns how many notifications were queued. ``data``: the Redis of the silences
    (default: ``client``)."""
    global _last_sweep_try
    # Checked locally first: the engine calls dispatch_alerts after every batch.
    if time.monotonic() - _last_sweep_try < settings.sweep_interval:
        return 0
    _last_sweep_try = time.monotonic()
    if not client.set(SWEEP_KEY, 1, nx=True, px=max(1, int(settings.sweep_interval * 1000))):
        return 0
    return recover_stalled(client, settings) + flush_groups(client, settings, data)


def flush_groups(client: redis.Redis, settings: NotifySettings, data: Any = None) -> int:
    """Flush the groups that are due: what the engine's dispatcher does each call, done by the
    worker's sweep too, so that timers still fire while the engine is down. ``data``: the Redis
    of the silences (default: ``client``)."""
    from workers.delivery import worker_catalog

    return groups.flush_due(client, worker_catalog(settings.catalog_dir), settings, silences=data)


def recover_stalled(client: redis.Redis, settings: NotifySettings, now: float | None = None) -> int:
    """Give a fresh job to each pending notification past its deadline with no live lease."""
    now = time.time() if now is None else now
    claim = client.register_script(CLAIM_STALLED)
    queue = Queue(QUEUE, connection=client)
    recovered = 0
    due: Any = client.zrangebyscore(store.DUE, "-inf", now, start=0, num=100)  # bytes ids
    for raw in due:
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
        alert = orjson.loads((fields or {})[b"a"])
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


def targets_now(alert: dict, settings: NotifySettings, now: float) -> list[Target]:
    """The groups the alert goes into now: its receivers not held by quiet hours."""
    routes = alert.get("routes") or {}
    receivers = routes.get("receivers")
    if not receivers:
        return [Target.legacy(routes, settings.group_window)]
    return [Target.of(r, settings.group_window) for r in receivers
            if isinstance(r, dict) and (not r.get("deliver_at") or r["deliver_at"] <= now)]


def stage_alert(client: redis.Redis, catalog: Any, alert: dict, settings: NotifySettings,
                scope: str = "", now: float | None = None) -> int:
    """Take the alert into its groups now; returns how many chats it reaches now, 0 if it was
    taken before."""
    now = _now(now)
    targets = targets_now(alert, settings, now)
    if not groups.stage(client, alert, targets, groups.marker_of(alert, scope), now):
        return 0
    return len({chat for t in targets for chat in recipients(client, t.narrow(alert), catalog)})


def _hold_for_later(queue: Queue, alert: dict) -> None:
    """Receivers held by a route's quiet hours get the alert when their window opens.

    One scheduled job per (alert, receiver), with an id derived from both, so a re-dispatch
    after a crash schedules nothing twice; the marker of (alert, receiver) keeps it from being
    taken into the group twice.
    """
    now = time.time()
    for receiver in (alert.get("routes") or {}).get("receivers") or []:
        deliver_at = receiver.get("deliver_at")
        if not deliver_at or deliver_at <= now:
            continue
        held = {**alert, "routes": {"telegram": [], "topics": False,
                                     "receivers": [{**receiver, "deliver_at": None}]}}
        digest = hashlib.sha1(_scope(alert, receiver).encode()).hexdigest()
        queue.enqueue_at(at_datetime(deliver_at), release_held,
                         orjson.dumps(held), job_id=f"held-{digest[:24]}", result_ttl=RESULT_TTL,
                         description=f"held notification of {alert.get('key')} for {receiver.get('name')}")


def _scope(alert: dict, receiver: dict) -> str:
    return f"{alert['id']}|{receiver.get('name')}|{receiver.get('route')}"


@functools.cache
def data_redis(settings: NotifySettings) -> Any:
    """The worker's client of the data Redis, where silences are (None: the notifications' Redis
    is the data Redis, or no REDIS_URL is known)."""
    if not settings.data_url or not separate_servers(settings.redis_url, settings.data_url, settings.data_cluster):
        return None
    return data_client(settings.data_url, settings.data_cluster, socket_timeout=5, socket_connect_timeout=2)


def release_held(blob: bytes) -> int:
    """RQ job: a held alert's quiet hours are over; into its receiver's group it goes, and the
    group is flushed now if it is due (else the dispatcher flushes it when it is)."""
    from rq import get_current_job

    from workers.delivery import worker_catalog

    settings = get_settings()
    job = get_current_job()
    assert job is not None, "release_held runs as an RQ job"
    client = job.connection
    catalog = worker_catalog(settings.catalog_dir)
    alert = orjson.loads(blob)
    staged = stage_alert(client, catalog, alert, settings, scope=_scope(alert, alert["routes"]["receivers"][0]))
    groups.flush_due(client, catalog, settings, silences=data_redis(settings))
    return staged
