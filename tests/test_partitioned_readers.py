"""The web process reads the partitions as one system: /readyz and /metrics per partition (its
owner, its lag), prices, alerts and sources merged, dead letters named by partition. A real
Redis holding what engines would have written to three partitions; no engine runs."""
from __future__ import annotations

import asyncio
import dataclasses
import time

import orjson
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis as AsyncRedis
from starlette.testclient import TestClient

from base import keys
from base.catalog import load_catalog
from base.config import Settings
from server import auth, deadletters
from server.app import create_app
from server.deadletters import DeadLetterError
from server.import_runner import EngineWatch, Progress
from tests import partitions
from tests.redis_server import start_redis

P = 3
CHILLI, SHALLOT = "cabai-rawit-merah", "bawang-merah"  # in different partitions of three


@pytest.fixture
def store(tmp_path):
    server = start_redis(tmp_path / "redis")
    client = redis.Redis.from_url(server.url)
    partitions.fix(client, P)
    client.set(keys.RULES_STATUS, orjson.dumps({"files": [], "ok": True}))
    yield server.url, client
    client.close()
    server.stop()


@pytest.fixture
def web(store, tmp_path):
    url, client = store
    settings = dataclasses.replace(Settings.from_env(), redis_url=url, data_dir=tmp_path / "data",
                                   audit_dir=tmp_path / "data", engine_stall=30.0, engine_lease=5.0,
                                   partitions=8)  # P is already fixed at 3: 8 is ignored
    token = auth.issue(client, "person", "test-admin", "admin")
    with TestClient(create_app(settings), headers={"authorization": f"Bearer {token}"}) as http:
        yield http, client


def add_ticks(client: redis.Redis, partition: keys.Partition, count: int) -> list[bytes]:
    return [client.xadd(partition.ticks, {"t": b"{}"}) for _ in range(count)]


def owned(client: redis.Redis, partition: keys.Partition, owner: str, ticks: int, read: int) -> None:
    """``ticks`` in the partition, of which its owner's group has read (not acknowledged) ``read``."""
    add_ticks(client, partition, ticks)
    client.xgroup_create(partition.ticks, keys.ENGINE_GROUP, id="0")
    client.xreadgroup(keys.ENGINE_GROUP, keys.ENGINE_CONSUMER, {partition.ticks: ">"}, count=read)
    client.set(partition.lease, owner, ex=5)


def test_the_partitions_are_fixed_by_the_first_writer_and_kept_by_the_web_process(web):
    http, client = web
    assert int(client.get(keys.PARTITION_COUNT)) == P
    assert [p["partition"] for p in http.get("/readyz").json()["partitions"]] == [0, 1, 2]
    assert len({keys.partition_of(c, P) for c in (CHILLI, SHALLOT)}) == 2


def test_readyz_reports_each_partitions_owner_and_lag_and_is_unready_while_one_is_stuck(web):
    http, client = web
    p0, p1, _ = keys.partitions(P)
    now = time.time()
    # Partition 0: owned and making progress; of two ticks one is read (pending), one is not.
    owned(client, p0, "engine-a", 2, 1)
    client.set(p0.progress, repr(now))
    # Partition 1: three ticks waiting and no engine owns it (no group yet either).
    add_ticks(client, p1, 3)
    response = http.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["engine_progress"] is False and body["engine"]["waiting"] is True
    rows = {p["partition"]: p for p in body["partitions"]}
    assert {n: (p["owner"], p["pending"], p["unread"], p["lag"], p["waiting"], p["stalled"])
            for n, p in rows.items()} == {0: ("engine-a", 1, 1, 2, True, False),
                                          1: (None, 0, 3, 3, True, True),
                                          2: (None, 0, 0, 0, False, False)}
    assert 0 <= rows[0]["idle_for"] < 5 and rows[1]["idle_for"] is None
    # An engine takes partition 1 over but makes no progress on it: still stuck.
    client.xgroup_create(p1.ticks, keys.ENGINE_GROUP, id="0")
    client.set(p1.lease, "engine-b", ex=5)
    client.set(p1.progress, repr(now - 100))
    stuck = http.get("/readyz")
    assert stuck.status_code == 503 and stuck.json()["partitions"][1]["stalled"] is True
    assert stuck.json()["partitions"][1]["owner"] == "engine-b"
    # It makes progress: ready, and an idle partition without an owner does not matter.
    client.set(p1.progress, repr(time.time()))
    ready = http.get("/readyz")
    assert ready.status_code == 200, ready.json()
    assert ready.json()["partitions"][2] == {**rows[2], "idle_for": None}


