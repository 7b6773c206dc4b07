"""No input stops detection: a tick a detector or rule cannot handle is contained, a tick the
engine cannot process at all is dead-lettered for an operator, and /readyz says when the engine
makes no progress (issue: "One bad tick must never stop detection")."""
from __future__ import annotations

import signal
import subprocess

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from detectors.stack import DetectorStack
from base.catalog import load_catalog
from rules.engine import RuleEngine
from rules.loader import parse_rule_text
from tests.system import System, wait_for
from tests import partitions
from tests.test_pipeline import DAY, MARKETS, START, day_ticks, feed

EPOCH_1900 = -2_208_988_800.0  # 1900-01-01T00:00:00Z: outside the Hijri calendar's range


def test_a_detector_that_raises_loses_its_say_on_that_tick_only():
    stack = DetectorStack()
    for day in range(400):  # a year of history: the seasonal indicators (ALPS, IPA) are warm
        stack.process({"commodity": "cabai", "market": "pasar-a", "price": 50000.0 + 10 * (day % 7),
                       "ts": START + day * DAY})
    poison = stack.process({"commodity": "cabai", "market": "pasar-a", "price": 50000.0, "ts": EPOCH_1900})
    assert set(poison["errors"]) == {"alps", "ipa"}
    assert poison["errors"]["ipa"].startswith("OverflowError")
    assert "zscore" in poison["scores"] and "iqr" in poison["scores"]  # the others still judged it
    after = stack.process({"commodity": "cabai", "market": "pasar-a", "price": 50010.0, "ts": START + 401 * DAY})
    assert "errors" not in after and "alps" in after["scores"]


def test_a_rule_that_raises_is_skipped_for_that_tick_and_reported():
    rules = parse_rule_text("rules:\n  - name: lonjakan\n    when: zscore.score > 3\n",
                            "t.yaml", load_catalog(), {"zscore"})
    engine = RuleEngine(rules)
    tick = {"commodity": "bawang-merah", "market": "pasar-kosambi", "province": "32", "price": 1.0, "ts": 1.0}
    malformed = {"scores": [5.0], "fired": [], "reasons": {}, "expected": None}  # a list, not a mapping
    assert engine.on_batch([tick, {**tick, "ts": 2.0}],
                           [malformed, {"scores": {"zscore": 5.0}, "fired": ["zscore"], "reasons": {},
                                        "expected": None}])[0]["transition"] == "fired"
    errors = engine.take_errors()
    assert [rule for rule, _ in errors] == ["lonjakan"] and engine.take_errors() == []


@pytest.fixture
def stall_system(tmp_path):
    system = System(tmp_path, env={"PASARWATCH_ENGINE_STALL": "1", "PASARWATCH_DEADLETTER_LEN": "2"})
    yield system
    system.stop()


def _raw(system: System, payload: bytes) -> str:
    """A stream entry written past the web process, as an import, a replay or an older version could
    (to the partition of the test's ticks, cabai-rawit-merah)."""
    return system.redis.xadd(partitions.of(system.redis, "cabai-rawit-merah").ticks, {"t": payload}).decode()


def _deadletters(system: System) -> list[dict]:
    response = system.http.get("/api/v1/deadletters")
    assert response.status_code == 200, response.text
    return response.json()["deadletters"]


def test_poison_ticks_are_contained_or_dead_lettered_and_the_rest_flows(system):
    sent = feed(system, range(10))
    system.wait_processed(sent)
    # A series of its own (in an existing one a tick from 1900 would be late: history, not scored).
    old = {**day_ticks(10)[0], "market": "pasar-lama", "ts": EPOCH_1900, "device": "test-admin"}
    contained_ids = [_raw(system, orjson.dumps(old)) for _ in range(3)]
    unreadable = _raw(system, b"{not json")
    no_price = _raw(system, orjson.dumps({**day_ticks(10)[1], "price": "murah"}))
    sent += 3 + feed(system, range(11, 14))
    system.wait_processed(sent)
    wait_for(lambda: len(_deadletters(system)) == 2, 15, "the two unprocessable ticks to be dead-lettered")

    assert system.processes["engine"].poll() is None, system.log("engine")[-2000:]
    assert system.http.get("/readyz").status_code == 200
    # Every good tick after the poison was scored, and the 1900 tick was judged without the
    # seasonal indicators (their failure is named in the verdict).
    poisoned = system.http.get("/api/v1/series/cabai-rawit-merah/pasar-lama/history").json()["points"]
    by_id = {price["id"]: price for price in poisoned}
    assert all("ipa" in by_id[i]["verdict"].get("errors", {}) for i in contained_ids)
    history = system.http.get(f"/api/v1/series/cabai-rawit-merah/{MARKETS[0]}/history").json()["points"]
    assert max(p["ts"] for p in history) == START + 13 * DAY
    letters = {letter["tick_id"]: letter for letter in _deadletters(system)}
    assert set(letters) == {unreadable, no_price}
    assert "JSONDecodeError" in letters[unreadable]["error"] and letters[unreadable]["raw"] == "{not json"
    assert "price" in letters[no_price]["error"]
    # A dead letter's id names its partition, then its entry there.
    partition = partitions.of(system.redis, "cabai-rawit-merah").number
    assert {letter["partition"] for letter in letters.values()} == {partition}
    assert all(letter["id"].startswith(f"{partition}:") for letter in letters.values())
    # Counted, and logged once per cause however often it happens.
    errors = partitions.counts(system.redis, "errors")
    assert errors["detector:ipa"] >= 3 and errors["engine:deadletter"] == 2
    assert system.log("engine").count("detector:ipa failed") == 1
    served = {(s.name, tuple(sorted(s.labels.items()))): s.value
              for family in text_string_to_metric_families(system.http.get("/metrics").text) for s in family.samples}
    assert served[("pasarwatch_engine_errors_total", (("cause", "detector:ipa"),))] >= 3
    assert served[("pasarwatch_ticks_deadlettered_total", ())] == 2

    # An operator replays one with a correction (it is then scored) and discards the other.
    fixed = {**day_ticks(14)[1]}
    replayed = system.http.post(f"/api/v1/deadletters/{letters[no_price]['id']}/replay", json=fixed)
    assert replayed.status_code == 202, replayed.text
    system.wait_processed(sent + 1)
    history = system.http.get(f"/api/v1/series/cabai-rawit-merah/{MARKETS[1]}/history").json()["points"]
    assert history[-1]["id"] == replayed.json()["ids"][0] and history[-1]["ts"] == fixed["ts"]
    assert system.http.delete(f"/api/v1/deadletters/{letters[unreadable]['id']}").status_code == 200
    assert _deadletters(system) == []
    for unknown in ("1-0", f"{partition}:1-0", f"{len(partitions.stored(system.redis))}:1-0", f"{partition}:"):
        assert system.http.delete(f"/api/v1/deadletters/{unknown}").status_code == 404, unknown
    assert system.http.post("/api/v1/deadletters/nonsense/replay").status_code == 404


