"""Faults, against the real processes: Redis killed and restarted under load, the engine killed
mid-batch, rule files replaced by garbage. Nothing accepted is lost or judged twice.

(A worker killed mid-send, and Telegram answering 500s, 429s and hanging, are in
tests/test_worker_delivery.py, which has the fake Bot API and the worker processes.)

Every wait polls a condition with a deadline (tests.system.wait_for); the only pauses are a
device's own retry back-off.
"""
from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx
import orjson
import pytest
from websockets.sync.client import connect

from server import auth
from server.redis_process import start_redis
from tests.system import System, wait_for
from tests import partitions
from tests.test_pipeline import BASE, DAY, MARKETS, SCALE, Messages, day_ticks, feed

COMMODITIES = list(SCALE)
# A device posts its next day as soon as one is taken: a thousand days in a slow run. Its days
# start long ago so they never reach today (a tick from the future is refused with 422).
DEVICE_START = 1_704_067_200.0  # 2024-01-01T00:00:00Z: within the history the system keeps


class Feed(Messages):
    """A /ws/prices client that can subscribe again with the last alert it saw."""

    def subscribe(self) -> dict:
        since = {"since": self.last_alert} if self.last_alert else {}
        self.ws.send(orjson.dumps({"type": "subscribe", **since}).decode())
        return self.until(lambda m: m["type"] == "snapshot", start=len(self.seen))


@dataclass
class Device:
    """A device posting one day at a time with source and seq, retrying a day until it is taken.

    Retrying with the same (source, seq) is what makes a retry after an unclear failure safe:
    a tick the store kept before the failure comes back as a duplicate, not a second tick.
    """

    system: System
    name: str
    first_day: int
    statuses: Counter = field(default_factory=Counter)
    slowest: float = 0.0
    delivered: dict[int, list[dict]] = field(default_factory=dict)  # day -> ticks taken
    accepted_ids: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self):
        token = auth.issue(self.system.redis, "device", self.name, "device", ("*",))
        self.http = httpx.Client(base_url=self.system.url, timeout=10,
                                 headers={"authorization": f"Bearer {token}", "content-type": "application/json"})
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        day = self.first_day
        while not self.stop.is_set():
            ticks = day_ticks(day, source=self.name, start=DEVICE_START)
            began = time.monotonic()
            try:
                response = self.http.post("/api/v1/ticks", content=orjson.dumps(ticks))
                status = response.status_code
            except httpx.TransportError:
                status = "transport"
            self.slowest = max(self.slowest, time.monotonic() - began)
            self.statuses[status] += 1
            if status == 202:
                body = response.json()
                if body["accepted"] + len(body["duplicates"]) != len(ticks):
                    self.statuses["202 without every tick"] += 1
                self.accepted_ids += body["ids"]
                self.delivered[day] = ticks
                day += 1
            else:
                self.stop.wait(0.05)  # the device's retry back-off

    def days(self) -> int:
        return len(self.delivered)

    def finish(self) -> None:
        self.stop.set()
        self.thread.join(timeout=20)
        self.http.close()


def restart_redis(system: System) -> None:
    """Start redis-server again on the same port with the same append-only file."""
    old = system.redis_process
    system.redis_process = start_redis(old.data_dir, port=old.port)


def history(system: System, market: str, commodity: str = "cabai-rawit-merah") -> list[dict]:
    return system.http.get(f"/api/v1/series/{commodity}/{market}/history", params={"limit": 5000}).json()["points"]


@pytest.fixture
def system(tmp_path):
    running = System(tmp_path)
    yield running
    running.stop()


def until_taken(ws, message: dict) -> dict:
    """Send on /ws/ingest until the ack is not a 503 (what a device does after an outage)."""
    def ack():
        ws.send(orjson.dumps(message).decode())
        reply = orjson.loads(ws.recv(timeout=10))
        return reply if reply["status"] != 503 else None
    return wait_for(ack, 20, "the socket's ticks to be taken")