def scrape(http: TestClient) -> dict[tuple[str, tuple], float]:
    response = http.get("/metrics")
    assert response.status_code == 200
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def test_metrics_sum_the_partitions_and_give_each_partitions_lag_and_owner(web):
    http, client = web
    p0, p1, p2 = keys.partitions(P)
    now = time.time()
    owned(client, p0, "engine-a", 4, 3)
    owned(client, p2, "engine-b", 2, 2)
    client.xack(p2.ticks, keys.ENGINE_GROUP, *[entry for entry, _ in client.xrange(p2.ticks)])
    add_ticks(client, p2, 1)  # not read yet
    client.zadd(keys.ENGINES, {"engine-a": now, "engine-b": now - 1, "engine-gone": now - 60})
    client.set(p0.processed, 5)
    client.set(p2.processed, 7)
    client.set(p1.accepted, 9)
    client.set(p1.alerts_raised, 2)
    client.set(p2.deadlettered, 1)
    client.hset(p0.errors, mapping={"detector:ipa": 2, "engine:batch": 1})
    client.hset(p2.errors, "detector:ipa", 3)
    client.hset(p0.firing, "a/1", b"{}")
    client.hset(p1.firing, mapping={"a/2": b"{}", "a/3": b"{}"})
    served = scrape(http)
    assert {n: served[("pasarwatch_partition_lag", (("partition", str(n)),))] for n in range(P)} == {0: 4, 1: 0, 2: 1}
    owners = {labels: value for (name, labels), value in served.items() if name == "pasarwatch_partition_owner_info"}
    assert owners == {(("owner", "engine-a"), ("partition", "0")): 1, (("owner", "engine-b"), ("partition", "2")): 1}
    assert served[("pasarwatch_engines", ())] == 2  # engine-gone has not renewed for a minute
    assert served[("pasarwatch_ticks_pending", ())] == 3
    assert served[("pasarwatch_ticks_processed_total", ())] == 12
    assert served[("pasarwatch_ticks_accepted_total", ())] == 9
    assert served[("pasarwatch_alert_events_total", ())] == 2
    assert served[("pasarwatch_ticks_deadlettered_total", ())] == 1
    assert served[("pasarwatch_alerts_firing", ())] == 3
    assert served[("pasarwatch_engine_errors_total", (("cause", "detector:ipa"),))] == 5
    assert served[("pasarwatch_engine_errors_total", (("cause", "engine:batch"),))] == 1


def price(commodity: str, market: str, value: float) -> bytes:
    return orjson.dumps({"type": "price", "commodity": commodity, "market": market, "province": "32",
                         "price": value, "ts": 1.0})


def alert(n: int, commodity: str, state: str = "firing", seq: int = 0) -> dict:
    return {"type": "alert", "id": f"{1719800000000 + n}-{seq}", "key": f"r/{commodity}/pasar-{n}", "state": state,
            "commodity": commodity, "market": f"pasar-{n}", "province": "32", "severity": "warning"}


