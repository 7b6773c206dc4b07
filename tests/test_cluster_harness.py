"""The Redis Cluster harness (tests/cluster.py) and what redis-py's cluster clients do on it.

One cluster of three masters serves the module (the ``redis_cluster`` fixture); each test starts
from empty nodes. Every wait is bounded: socket timeouts on the clients, deadlines on the polls.
"""
from __future__ import annotations

import asyncio
import time

import pytest
import redis
import redis.asyncio.cluster
from redis.exceptions import CrossSlotTransactionError, RedisClusterException, WatchError

from testkit.waiting import wait_for
from tests.cluster import HASH_SLOTS, RedisCluster, slot_ranges
from tests.markers import starts_processes

MESSAGE_TIMEOUT = 10.0


@pytest.fixture
def rc(redis_cluster: RedisCluster):
    """redis-py's cluster client on emptied nodes."""
    client = redis_cluster.cluster_client()
    client.flushall(target_nodes=redis.cluster.RedisCluster.PRIMARIES)
    yield client
    client.close()


def next_message(pubsub: redis.client.PubSub, timeout: float = MESSAGE_TIMEOUT) -> dict:
    """The next message (not a subscribe confirmation) on ``pubsub``, within ``timeout``."""
    return wait_for(lambda: pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2), timeout,
                    "a pub/sub message")  # type: ignore[return-value]


def subscribed(client: redis.Redis, channel: str) -> redis.client.PubSub:
    pubsub = client.pubsub()
    pubsub.subscribe(channel)
    confirmation = wait_for(lambda: pubsub.get_message(timeout=0.2), MESSAGE_TIMEOUT, "subscribe confirmation")
    assert confirmation["type"] == "subscribe"  # type: ignore[index]
    return pubsub


def test_the_cluster_fixture_makes_its_tests_system_tests(request):
    from tests import conftest  # here, not at the top: this test itself starts nothing

    assert starts_processes(conftest.redis_cluster)
    assert "system" not in {mark.name for mark in request.node.iter_markers()}


def test_three_masters_share_the_slots(redis_cluster, rc):
    assert len(redis_cluster.nodes) == 3 and len(set(redis_cluster.ports)) == 3
    primaries = rc.get_primaries()
    assert sorted(node.port for node in primaries) == sorted(redis_cluster.ports)
    assert rc.get_replicas() == []
    for i, slots in enumerate(slot_ranges(3)):
        with redis_cluster.client(i) as node:
            info = node.cluster("INFO")
            assert info["cluster_state"] == "ok" and info["cluster_slots_ok"] == str(HASH_SLOTS)
            assert node.config_get("appendonly") == {"appendonly": "yes"}
            mine = next(entry for entry in node.cluster("NODES").values() if "myself" in entry["flags"])
            assert mine["slots"] == [[str(slots.start), str(slots.stop - 1)]]
        for slot in (slots.start, slots.stop - 1):
            assert rc.nodes_manager.get_node_from_slot(slot).port == redis_cluster.nodes[i].port
        assert (redis_cluster.nodes[i].data_dir / "nodes.conf").exists()
    assert rc.ping() is True


def test_a_password_is_required_on_every_node(redis_cluster):
    for node in redis_cluster.nodes:
        with redis.Redis(host="127.0.0.1", port=node.port, socket_timeout=5, retry=None) as anonymous:
            with pytest.raises(redis.AuthenticationError):
                anonymous.ping()


def test_keys_spread_over_the_three_masters(redis_cluster, rc):
    keys = [f"pw:price:market-{i}" for i in range(60)]
    for key in keys:
        rc.set(key, key)
    counts = []
    for i, node in enumerate(redis_cluster.nodes):
        with redis_cluster.client(i) as plain:
            counts.append(plain.dbsize())
            mine = [key for key in keys if rc.get_node_from_key(key).port == node.port]
            assert mine and all(plain.exists(key) for key in mine)
            if len({rc.keyslot(key) for key in mine}) > 1:  # one node, several slots: still refused
                with pytest.raises(redis.exceptions.ClusterCrossSlotError):
                    plain.exists(*mine)
    assert all(count > 0 for count in counts) and sum(counts) == len(keys)
    assert [rc.get(key) for key in keys] == [key.encode() for key in keys]


def test_a_transaction_over_one_hash_tag_runs(rc):
    assert len({rc.keyslot(key) for key in ("{p1}price", "{p1}ticks")}) == 1
    with rc.pipeline(transaction=True) as pipe:
        pipe.set("{p1}price", 100).incr("{p1}ticks").get("{p1}price")
        # EXEC's replies come back raw: SET gives b"OK", not the True of a plain pipeline
        assert pipe.execute() == [b"OK", 1, b"100"]
    assert rc.get("{p1}ticks") == b"1"


def test_a_transaction_over_two_slots_is_refused(rc):
    assert rc.keyslot("pw:a") != rc.keyslot("pw:b")
    with rc.pipeline(transaction=True) as pipe:
        pipe.set("pw:a", 1).set("pw:b", 2)
        with pytest.raises(CrossSlotTransactionError, match="same slot"):
            pipe.execute()
    assert rc.get("pw:a") is None and rc.get("pw:b") is None  # refused before anything was sent


def test_watch_in_a_cluster_transaction_fails_when_another_client_writes(redis_cluster, rc):
    rc.set("{p1}stock", 10)
    with rc.pipeline(transaction=True) as pipe, redis_cluster.cluster_client() as other:
        pipe.watch("{p1}stock", "{p1}sold")
        stock = int(pipe.get("{p1}stock"))  # sent at once, on the connection that watches
        assert stock == 10
        other.set("{p1}stock", 0)
        pipe.multi()
        pipe.set("{p1}stock", stock - 1).incr("{p1}sold")
        with pytest.raises(WatchError):
            pipe.execute()
    assert rc.get("{p1}stock") == b"0" and rc.get("{p1}sold") is None