OUTAGES = 2  # the second one checks that surviving the first left nothing behind


@pytest.mark.timeout(240)  # two outages; under a loaded CI a recovery once took over 30 s
def test_redis_killed_and_restarted_while_devices_keep_posting(system):
    system.start()
    warm = feed(system, range(20))
    system.wait_processed(warm)
    others = warm
    with connect(f"{system.ws_url}/ws/prices") as ws, \
            connect(f"{system.ws_url}/ws/ingest", additional_headers=system.auth_headers) as ingest:
        prices = Feed(ws)
        prices.subscribe()
        device = Device(system, "hp-redis", first_day=20)
        device.thread.start()
        for outage in range(OUTAGES):
            outage_day = day_ticks(500 + outage, commodity="bawang-merah", source="hp-ws")
            others += len(outage_day)
            wait_for(lambda: device.days() >= 5 * (outage + 1), 20, "the device to be under way")
            refused = device.statuses[503]
            system.redis_process.stop(kill=True)
            # Down: refused with 503 quickly, never a 500 or a hang; the sockets stay open.
            wait_for(lambda: device.statuses[503] >= refused + 3, 15, "the device to be refused with 503")
            began = time.monotonic()
            assert system.http.get("/api/v1/alerts").status_code == 503
            assert system.http.get("/readyz").status_code == 503
            assert system.http.get("/healthz").status_code == 200
            ingest.send(orjson.dumps({"ref": "outage", "ticks": outage_day}).decode())
            ack = orjson.loads(ingest.recv(timeout=10))
            assert ack["status"] == 503 and ack["errors"][0]["reason"] == "unavailable"
            assert time.monotonic() - began < 5
            days_before = device.days()
            restart_redis(system)
            # Up again: the same processes take ticks again without a restart ...
            wait_for(lambda: device.days() >= days_before + 5, 60,
                     lambda: f"the device to be taken again (statuses {dict(device.statuses)}; web log: "
                             f"{system.log('web')[-2000:]}; engine log: {system.log('engine')[-1000:]})")
            assert until_taken(ingest, {"ref": "retry", "ticks": outage_day})["status"] == 202
            # ... and a /ws/prices client told to resync resumes from the last alert it saw.
            prices.until(lambda m: m["type"] == "resync", timeout=30, start=len(prices.seen))
            prices.subscribe()
            last_day = max(device.delivered)
            prices.until(lambda m: m["type"] == "price" and m.get("source") == "hp-redis"
                         and m["ts"] > DEVICE_START + last_day * DAY)
    device.finish()
    assert_taken_exactly_once(system, device, others)
    # The engine saw each outage and started over from its checkpoint (server/engine.py).
    assert system.log("engine").count("lost Redis") == OUTAGES, system.log("engine")[-3000:]


def assert_taken_exactly_once(system: System, device: Device, others: int) -> None:
    """No process died, no request failed or hung, and every tick taken was processed once."""
    assert system.processes["engine"].poll() is None, "the engine died: " + system.log("engine")[-2000:]
    assert system.processes["web"].poll() is None
    assert set(device.statuses) <= {202, 503}, device.statuses
    assert device.slowest < 8, f"a request took {device.slowest:.1f}s"
    taken = others + sum(len(ticks) for ticks in device.delivered.values())
    system.wait_processed(taken, timeout=30)
    assert partitions.length(system.redis, "ticks") == taken
    assert system.processed() == taken
    for market in MARKETS:
        seen = [p["ts"] for p in history(system, market) if p.get("source") == device.name]
        expected = sorted(t["ts"] for ticks in device.delivered.values() for t in ticks if t["market"] == market)
        assert seen == expected
    stored_ids = {entry_id.decode() for entry_id, _ in partitions.entries(system.redis, "ticks")}
    assert set(device.accepted_ids) <= stored_ids and len(set(device.accepted_ids)) == len(device.accepted_ids)