def test_prices_alerts_and_sources_of_every_partition_are_served_as_one(web):
    http, client = web
    chilli, shallot = partitions.of(client, CHILLI), partitions.of(client, SHALLOT)
    client.hset(chilli.latest, f"{CHILLI}/pasar-agung", price(CHILLI, "pasar-agung", 60000.0))
    client.hset(shallot.latest, f"{SHALLOT}/pasar-agung", price(SHALLOT, "pasar-agung", 17000.0))
    assert [(s["commodity"], s["price"]) for s in http.get("/api/v1/series").json()["series"]] == [
        (SHALLOT, 17000.0), (CHILLI, 60000.0)]
    client.xadd(chilli.history(CHILLI, "pasar-agung"), {"m": price(CHILLI, "pasar-agung", 61000.0)})
    points = http.get(f"/api/v1/series/{CHILLI}/pasar-agung/history").json()["points"]
    assert [p["price"] for p in points] == [61000.0]
    # The alert history interleaves the partitions by id, for since and limit too. Engines number
    # the alerts of one millisecond in steps of P from their partition's: "3-11" comes after "3-3".
    events = [alert(1, CHILLI), alert(2, SHALLOT), alert(3, CHILLI, "resolved", seq=3),
              alert(3, SHALLOT, seq=11)]
    for event in events:
        stream = partitions.of(client, event["commodity"]).alerts
        client.xadd(stream, {"a": orjson.dumps(event)}, id=event["id"])
    ids = [e["id"] for e in events]
    assert [a["id"] for a in http.get("/api/v1/alerts").json()["alerts"]] == ids
    assert [a["id"] for a in http.get("/api/v1/alerts", params={"limit": 2}).json()["alerts"]] == ids[2:]
    assert [a["id"] for a in http.get("/api/v1/alerts", params={"since": ids[0], "limit": 2}).json()["alerts"]] \
        == ids[1:3]
    assert [a["id"] for a in http.get("/api/v1/alerts", params={"state": "resolved"}).json()["alerts"]] == [ids[2]]
    for event in (events[0], {**events[2], "state": "firing"}, events[3]):
        client.hset(partitions.of(client, event["commodity"]).firing, event["key"], orjson.dumps(event))
    firing = http.get("/api/v1/alerts", params={"state": "firing"}).json()["alerts"]
    assert [a["id"] for a in firing] == [ids[0], ids[2], ids[3]]
    # A dashboard's snapshot holds the prices and firing alerts of every partition, then what it missed.
    with http.websocket_connect("/ws/prices") as ws:
        ws.send_text(orjson.dumps({"type": "subscribe", "since": ids[1]}).decode())
        frames = []
        while sum(len(frame) for frame in frames) < 3:
            frames.append(orjson.loads(ws.receive_text()))
    snapshot, *missed = [message for frame in frames for message in frame]
    assert [p["commodity"] for p in sorted(snapshot["prices"], key=lambda p: p["commodity"])] == [SHALLOT, CHILLI]
    assert [a["id"] for a in snapshot["alerts"]] == [ids[0], ids[2], ids[3]]
    assert [a["id"] for a in missed] == ids[2:]
    # Acknowledging finds the alert firing in whichever partition it is.
    assert http.post(f"/api/v1/alerts/{events[3]['key']}/ack", json={"by": "budi"}).status_code == 200
    assert http.post(f"/api/v1/alerts/{events[1]['key']}/ack", json={"by": "budi"}).status_code == 404
    # A source reporting two commodities has a standing in both partitions: the newest is shown.
    client.hset(chilli.sources, "hp-9", orjson.dumps({"type": "source", "source": "hp-9", "state": "suspect",
                                                      "ts": 200.0}))
    client.hset(shallot.sources, "hp-9", orjson.dumps({"type": "source", "source": "hp-9", "state": "ok", "ts": 100.0}))
    client.hset(shallot.sources, "hp-1", orjson.dumps({"type": "source", "source": "hp-1", "state": "ok", "ts": 50.0}))
    sources = http.get("/api/v1/sources").json()["sources"]
    assert [(s["source"], s["state"], s["ts"]) for s in sources] == [("hp-9", "suspect", 200.0), ("hp-1", "ok", 50.0)]


class Appender:
    """The process' one appender as far as a replay sees it: it takes ticks and names entries."""

    def __init__(self):
        self.appended: list[dict] = []

    async def append(self, ticks: list[dict]) -> list[str | None]:
        self.appended.extend(ticks)
        return [f"9-{n}" for n in range(len(ticks))]


def test_dead_letters_are_listed_from_every_partition_and_named_by_it(store):
    url, client = store
    every = keys.partitions(P)
    chilli, shallot = partitions.of(client, CHILLI), partitions.of(client, SHALLOT)
    tick = {"commodity": CHILLI, "market": "pasar-agung", "province": "32", "price": 1.0, "ts": 1.0}
    letters = {}
    for n, partition in enumerate((chilli, shallot, chilli)):
        entry = client.xadd(partition.deadletter, {"t": orjson.dumps(tick), "id": f"5-{n}", "error": "boom",
                                                   "at": 1.0}, id=f"{100 + n}-0").decode()
        letters[n] = f"{partition.number}:{entry}"
    client.set(chilli.deadlettered, 2)
    client.set(shallot.deadlettered, 3)

    async def scenario() -> None:
        redis_async = AsyncRedis.from_url(url)
        try:
            listed = await deadletters.list_deadletters(redis_async, every, 10)
            assert [d["id"] for d in listed["deadletters"]] == [letters[2], letters[1], letters[0]]  # newest first
            assert [d["partition"] for d in listed["deadletters"]] == [chilli.number, shallot.number, chilli.number]
            assert listed["total"] == 5
            assert [d["id"] for d in (await deadletters.list_deadletters(redis_async, every, 1))["deadletters"]] \
                == [letters[2]]
            appender = Appender()
            replayed = await deadletters.replay(redis_async, every, appender, load_catalog(), letters[1])
            assert replayed == {"replayed": letters[1], "ids": ["9-0"]}
            assert appender.appended == [{k: v for k, v in tick.items()} | {"replay_of": "5-1"}]
            assert client.xlen(shallot.deadletter) == 0 and client.xlen(chilli.deadletter) == 2
            assert await deadletters.discard(redis_async, every, letters[0]) == {"discarded": letters[0]}
            # The stream id alone, in the wrong partition, of a partition there is not, or malformed: not found.
            stream_id = letters[2].split(":", 1)[1]
            for wrong in (stream_id, f"{shallot.number}:{stream_id}", f"{P}:{stream_id}", f"x:{stream_id}",
                          letters[0]):
                with pytest.raises(DeadLetterError) as refused:
                    await deadletters.discard(redis_async, every, wrong)
                assert refused.value.status == 404, wrong
            assert [d["id"] for d in (await deadletters.list_deadletters(redis_async, every))["deadletters"]] \
                == [letters[2]]
        finally:
            await redis_async.aclose()

    asyncio.run(scenario())


