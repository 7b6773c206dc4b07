"""Several engines on partitioned streams: the same verdicts and alerts as one engine, nothing
lost and nothing raised twice when an engine is killed or added in the middle of the stream.

Each system here is real: its own redis-server, web process and engine processes, with four
partitions and a two-second lease so that a takeover happens within the tests' time.
"""
from __future__ import annotations

import math

import orjson
import pytest

from base import keys
from base.catalog import load_catalog
from base.config import PROJECT_ROOT
from detectors import recorded
from pipeline.replay import reporting_days
from testkit.waiting import wait_for
from tests.system import System

SAMPLE = PROJECT_ROOT / "tests" / "fixtures" / "pihps-jabar-sample.csv"  # 18 markets, 29 days, chilli and shallots
PARTITIONS = 4
ENV = {"PASARWATCH_PARTITIONS": str(PARTITIONS), "PASARWATCH_ENGINE_LEASE": "2"}


def days() -> list[list[dict]]:
    return list(reporting_days(recorded.read_path(SAMPLE, load_catalog())))


def processed(system: System) -> int:
    return sum(int(system.redis.get(p.processed) or 0) for p in keys.partitions(PARTITIONS))


def owners(system: System) -> dict[int, str]:
    return {p.number: (system.redis.get(p.lease) or b"").decode() for p in keys.partitions(PARTITIONS)}


def post_day(system: System, day: list[dict]) -> None:
    response = system.post(day)
    assert response.status_code == 202, response.text


def outcome(system: System) -> tuple[dict, list, list]:
    """Every tick's verdict by (commodity, market, ts); the alert events; their ids."""
    verdicts, alerts, ids = {}, [], []
    for partition in keys.partitions(PARTITIONS):
        for stream in system.redis.scan_iter(match=partition.history("*", "*").replace("*/*", "*"), count=1000):
            for _, fields in system.redis.xrange(stream):
                message = orjson.loads(fields[b"m"])
                verdicts[(message["commodity"], message["market"], message["ts"])] = message["verdict"]
        for entry_id, fields in system.redis.xrange(partition.alerts):
            event = orjson.loads(fields[b"a"])
            ids.append(entry_id.decode())
            alerts.append((event["rule"], event["key"], event["transition"], event["ts"]))
    return verdicts, sorted(alerts), ids


def run(tmp_path, engines: int, during=None) -> tuple[dict, list, list]:
    """Every day of the sample through ``engines`` engines; ``during(system, day_index)`` may
    kill or add engines just after a day's ticks were accepted, while they are being judged."""
    system = System(tmp_path, env=ENV)
    try:
        system.start("web")
        for n in range(engines):
            system.start_process(f"engine-{n + 1}", "engine")
        wait_for(lambda: len(set(owners(system).values()) - {""}) == engines and all(owners(system).values()),
                 20, f"{engines} engines to share the partitions")
        sent = 0
        for index, day in enumerate(days()):
            post_day(system, day)
            if during:  # while the engines work on this day's ticks
                during(system, index)
            sent += len(day)
            wait_for(lambda: processed(system) >= sent, 30, f"{sent} ticks processed")
        assert processed(system) == sent  # nothing lost, nothing processed twice
        return outcome(system)
    finally:
        system.stop()


@pytest.fixture(scope="module")
def one_engine(tmp_path_factory):
    return run(tmp_path_factory.mktemp("one"), engines=1)


def same(result, reference) -> None:
    verdicts, alerts, ids = result
    ref_verdicts, ref_alerts, _ = reference
    assert len(ids) == len(set(ids))  # alert ids never meet across partitions
    assert alerts == ref_alerts and alerts  # the same alerts, none twice, and not trivially none
    assert verdicts.keys() == ref_verdicts.keys()
    for key, verdict in ref_verdicts.items():
        mine = verdicts[key]
        assert (mine["fired"], mine["quarantined"]) == (verdict["fired"], verdict["quarantined"]), key
        assert all(math.isclose(mine["scores"][n], s, rel_tol=1e-9) for n, s in verdict["scores"].items()), key


@pytest.mark.timeout(240)
def test_two_engines_come_to_the_same_verdicts_and_alerts_as_one(tmp_path, one_engine):
    same(run(tmp_path, engines=2), one_engine)


@pytest.mark.timeout(240)
def test_an_engine_killed_mid_stream_loses_no_tick_and_raises_no_alert_twice(tmp_path, one_engine):
    killed = []

    def kill_one(system: System, index: int) -> None:
        if index == 10:
            system.kill("engine-2")  # SIGKILL: no goodbye, its leases must expire
            killed.append(True)

    result = run(tmp_path, engines=2, during=kill_one)
    assert killed
    same(result, one_engine)


@pytest.mark.timeout(240)
def test_an_engine_added_mid_stream_takes_a_share_and_changes_nothing(tmp_path, one_engine):
    def add_one(system: System, index: int) -> None:
        if index == 10:
            system.start_process("engine-2", "engine")
            wait_for(lambda: len(set(owners(system).values())) == 2, 20, "the new engine to take a share")

    same(run(tmp_path, engines=1, during=add_one), one_engine)