def test_readyz_turns_unready_when_the_engine_makes_no_progress_on_waiting_ticks(stall_system):
    system = stall_system.start()
    system.wait_processed(feed(system, range(3)))
    assert system.http.get("/readyz").status_code == 200
    engine = system.processes["engine"]
    engine.send_signal(signal.SIGSTOP)
    try:
        feed(system, range(3, 4))
        unready = wait_for(lambda: (r := system.http.get("/readyz")).status_code == 503 and r, 15,
                           "readyz to notice the stalled engine")
        body = unready.json()
        assert body["checks"]["engine_progress"] is False and body["engine"]["waiting"] is True
    finally:
        engine.send_signal(signal.SIGCONT)
    wait_for(lambda: system.http.get("/readyz").status_code == 200, 15, "readyz to recover")


def test_at_most_the_configured_number_of_dead_letters_are_kept_and_all_are_counted(stall_system):
    system = stall_system.start()  # PASARWATCH_DEADLETTER_LEN=2
    ids = [_raw(system, b"not a tick %d" % n) for n in range(3)]
    wait_for(lambda: partitions.total(system.redis, "deadlettered") == 3, 15, "three dead letters")
    assert [letter["tick_id"] for letter in _deadletters(system)] == ids[:0:-1]  # the newest two
    assert system.http.get("/api/v1/deadletters").json()["total"] == 3


@pytest.mark.timeout(60)
def test_thousands_of_feeds_going_stale_at_once_are_one_pass_not_one_per_feed():
    """9,200 series went stale together and the engine made no progress for 6.5 minutes: each
    health change scanned every firing alert. One sweep is now finished as one batch."""
    from detectors.stack import DETECTOR_NAMES
    from rules.loader import load_rules, rule_files
    from base.config import PROJECT_ROOT

    catalog = load_catalog()
    engine = RuleEngine(load_rules(rule_files(PROJECT_ROOT / "rules"), catalog, set(DETECTOR_NAMES)))
    commodities = sorted(catalog.commodities)
    healths = [{"commodity": commodities[i % len(commodities)], "market": f"pasar-{i}", "province": "32",
                "state": "stale", "age": 10 * DAY, "expected_gap": DAY, "price": 1000.0, "ts": START}
               for i in range(9_200)]
    events = engine.on_health_batch(healths)
    fired = {event["key"].split("/", 1)[1] for event in events if event["transition"] == "fired"}
    assert len(fired) == 9_200  # every feed's stale alert, each once
    assert len(engine.firing()) == 9_200


def _cli(system: System, *args: str) -> subprocess.CompletedProcess[str]:
    import sys

    from base.config import PROJECT_ROOT

    return subprocess.run([sys.executable, "-m", "server.cli", "deadletter", *args], env=system.env,
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=30)


def test_an_operator_lists_replays_and_discards_dead_letters_from_the_shell(system):
    sent = feed(system, range(5))
    system.wait_processed(sent)
    broken = _raw(system, b'{"commodity": "cabai-rawit-merah", "price": ')
    wait_for(lambda: len(_deadletters(system)) == 1, 15, "the broken tick to be dead-lettered")
    listed = _cli(system, "list")
    assert listed.returncode == 0 and broken in listed.stdout and "1 dead-lettered in all" in listed.stdout
    [letter] = orjson.loads(_cli(system, "list", "--json").stdout)["deadletters"]
    fixed = orjson.dumps(day_ticks(5)[2]).decode()
    replayed = _cli(system, "replay", letter["id"], "--tick", fixed)
    assert replayed.returncode == 0, replayed.stderr
    system.wait_processed(sent + 1)
    points = system.http.get(f"/api/v1/series/cabai-rawit-merah/{MARKETS[2]}/history").json()["points"]
    assert points[-1]["ts"] == START + 5 * DAY + 2
    # The chain breaks where the broken tick was written past the web process, not at the replay,
    # which went through the process' own appender.
    assert system.http.get("/api/v1/audit/verify").json()["broken_at"] == broken
    missing = _cli(system, "discard", letter["id"])
    assert missing.returncode == 1 and "not_found" in missing.stderr and "Traceback" not in missing.stderr