def test_watch_in_a_cluster_transaction_commits_when_nobody_writes(rc):
    rc.set("{p1}stock", 10)
    with rc.pipeline(transaction=True) as pipe:
        pipe.watch("{p1}stock")
        stock = int(pipe.get("{p1}stock"))
        pipe.multi()
        pipe.set("{p1}stock", stock - 1).incr("{p1}sold")
        assert pipe.execute() == [b"OK", 1]
    assert rc.get("{p1}stock") == b"9"


def test_watch_on_two_slots_is_refused(rc):
    with rc.pipeline(transaction=True) as pipe:
        pipe.watch("{p1}stock")
        with pytest.raises(CrossSlotTransactionError):
            pipe.watch("{p2}stock")


def test_eval_with_keys_in_one_slot_runs(rc):
    script = "redis.call('SET', KEYS[1], ARGV[1]); return redis.call('INCRBY', KEYS[2], ARGV[2])"
    assert rc.eval(script, 2, "{p1}last", "{p1}total", "7", "5") == 5
    assert rc.eval(script, 2, "{p1}last", "{p1}total", "8", "5") == 10
    assert rc.get("{p1}last") == b"8"
    # EVALSHA (register_script), on the node of the slot: loaded there on its first NOSCRIPT
    incr = rc.register_script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
    assert incr(keys=["{p2}total"], args=[3]) == 3
    assert incr(keys=["{p2}total"], args=[3]) == 6


def test_eval_with_keys_in_two_slots_is_refused_by_the_client(rc):
    with pytest.raises(RedisClusterException, match="same key slot") as refused:
        rc.eval("return redis.call('MSET', KEYS[1], 1, KEYS[2], 2)", 2, "pw:a", "pw:b")
    assert refused.type is RedisClusterException
    assert rc.get("pw:a") is None and rc.get("pw:b") is None


def test_publish_on_one_node_reaches_subscribers_on_the_others(redis_cluster):
    with redis_cluster.client(0) as publisher, redis_cluster.client(1) as one, redis_cluster.client(2) as two:
        listeners = [subscribed(one, "pw:alerts"), subscribed(two, "pw:alerts")]
        try:
            # PUBLISH counts the subscribers of the node it ran on only: none on node 0
            assert publisher.publish("pw:alerts", "surge") == 0
            for listener in listeners:
                message = next_message(listener)
                assert (message["channel"], message["data"]) == (b"pw:alerts", b"surge")
        finally:
            for listener in listeners:
                listener.close()


def test_the_cluster_client_publishes_to_every_node(redis_cluster, rc):
    # the plain clients must outlive their pubsubs: a collected client closes their connections
    clients = [redis_cluster.client(i) for i in range(3)]
    listeners = [subscribed(client, "pw:cluster") for client in clients]
    try:
        rc.publish("pw:cluster", "from-the-cluster-client")
        for listener in listeners:
            assert next_message(listener)["data"] == b"from-the-cluster-client"
    finally:
        for listener in listeners:
            listener.close()
        for client in clients:
            client.close()


def test_the_asyncio_cluster_client_has_pubsub(redis_cluster):
    async def scenario() -> dict:
        client = redis.asyncio.cluster.RedisCluster(host="127.0.0.1", port=redis_cluster.nodes[0].port,
                                                    password=redis_cluster.password, socket_timeout=5)
        pubsub = client.pubsub()
        try:
            await pubsub.subscribe("pw:async")
            deadline = time.monotonic() + MESSAGE_TIMEOUT
            confirmation = None
            while confirmation is None and time.monotonic() < deadline:
                confirmation = await pubsub.get_message(timeout=0.2)
            assert confirmation is not None and confirmation["type"] == "subscribe"
            node = pubsub.get_pubsub_node()  # the node the channel's slot chose
            assert node is not None
            other = next(i for i, n in enumerate(redis_cluster.nodes) if n.port != node.port)
            with redis_cluster.client(other) as publisher:
                publisher.publish("pw:async", "hello")
            while time.monotonic() < deadline:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
                if message is not None:
                    return message
            raise AssertionError("no message on the asyncio cluster pubsub")
        finally:
            await pubsub.aclose()
            await client.aclose()

    message = asyncio.run(asyncio.wait_for(scenario(), MESSAGE_TIMEOUT + 10))
    assert (message["channel"], message["data"]) == (b"pw:async", b"hello")


@pytest.mark.parametrize("kill", [False, True], ids=["sigterm", "sigkill"])
def test_a_restarted_master_keeps_its_data(redis_cluster, rc, kill):
    keys = [f"pw:series:{i}" for i in range(60)]
    for key in keys:
        rc.set(key, key)
    with redis_cluster.client(1) as node:
        node_id, count = node.cluster("MYID"), node.dbsize()
    assert count > 0
    redis_cluster.restart_node(1, kill=kill)
    with redis_cluster.client(1) as node:
        assert node.cluster("MYID") == node_id  # its nodes.conf: the same node, same slots
        assert node.dbsize() == count  # its append-only file
    with redis_cluster.cluster_client() as fresh:
        assert [fresh.get(key) for key in keys] == [key.encode() for key in keys]
    # the client from before the restart reconnects to the node
    assert [rc.get(key) for key in keys] == [key.encode() for key in keys]
    rc.set("pw:series:after", "yes")
    assert rc.get("pw:series:after") == b"yes"