def test_an_import_waits_for_the_engines_of_the_partitions_its_ticks_went_to(store, monkeypatch):
    url, client = store
    from server import import_runner

    monkeypatch.setattr(import_runner, "BACKLOG", 2)
    chilli, shallot = partitions.of(client, CHILLI), partitions.of(client, SHALLOT)
    for partition in (chilli, shallot):
        client.xgroup_create(partition.ticks, keys.ENGINE_GROUP, id="0", mkstream=True)
    appended = [(CHILLI, client.xadd(chilli.ticks, {"t": b"{}"}).decode()) for _ in range(3)]
    appended += [(SHALLOT, client.xadd(shallot.ticks, {"t": b"{}"}).decode()) for _ in range(2)]

    async def scenario() -> None:
        redis_async = AsyncRedis.from_url(url)
        try:
            watch = EngineWatch(redis_async, keys.partitions(P))
            watch.appended(appended)
            progress = Progress([])
            waiting = asyncio.ensure_future(watch.keep_up(progress))
            await asyncio.sleep(0.5)
            assert not waiting.done() and progress.waiting and watch.read == 0
            # The chilli engine reads all of its three; the shallot engine none: two wait, within the backlog.
            client.xreadgroup(keys.ENGINE_GROUP, keys.ENGINE_CONSUMER, {chilli.ticks: ">"}, count=10)
            await asyncio.wait_for(waiting, 5)
            assert watch.read == 3 and not progress.waiting
        finally:
            await redis_async.aclose()

    asyncio.run(scenario())


def test_the_readers_work_on_a_redis_cluster_where_the_partitions_lie_in_other_slots(redis_cluster):
    """A cluster refuses a command across slots: every read of several partitions is a pipeline
    (split by node) or one command per partition, never MGET or one XREADGROUP over all."""
    from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
    from redis.cluster import RedisCluster as SyncRedisCluster

    from server import metrics
    from server.progress import partitions_progress
    from stores import partitioned
    from workers import dispatch

    client = redis_cluster.cluster_client()
    client.flushall(target_nodes=SyncRedisCluster.PRIMARIES)
    every = partitions.fix(client, P)
    assert len({client.keyslot(partition.ticks) for partition in every}) == P
    chilli, shallot = partitions.of(client, CHILLI), partitions.of(client, SHALLOT)
    client.set(chilli.processed, 4)
    client.set(shallot.processed, 5)
    assert partitions.total(client, "processed") == 9
    dispatch.ensure_groups(client, every)
    for n, partition in ((1, chilli), (2, shallot)):
        client.xadd(partition.alerts, {"a": orjson.dumps(alert(n, CHILLI))}, id=f"{1719800000000 + n}-0")
    with pytest.raises(redis.exceptions.RedisClusterException):  # one XREADGROUP over every slot
        dispatch._read_streams(client, every, ">")
    read = dispatch._read(client, every, ">")
    assert sorted(stream.decode() for stream, _ in read) == sorted([chilli.alerts, shallot.alerts])
    owned(client, chilli, "engine-a", 3, 1)
    client.hset(shallot.firing, "r/x", b"{}")
    client.xadd(shallot.deadletter, {"t": b"{}", "id": b"1-0"}, id="5-0")
    client.close()

    async def scenario() -> None:
        cluster = AsyncRedisCluster(host="127.0.0.1", port=redis_cluster.ports[0], password=redis_cluster.password)
        try:
            assert await partitioned.counter_sum(cluster, every, "processed") == 9
            assert list(await partitioned.merged_hash(cluster, every, "firing")) == [b"r/x"]
            assert await partitioned.has_field(cluster, every, "firing", "r/x")
            progress = await partitions_progress(cluster, every, 30.0)
            assert [(p["owner"], p["lag"]) for p in progress if p["partition"] == chilli.number] == [("engine-a", 3)]
            values = await metrics.read(cluster, every, 5.0)
            assert (values["processed"], values["firing"], values["pending"]) == (9, 1, 1)
            listed = await deadletters.list_deadletters(cluster, every)
            assert [d["id"] for d in listed["deadletters"]] == [f"{shallot.number}:5-0"]
        finally:
            await cluster.aclose()

    asyncio.run(scenario())
