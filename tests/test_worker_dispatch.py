"""From the partitions' alert streams to RQ jobs (workers/dispatch.py), against a real Redis; no worker runs here."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import orjson
import pytest
import redis
from rq import Queue
from rq.job import Job
from rq.registry import ScheduledJobRegistry

from base.catalog import load_catalog
from tests import partitions
from tests.partitions import ALERTS
from tests.redis_server import start_redis
from workers import groups
from workers import notifications as store
from workers import subscriptions as subs
from workers.dispatch import CONSUMER, GROUP, QUEUE, dispatch_alerts, recipients, recover_stalled
from workers.lease import Lease
from workers.settings import NotifySettings

CATALOG = load_catalog()
SETTINGS = NotifySettings.from_env({"PASARWATCH_NOTIFY_GROUP_WINDOW": "30", "PASARWATCH_NOTIFY_LEASE": "5"})


@pytest.fixture
def client(tmp_path):
    server = start_redis(tmp_path)
    connection = redis.Redis.from_url(server.url)
    partitions.fix(connection, partitions.WORKER_PARTITIONS)
    yield connection
    connection.close()
    server.stop()


def subscribe(client, chat, commodity, province=subs.ALL):
    with client.pipeline() as pipe:
        subs.subscribe(pipe, chat, commodity, province)
        pipe.execute()


def add_alert(client, n, stream: str = ALERTS, **overrides) -> dict:
    event = {"type": "alert", "id": f"{1719800000000 + n}-0",
             "key": f"price-spike/cabai-rawit-merah/pasar-agung-{n}", "rule": "price-spike",
             "state": "firing", "severity": "warning", "commodity": "cabai-rawit-merah",
             "market": "pasar-agung", "province": "32", "price": 90000.0, "ts": 1719800000.0 + n,
             "routes": {"telegram": [], "topics": True}}
    event.update(overrides)
    client.xadd(stream, {"a": orjson.dumps(event)}, id=event["id"])
    return event


def scheduled_jobs(client) -> list[str]:
    return sorted(ScheduledJobRegistry(queue=Queue(QUEUE, connection=client)).get_job_ids())


def test_recipients_are_topic_subscribers_and_the_rules_fixed_chats(client):
    subscribe(client, 1, "cabai-rawit-merah", "32")
    subscribe(client, 2, "cabai-rawit-merah")          # every province
    subscribe(client, 3, subs.ALL, "32")                # everything in West Java
    subscribe(client, 4, subs.ALL)                      # everything
    subscribe(client, 5, "cabai-rawit-merah", "33")     # another province
    subscribe(client, 6, "bawang-merah", "32")          # another commodity
    alert = {"commodity": "cabai-rawit-merah", "market": "pasar-agung", "province": "32",
             "routes": {"telegram": [-1001, 4], "topics": True}}
    assert recipients(client, alert, CATALOG) == [-1001, 1, 2, 3, 4]
    alert["routes"]["topics"] = False
    assert recipients(client, alert, CATALOG) == [-1001, 4]
    # An alert without a province is placed by its market's province.
    assert recipients(client, {"commodity": "cabai-rawit-merah", "market": "pasar-agung"}, CATALOG) == [1, 2, 3, 4]


def queued_jobs(client) -> list[str]:
    return sorted(Queue(QUEUE, connection=client).get_job_ids())


def test_one_job_per_alert_and_chat_named_after_both_once_the_group_is_due(client):
    subscribe(client, 1, "cabai-rawit-merah")
    alert = add_alert(client, 1, routes={"telegram": [-1001], "topics": True})
    t0 = time.time()
    assert dispatch_alerts(client, CATALOG, SETTINGS, now=t0) == 2
    assert queued_jobs(client) == [] and client.zrange(store.INDEX, 0, -1) == []  # gathering
    assert client.xpending(ALERTS, GROUP)["pending"] == 0  # acknowledged in the consumer group
    assert dispatch_alerts(client, CATALOG, SETTINGS, now=t0 + SETTINGS.group_window) == 0
    pairs = {chat: store.pair_id(alert, chat) for chat in (1, -1001)}
    assert queued_jobs(client) == sorted(store.job_id(p) for p in pairs.values())
    for chat, pair in pairs.items():
        record = store.load(client, pair)
        assert (record.chat, record.state, record.count) == (chat, "pending", 1)
        assert orjson.loads(client.lindex(store.items_key(pair), 0))["key"] == alert["key"]
    assert scheduled_jobs(client) == []


def test_a_replayed_alert_is_never_queued_twice(client):
    subscribe(client, 1, "cabai-rawit-merah")
    alert = add_alert(client, 1)
    t0 = time.time()
    assert dispatch_alerts(client, CATALOG, SETTINGS, now=t0) == 1
    # The engine restarts from an old checkpoint and dispatches the whole stream again, before
    # and after the group's flush.
    client.xgroup_setid(ALERTS, GROUP, "0")
    assert dispatch_alerts(client, CATALOG, SETTINGS, now=t0 + 1) == 0
    assert dispatch_alerts(client, CATALOG, SETTINGS, now=t0 + SETTINGS.group_window) == 0
    job = Job.fetch(store.job_id(store.pair_id(alert, 1)), connection=client)
    client.xgroup_setid(ALERTS, GROUP, "0")
    assert dispatch_alerts(client, CATALOG, SETTINGS, now=t0 + 3600) == 0
    assert queued_jobs(client) == [job.id]
    assert store.load(client, store.pair_id(alert, 1)).count == 1
    assert client.zcard(store.INDEX) == 1


def test_entries_read_before_a_crash_are_dispatched(client):
    subscribe(client, 1, "cabai-rawit-merah")
    dispatch_alerts(client, CATALOG, SETTINGS)  # creates the group
    alert = add_alert(client, 1)
    # A dispatcher read the entry and died before it was acknowledged.
    client.xreadgroup(GROUP, CONSUMER, {ALERTS: ">"}, count=10)
    assert client.xpending(ALERTS, GROUP)["pending"] == 1
    t0 = time.time()
    assert dispatch_alerts(client, CATALOG, SETTINGS, now=t0) == 1
    assert client.xpending(ALERTS, GROUP)["pending"] == 0
    dispatch_alerts(client, CATALOG, SETTINGS, now=t0 + SETTINGS.group_window)
    assert queued_jobs(client) == [store.job_id(store.pair_id(alert, 1))]


def test_the_alerts_of_every_partition_are_dispatched_and_acknowledged_where_they_were_read(client):
    """Two partitions, two engines' alert streams: one dispatcher reads both through the group
    ``notify`` of each, and acknowledges each entry in its own stream."""
    chilli, sugar = partitions.of(client, "cabai-rawit-merah"), partitions.of(client, "gula-pasir")
    assert chilli.alerts == ALERTS and sugar.number != chilli.number
    subscribe(client, 1, "cabai-rawit-merah")
    subscribe(client, 2, "gula-pasir")
    dispatch_alerts(client, CATALOG, SETTINGS)  # creates the group on every partition's stream
    assert [[g["name"] for g in client.xinfo_groups(p.alerts)] for p in (chilli, sugar)] == [[b"notify"]] * 2
    hot = add_alert(client, 1)
    sweet = add_alert(client, 2, stream=sugar.alerts, commodity="gula-pasir",
                      key="price-spike/gula-pasir/pasar-agung-2")
    # A dispatcher read the sugar alert and died before it was acknowledged.
    client.xreadgroup(GROUP, CONSUMER, {sugar.alerts: ">"}, count=10)
    t0 = time.time()
    assert dispatch_alerts(client, CATALOG, SETTINGS, now=t0) == 2
    assert [client.xpending(p.alerts, GROUP)["pending"] for p in (chilli, sugar)] == [0, 0]
    dispatch_alerts(client, CATALOG, SETTINGS, now=t0 + SETTINGS.group_window)
    jobs = sorted([store.job_id(store.pair_id(hot, 1)), store.job_id(store.pair_id(sweet, 2))])
    assert queued_jobs(client) == jobs
    # Both streams read again from the start (an engine restored an old checkpoint): nothing twice.
    for partition in (chilli, sugar):
        client.xgroup_setid(partition.alerts, GROUP, "0")
    assert dispatch_alerts(client, CATALOG, SETTINGS, now=t0 + 3600) == 0
    assert queued_jobs(client) == jobs
    # Given the partitions, the dispatcher reads those (the engine's), not what Redis records.
    late = add_alert(client, 3, stream=sugar.alerts, commodity="gula-pasir", key="price-spike/gula-pasir/pasar-x")
    assert dispatch_alerts(client, CATALOG, SETTINGS, now=t0 + 3601, partitions=[chilli]) == 0
    assert dispatch_alerts(client, CATALOG, SETTINGS, now=t0 + 3601, partitions=[chilli, sugar]) == 1
    assert client.xpending(sugar.alerts, GROUP)["pending"] == 0 and late["id"] == "1719800000003-0"


def test_alerts_within_the_window_make_one_notification_and_later_ones_another(client):
    subscribe(client, 1, "cabai-rawit-merah")
    first = add_alert(client, 1)
    for n in range(2, 6):
        add_alert(client, n)
    t0 = time.time()
    assert dispatch_alerts(client, CATALOG, SETTINGS, now=t0) == 5
    dispatch_alerts(client, CATALOG, SETTINGS, now=t0 + SETTINGS.group_window)
    digest = store.pair_id(first, 1)
    assert queued_jobs(client) == [store.job_id(digest)]
    assert store.load(client, digest).count == 5
    assert [a["id"] for a in store.load_items(client, digest)] == [f"{1719800000000 + n}-0" for n in range(1, 6)]
    # The digest is complete: a later alert starts a new one and leaves this one as it is.
    later = add_alert(client, 6)
    assert dispatch_alerts(client, CATALOG, SETTINGS, now=t0 + 40) == 1
    dispatch_alerts(client, CATALOG, SETTINGS, now=t0 + 40 + SETTINGS.group_window)
    assert queued_jobs(client) == sorted([store.job_id(digest), store.job_id(store.pair_id(later, 1))])
    assert store.load(client, digest).count == 5
    assert store.load(client, store.pair_id(later, 1)).count == 1


def test_an_unreadable_entry_is_skipped_and_acknowledged(client):
    subscribe(client, 1, "cabai-rawit-merah")
    dispatch_alerts(client, CATALOG, SETTINGS)
    client.xadd(ALERTS, {"a": b"{not json"}, id="1-0")
    client.xadd(ALERTS, {"other": b"1"}, id="2-0")
    good = add_alert(client, 1)
    t0 = time.time()
    assert dispatch_alerts(client, CATALOG, SETTINGS, now=t0) == 1
    assert client.xpending(ALERTS, GROUP)["pending"] == 0
    dispatch_alerts(client, CATALOG, SETTINGS, now=t0 + SETTINGS.group_window)
    assert queued_jobs(client) == [store.job_id(store.pair_id(good, 1))]


def test_a_stalled_notification_gets_a_fresh_job_unless_a_worker_holds_it(client):
    subscribe(client, 1, "cabai-rawit-merah")
    subscribe(client, 2, "cabai-rawit-merah")
    alert = add_alert(client, 1)
    t0 = time.time()
    dispatch_alerts(client, CATALOG, SETTINGS, now=t0)
    dispatch_alerts(client, CATALOG, SETTINGS, now=t0 + SETTINGS.group_window)
    stalled, held = store.pair_id(alert, 1), store.pair_id(alert, 2)
    queue = Queue(QUEUE, connection=client)
    queue.empty()  # the first jobs are lost (Redis restored from an old snapshot, say)
    assert recover_stalled(client, SETTINGS, now=time.time()) == 0  # before the deadline
    lease = Lease(client, held, 60)
    assert lease.acquire()
    later = time.time() + SETTINGS.group_window + SETTINGS.lease + 10
    assert recover_stalled(client, SETTINGS, now=later) == 1
    queued = queue.get_job_ids()
    assert queued == [store.job_id(stalled, "x1")]
    # Claimed: the same sweep again does nothing until the new deadline passes too, and not
    # even then while the fresh job waits in the queue (a backlog, not a crash).
    assert recover_stalled(client, SETTINGS, now=later) == 0
    assert recover_stalled(client, SETTINGS, now=later + 600) == 0
    assert store.load(client, stalled).state == "pending"
    assert client.hget(store.record_key(stalled), "job") == store.job_id(stalled, "x1").encode()
    # A finished notification leaves the deadline set for good.
    store.finalize(client, stalled, "sent", "1 message(s)", later)
    assert recover_stalled(client, SETTINGS, now=later + 3600) == 0
    assert client.zscore(store.DUE, stalled) is None
    lease.release()


def test_two_processes_flushing_one_group_at_once_make_its_notifications_once(client):
    chats = list(range(1, 21))
    for chat in chats:
        subscribe(client, chat, "cabai-rawit-merah")
    for n in range(1, 4):
        add_alert(client, n)
    t0 = time.time()
    dispatch_alerts(client, CATALOG, SETTINGS, now=t0)
    url = "redis://{host}:{port}/0".format(**client.connection_pool.connection_kwargs)
    connections = [redis.Redis.from_url(url) for _ in range(4)]
    start = threading.Barrier(len(connections))

    def flush(connection):
        start.wait()
        return groups.flush_due(connection, CATALOG, SETTINGS, now=t0 + SETTINGS.group_window)

    with ThreadPoolExecutor(len(connections)) as pool:
        made = list(pool.map(flush, connections))
    assert sum(made) == len(chats)
    assert client.zcard(store.INDEX) == len(chats)
    assert sorted(store.load(client, nid.decode()).chat for nid in client.zrange(store.INDEX, 0, -1)) == chats
    assert all(store.load(client, nid.decode()).count == 3 for nid in client.zrange(store.INDEX, 0, -1))
    for connection in connections:
        connection.close()


@pytest.fixture
def notify_client(tmp_path):
    """A second real Redis: the notifications' (RQ_REDIS_URL), apart from the alert streams'."""
    server = start_redis(tmp_path / "notify")
    connection = redis.Redis.from_url(server.url)
    yield connection
    connection.close()
    server.stop()


def test_with_a_notification_redis_of_its_own_alerts_are_read_from_the_data_and_queued_in_the_other(
        client, notify_client):
    subscribe(notify_client, 1, "cabai-rawit-merah")
    alert = add_alert(client, 1)
    t0 = time.time()
    assert dispatch_alerts(client, CATALOG, SETTINGS, now=t0, notify=notify_client) == 1
    assert client.xpending(ALERTS, GROUP)["pending"] == 0  # acknowledged in the data Redis
    dispatch_alerts(client, CATALOG, SETTINGS, now=t0 + SETTINGS.group_window, notify=notify_client)
    pair = store.pair_id(alert, 1)
    assert queued_jobs(notify_client) == [store.job_id(pair)]
    assert store.load(notify_client, pair).state == "pending"
    # Nothing of the notifications is written beside the data, nor the other way round.
    assert not [k for k in client.keys("*") if k.startswith((b"pw:notif", b"pw:sub", b"rq:"))]
    assert notify_client.keys("pw:{p*") == []


def test_an_alert_taken_into_its_groups_but_not_acknowledged_is_taken_once(client, notify_client):
    subscribe(notify_client, 1, "cabai-rawit-merah")
    alert = add_alert(client, 1)
    t0 = time.time()
    assert dispatch_alerts(client, CATALOG, SETTINGS, now=t0, notify=notify_client) == 1
    # The engine died between the groups' transaction in one Redis and the XACK in the other: the
    # entry is read again, as an entry never acknowledged is.
    client.xgroup_setid(ALERTS, GROUP, "0")
    assert dispatch_alerts(client, CATALOG, SETTINGS, now=t0 + 1, notify=notify_client) == 0
    assert client.xpending(ALERTS, GROUP)["pending"] == 0
    dispatch_alerts(client, CATALOG, SETTINGS, now=t0 + SETTINGS.group_window, notify=notify_client)
    assert queued_jobs(notify_client) == [store.job_id(store.pair_id(alert, 1))]
    assert store.load(notify_client, store.pair_id(alert, 1)).count == 1


def test_with_a_notification_redis_of_its_own_a_silence_in_the_data_redis_keeps_a_flush_quiet(
        client, notify_client):
    """A silence made after an alert was taken into its group is stored beside the data (the API
    writes it there); the group's flush must still read it."""
    from rules.silences import new_silence
    from stores.silences import save_silence

    subscribe(notify_client, 1, "cabai-rawit-merah")
    add_alert(client, 1)
    t0 = time.time()
    assert dispatch_alerts(client, CATALOG, SETTINGS, now=t0, notify=notify_client) == 1
    silence = new_silence({"matchers": ['commodity="cabai-rawit-merah"'], "duration": "4h", "author": "budi",
                           "comment": "panen"}, now=t0)
    with client.pipeline() as pipe:
        save_silence(pipe, silence, [])
        pipe.execute()
    dispatch_alerts(client, CATALOG, SETTINGS, now=t0 + SETTINGS.group_window, notify=notify_client)
    assert queued_jobs(notify_client) == [], "the silenced alert was notified"


