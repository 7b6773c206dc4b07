"""An engine saves its state every ``SAVE_EVERY`` reads (server/engine.py), committing each
read's outputs as it goes: the same state, verdicts and alerts as a save with every read;
ticks acknowledged only with the state that learned them; a takeover between saves judges the
unsaved reads again without committing their outputs twice; a failing read after unsaved ones
loses none of them. Against a real Redis, one partition, in process."""
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
    """Read and judge until nothing is left, pending entries first, then report progress (and
    so save), as the engine process does."""
    while entries := engine.read(pending=True):
        engine.process_entries(entries)
    while entries := engine.read(pending=False):
        engine.process_entries(entries)
    engine.report_progress(time.time())


def pending(client) -> int:
    return client.xpending(PARTITION.ticks, keys.ENGINE_GROUP)["pending"]


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


def run(client, tmp_path, save_every: int, monkeypatch, crash_after: int | None = None) -> tuple[dict, dict, list]:
    """The sample through one engine; with ``crash_after``, that engine is dropped unsaved after
    so many reads and a new one takes over from the checkpoint."""
    client.flushall()
    monkeypatch.setattr(engine_module, "SAVE_EVERY", save_every)
    send(client, [orjson.dumps(tick) for tick in ticks()])
    engine = started(client, tmp_path)
    for _ in range(crash_after or 0):
        engine.process_entries(engine.read(pending=False))
    if crash_after:
        assert engine.unsaved and pending(client) == sum(map(len, engine.unsaved))  # outputs committed, not saved
        engine = started(client, tmp_path)  # the next owner: the saved state, the reads to judge again
        assert len(engine.replay) == crash_after % save_every
    drain(engine)
    assert int(client.get(PARTITION.processed)) == len(ticks())  # every tick's outputs, once
    assert pending(client) == 0
    return outcome(client)


@pytest.mark.timeout(60)
def test_saving_every_eighth_read_comes_to_the_same_state_verdicts_and_alerts_as_saving_every_read(
        redis_client, tmp_path, monkeypatch):
    every_eighth = run(redis_client, tmp_path, 8, monkeypatch)
    every_read = run(redis_client, tmp_path, 1, monkeypatch)
    assert every_eighth[2] and every_eighth == every_read


@pytest.mark.timeout(60)
def test_a_takeover_between_saves_judges_the_unsaved_reads_again_and_outputs_nothing_twice(
        redis_client, tmp_path, monkeypatch):
    reference = run(redis_client, tmp_path, 8, monkeypatch)
    taken_over = run(redis_client, tmp_path, 8, monkeypatch, crash_after=10)  # 8 saved, 2 not
    assert taken_over == reference  # the same alerts, none twice; the same verdicts and state


@pytest.mark.timeout(60)
def test_ticks_stay_pending_until_their_state_is_saved_and_a_pending_read_goes_past_them(redis_client, tmp_path):
    engine = started(redis_client, tmp_path)
    send(redis_client, [orjson.dumps(tick) for tick in ticks()[:3 * READ]])
    for read in (1, 2, 3):
        engine.process_entries(engine.read(pending=False))
        assert int(redis_client.get(PARTITION.processed)) == read * READ  # outputs committed
        assert pending(redis_client) == read * READ and redis_client.hlen(PARTITION.state_series) == 0
        assert engine.read(pending=True) == []  # not these again: they are judged
    engine.report_progress(time.time())  # caught up: saved, and acknowledged
    assert pending(redis_client) == 0 and redis_client.hlen(PARTITION.state_series) > 0


@pytest.mark.timeout(60)
def test_a_read_that_fails_after_unsaved_ones_loses_none_of_them(redis_client, tmp_path):
    engine = started(redis_client, tmp_path)
    good = [orjson.dumps(tick) for tick in ticks()[:3 * READ]]
    send(redis_client, [*good[:2 * READ + 5], b'{"commodity": "cabai-rawit-merah"}', *good[2 * READ + 5:]])
    drain(engine)
    assert int(redis_client.get(PARTITION.processed)) == 3 * READ  # the bad one was dead-lettered
    assert redis_client.xlen(PARTITION.deadletter) == 1
    assert pending(redis_client) == 0
    assert len(outcome(redis_client)[1]) == 3 * READ  # every good tick judged once, in the history