@pytest.mark.timeout(150)
def test_a_stalled_redis_is_a_503_after_the_timeout_and_the_system_recovers(system):
    """Redis stops answering (SIGSTOP) without closing its sockets: the worst kind of outage."""
    system.start()
    warm = feed(system, range(20))
    system.wait_processed(warm)
    device = Device(system, "hp-stall", first_day=20)
    device.thread.start()
    wait_for(lambda: device.days() >= 5, 20, "the device to be under way")
    system.redis_process.process.send_signal(signal.SIGSTOP)
    try:
        began = time.monotonic()
        assert system.http.get("/healthz").status_code == 200 and time.monotonic() - began < 1
        assert system.http.get("/api/v1/alerts").status_code == 503
        assert time.monotonic() - began < 8, "not a 503 within the store's socket timeout"
        wait_for(lambda: device.statuses[503] >= 1, 15, "the device to be refused with 503")
    finally:
        system.redis_process.process.send_signal(signal.SIGCONT)
    days_before = device.days()
    wait_for(lambda: device.days() >= days_before + 5, 60, "the device to be taken again")
    device.finish()
    assert_taken_exactly_once(system, device, warm)


BACKLOG_DAYS = 150
SPIKE_DAY = 140  # after both kills: judged by state the restarted engine restored


def backlog(system: System) -> int:
    """Every commodity's days, posted while no engine runs; one market spikes tenfold once."""
    sent = 0
    for commodity in COMMODITIES:
        for first in range(0, BACKLOG_DAYS, 50):
            ticks = [tick for day in range(first, first + 50) for tick in day_ticks(
                day, {"pasar-cisalak": 445000} if day == SPIKE_DAY and commodity == "cabai-rawit-merah" else None,
                commodity)]
            assert system.post(ticks).status_code == 202
            sent += len(ticks)
    return sent


def pending(system: System) -> int:
    """Ticks the engines have read but not committed, in every partition."""
    total = 0
    for partition in partitions.stored(system.redis):
        try:
            total += system.redis.xpending(partition.ticks, "engine")["pending"]
        except Exception:  # noqa: BLE001 - no group before the engine's first start
            pass
    return total


def kill_mid_batch(system: System, after: int) -> int:
    """SIGKILL the engine once it has committed ``after`` ticks and holds a batch it has not."""
    wait_for(lambda: system.processed() >= after and pending(system) > 0, 30, f"a batch in flight after {after}")
    system.kill("engine")
    return pending(system)


def outcome(system: System, tick_rules: set[str]) -> tuple[dict, list]:
    """What the engine made of the backlog: every verdict per series, and the tick rules' alerts."""
    verdicts = {}
    for commodity in COMMODITIES:
        for market in MARKETS:
            points = system.http.get(f"/api/v1/series/{commodity}/{market}/history",
                                     params={"limit": 5000}).json()["points"]
            verdicts[(commodity, market)] = [(p["ts"], p["price"], p["verdict"]) for p in points]
    alerts = [(a["key"], a["state"], a["severity"], a["price"], a["ts"])
              for a in system.alerts(limit=5000) if a["rule"] in tick_rules]
    return verdicts, alerts