def test_an_entry_staged_whose_xack_failed_is_read_again_from_the_pending_list_and_taken_once(
        client, notify_client, monkeypatch):
    """The crash between the two Redis as it happens: the entry was read with ">" (so it is in the
    consumer's pending list, not re-readable with ">"), staged, and its XACK never arrived."""
    subscribe(notify_client, 1, "cabai-rawit-merah")
    alert = add_alert(client, 1)
    t0 = time.time()
    real_xack = client.xack

    def lost(*args):
        raise redis.ConnectionError("the data Redis went away before the XACK")

    monkeypatch.setattr(client, "xack", lost)
    with pytest.raises(redis.ConnectionError):
        dispatch_alerts(client, CATALOG, SETTINGS, now=t0, notify=notify_client)
    assert client.xpending(ALERTS, GROUP)["pending"] == 1
    monkeypatch.setattr(client, "xack", real_xack)
    assert dispatch_alerts(client, CATALOG, SETTINGS, now=t0 + 1, notify=notify_client) == 0
    assert client.xpending(ALERTS, GROUP)["pending"] == 0
    dispatch_alerts(client, CATALOG, SETTINGS, now=t0 + SETTINGS.group_window, notify=notify_client)
    assert queued_jobs(notify_client) == [store.job_id(store.pair_id(alert, 1))]
    assert store.load(notify_client, store.pair_id(alert, 1)).count == 1
