"""Partition leases against a real Redis (server/leases.py): engines share the partitions fairly,
a dead engine's partitions are taken over once its leases expire, a leaving one hands its back
at once, and a commit by an engine that lost its lease does not go through."""
from __future__ import annotations

import time

import pytest
import redis

from base import keys
from server.leases import LeaseLost, Leases
from testkit.waiting import wait_for

PARTITIONS = keys.partitions(8)



def test_two_engines_split_the_partitions_and_never_own_one_together(redis_client):
    client = redis_client
    a, b = Leases(client, "a", PARTITIONS, 5), Leases(client, "b", PARTITIONS, 5)
    a.balance(time.time())
    assert len(a.owned) == 8  # alone: everything
    b.balance(time.time())  # b is live now, but a still holds all: b takes nothing yet
    assert b.owned == {}
    a.balance(time.time())  # a sees b and hands back what is beyond its share
    b.balance(time.time())
    assert len(a.owned) == len(b.owned) == 4
    assert set(a.owned).isdisjoint(b.owned)
    assert {client.get(p.lease).decode() for p in PARTITIONS} == {"a", "b"}


def test_a_dead_engines_partitions_are_taken_over_when_its_leases_expire(redis_client):
    client = redis_client
    a, b = Leases(client, "a", PARTITIONS, 1), Leases(client, "b", PARTITIONS, 1)
    for leases in (a, b, a, b):
        leases.balance(time.time())
    assert len(b.owned) == 4
    # a stops renewing (killed): b gets everything within the lease and one more balance.
    started = time.monotonic()
    wait_for(lambda: b.balance(time.time()) and len(b.owned) == 8, 10, "b to take over a's partitions")
    assert time.monotonic() - started < 1 + 2  # the lease, plus a balance or two


def test_a_leaving_engine_hands_its_partitions_back_at_once(redis_client):
    client = redis_client
    a, b = Leases(client, "a", PARTITIONS, 60), Leases(client, "b", PARTITIONS, 60)
    for leases in (a, b, a, b):
        leases.balance(time.time())
    a.leave()
    b.balance(time.time())
    assert len(b.owned) == 8  # no waiting for 60-second leases to expire


def test_a_commit_fenced_by_a_lost_lease_does_not_go_through(redis_client):
    client = redis_client
    a, b = Leases(client, "a", PARTITIONS[:1], 60), Leases(client, "b", PARTITIONS[:1], 60)
    a.balance(time.time())
    partition = PARTITIONS[0]
    pipe = client.pipeline(transaction=True)
    a.fence(pipe, partition)
    pipe.set("pw:{p0}:written", "by a")
    client.delete(partition.lease)  # a's lease lapses and b takes it between fence and commit
    b.balance(time.time())
    with pytest.raises(redis.WatchError):
        pipe.execute()
    assert client.get("pw:{p0}:written") is None
    with pytest.raises(LeaseLost):  # and a's next commit is refused before it starts
        a.fence(client.pipeline(transaction=True), partition)