def test_engine_killed_mid_batch_loses_nothing_and_restores_its_state(tmp_path):
    env = {"PASARWATCH_ENGINE_BATCH": "300"}
    faulty = System(tmp_path / "faulty", env=env).start("web")
    reference = System(tmp_path / "reference", env=env).start("web")
    try:
        sent = backlog(faulty)
        assert backlog(reference) == sent
        faulty.start_process("engine")
        in_flight = [kill_mid_batch(faulty, after=600)]
        faulty.start_process("engine")
        in_flight.append(kill_mid_batch(faulty, after=faulty.processed() + 600))
        faulty.start_process("engine")
        reference.start_process("engine")
        faulty.wait_processed(sent, timeout=40)
        reference.wait_processed(sent, timeout=40)
        assert all(count > 0 for count in in_flight), f"a kill did not land mid-batch: {in_flight}"
        assert faulty.processed() == sent and partitions.length(faulty.redis, "ticks") == sent
        tick_rules = {rule["name"] for rule in faulty.http.get("/api/v1/rules").json()["rules"]
                      if rule["kind"] == "tick"}
        verdicts, alerts = outcome(faulty, tick_rules)
        # Killed twice mid-batch, the engine judged every tick exactly as one that never stopped.
        assert (verdicts, alerts) == outcome(reference, tick_rules)
        assert all(len(points) == BACKLOG_DAYS for points in verdicts.values())
        spike = verdicts[("cabai-rawit-merah", "pasar-cisalak")][SPIKE_DAY]
        assert spike[1] == 445000 and spike[2]["quarantined"] is True
        assert spike[2]["expected"]["level"] < 50000, "judged against the level learned before the kills"
        transitions = [(key, state) for key, state, *_ in alerts]
        assert transitions.count(("harga-menyimpang/cabai-rawit-merah/pasar-cisalak", "firing")) == 1
        for key in {key for key, _ in transitions}:
            states = [state for k, state in transitions if k == key]
            assert all(a != b for a, b in zip(states, states[1:])), f"{key} repeated a state: {states}"
    finally:
        faulty.stop()
        reference.stop()


def garbage(good: str) -> dict[str, bytes]:
    """What a rule file can turn into: a bad copy, a half-written save, or something hostile."""
    cut = good.index("    when:", good.index("harga-menyimpang")) + 6  # in the middle of a key
    return {
        "binary": b"\x89PNG\r\n\x1a\n\x00\xff\xfe not a rule file",
        "half-written": good[:cut].encode(),
        "wrong shape": b"- just\n- a list\n",
        "deep expression": ("rules:\n  - name: dalam\n    when: " + "-" * 960 + "price > 1\n").encode(),
        "deep nesting": b"[" * 5000 + b"]" * 5000,
        "huge number": b"rules:\n  - name: besar\n    when: price\n    for: 1" + b"0" * 5000 + b"\n",
        "impossible date": b"rules:\n  - name: tanggal\n    when: price\n    for: 2024-02-30\n",
    }


def test_garbage_rule_files_keep_alerts_flowing_on_the_last_good_rules(system):
    system.start()
    sent = feed(system, range(20))
    path = system.rules_dir / "prices.yaml"
    good = path.read_text()
    engine = system.processes["engine"]
    day = 20

    def rules() -> dict:
        return system.http.get("/api/v1/rules").json()

    def spike_is_alerted(market: str) -> None:
        nonlocal day, sent
        firing = len([a for a in system.alerts(market=market) if a["rule"] == "harga-menyimpang"
                      and a["state"] == "firing"])
        sent += feed(system, range(day, day + 3), {day + 1: {market: BASE[market] * 10}})
        day += 3
        wait_for(lambda: len([a for a in system.alerts(market=market) if a["rule"] == "harga-menyimpang"
                              and a["state"] == "firing"]) > firing, 15, f"the spike at {market} to be alerted")

    for number, (kind, text) in enumerate(garbage(good).items()):
        failures = rules()["reload_failures"]
        path.write_bytes(text)

        def rejected() -> dict | None:
            assert engine.poll() is None, f"the engine died on {kind}: " + system.log("engine")[-2000:]
            status = rules()
            return status if status["reload_failures"] > failures else None

        status = wait_for(rejected, 10, f"{kind} to be rejected")
        assert status["ok"] is False and status["errors"][0]["file"].endswith("prices.yaml"), (kind, status)
        assert "harga-menyimpang" in [rule["name"] for rule in status["rules"]], kind
        spike_is_alerted(MARKETS[number % len(MARKETS)])
        assert engine.poll() is None, f"the engine died on {kind}: " + system.log("engine")[-2000:]
    path.write_text(good)
    wait_for(lambda: rules()["ok"], 10, "the good file to be loaded again")
    spike_is_alerted("pasar-kanoman")
    system.wait_processed(sent)
    assert system.processed() == sent and system.processes["engine"] is engine and engine.poll() is None
