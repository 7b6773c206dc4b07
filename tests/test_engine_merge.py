"""An engine that is behind judges several full reads before one commit (server/engine.py,
``MERGED_READS``): the same state, verdicts and alerts as a commit per read, nothing
acknowledged before its commit, and a failing read after held ones loses none of them.
Against a real Redis, one partition, in process."""
from __future__ import annotations

import dataclasses
import time

import orjson
import pytest

from base import keys
from base.catalog import load_catalog
from base.config import Settings
from detectors.stack import DETECTOR_NAMES
from rules.rulebook import Rulebook
from server import engine as engine_module
from server.engine import Engine
from server.leases import Leases
from tests.test_engines import days

READ = 100  # ticks per read: the sample's 1,044 ticks come in ten full reads and a short one
PARTITION = keys.partitions(1)[0]


def ticks() -> list[dict]:
    return [tick for day in days() for tick in day]


def started(client, tmp_path) -> Engine:
    settings = dataclasses.replace(Settings.from_env(), partitions=1, data_dir=tmp_path, engine_batch=READ)
    catalog = load_catalog()
    leases = Leases(client, "test:1:merge", [PARTITION], 60)
    leases.balance(time.time())
    engine = Engine(settings, client, catalog, Rulebook(settings.rules_dir, catalog, set(DETECTOR_NAMES)),
                    PARTITION, leases)
    engine.restore()
    return engine


def send(client, payloads: list[bytes]) -> None:
    pipe = client.pipeline(transaction=False)
    for payload in payloads:
        pipe.xadd(PARTITION.ticks, {"t": payload})
    pipe.execute()


def drain(engine: Engine) -> None:
    """Read and judge until nothing is left, then report progress as the engine process does."""
    while entries := engine.read(pending=False):
        engine.process_entries(entries)
    engine.report_progress(time.time())


def outcome(client) -> tuple[dict, dict, list]:
    """Every series' state document, every tick's verdict, the alerts (without their ids)."""
    verdicts = {}
    for stream in client.scan_iter(match=PARTITION.history("*", "*").replace("*/*", "*"), count=1000):
        for _, fields in client.xrange(stream):
            message = orjson.loads(fields[b"m"])
            verdicts[(message["commodity"], message["market"], message["ts"])] = message["verdict"]
    alerts = [(event["rule"], event["key"], event["transition"], event["ts"])
              for event in (orjson.loads(fields[b"a"]) for _, fields in client.xrange(PARTITION.alerts))]
    return client.hgetall(PARTITION.state_series), verdicts, alerts


def run(client, tmp_path, merged: int, monkeypatch) -> tuple[dict, dict, list]:
    client.flushall()
    monkeypatch.setattr(engine_module, "MERGED_READS", merged)
    send(client, [orjson.dumps(tick) for tick in ticks()])
    drain(started(client, tmp_path))
    assert int(client.get(PARTITION.processed)) == len(ticks())
    assert client.xpending(PARTITION.ticks, keys.ENGINE_GROUP)["pending"] == 0
    return outcome(client)


@pytest.mark.timeout(60)
def test_merged_reads_come_to_the_same_state_verdicts_and_alerts_as_a_commit_per_read(
        redis_client, tmp_path, monkeypatch):
    merged = run(redis_client, tmp_path, 4, monkeypatch)
    one_by_one = run(redis_client, tmp_path, 1, monkeypatch)
    assert merged[2] and merged == one_by_one


@pytest.mark.timeout(60)
def test_held_reads_are_pending_until_their_commit_and_a_pending_read_goes_past_them(redis_client, tmp_path):
    engine = started(redis_client, tmp_path)
    send(redis_client, [orjson.dumps(tick) for tick in ticks()[:3 * READ]])
    for held in (1, 2):
        engine.process_entries(engine.read(pending=False))
        assert redis_client.xpending(PARTITION.ticks, keys.ENGINE_GROUP)["pending"] == held * READ
        assert redis_client.get(PARTITION.processed) is None and redis_client.hlen(PARTITION.state_series) == 0
        # What a takeover reads first: the previous owner's uncommitted entries, not these again.
        assert engine.read(pending=True) == []
    engine.process_entries(engine.read(pending=False))
    engine.report_progress(time.time())  # caught up: the three reads commit together
    assert int(redis_client.get(PARTITION.processed)) == 3 * READ
    assert redis_client.xpending(PARTITION.ticks, keys.ENGINE_GROUP)["pending"] == 0


@pytest.mark.timeout(60)
def test_a_read_that_fails_after_held_ones_loses_none_of_them(redis_client, tmp_path):
    engine = started(redis_client, tmp_path)
    good = [orjson.dumps(tick) for tick in ticks()[:2 * READ]]
    send(redis_client, [*good[:READ + 5], b'{"commodity": "cabai-rawit-merah"}', *good[READ + 5:]])
    drain(engine)
    assert int(redis_client.get(PARTITION.processed)) == 2 * READ  # the bad one was dead-lettered
    assert redis_client.xlen(PARTITION.deadletter) == 1
    assert redis_client.xpending(PARTITION.ticks, keys.ENGINE_GROUP)["pending"] == 0
    assert len(outcome(redis_client)[1]) == 2 * READ  # every good tick judged once, in the history
